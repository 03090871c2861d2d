package handlers

import (
	"testing"
)

func TestPlaceholders(t *testing.T) {
	f := func(sql string, want int) {
		t.Helper()
		if got := placeholders(sql); got != want {
			t.Errorf("placeholders(%q) = %d, want %d", sql, got, want)
		}
	}
	f("SELECT 1", 0)
	f("SELECT $1, $2", 2)
	f("SELECT $2", 2)
	f("SELECT $10 + $3", 10)
	f("SELECT '$5', $1", 1)
	f(`SELECT "$7" FROM t WHERE a = $1`, 1)
	f("SELECT $1 -- $9\n, $2", 2)
	f("SELECT /* $9 */ $1", 1)
	f("SELECT $$ $9 $$, $1", 1)
	f("SELECT $fn$ $9 $fn$, $2", 2)
	f("SELECT '$1", 0)
}

func TestMatchPath(t *testing.T) {
	segs, params, err := compilePattern("/api/items/{id}/parts/{part}", map[string]string{"id": "int", "q": "text"})
	if err != nil {
		t.Fatal(err)
	}
	if len(params) != 3 || params[0].name != "id" || params[1].name != "part" || params[1].typ != ParamText || params[2].name != "q" || params[2].inURL {
		t.Fatalf("params %+v", params)
	}
	f := func(path string, ok bool, id, part string) {
		t.Helper()
		vals := make([]string, 2)
		if got := matchPath(segs, path, vals); got != ok || (ok && (vals[0] != id || vals[1] != part)) {
			t.Errorf("matchPath(%q) = %v %q", path, got, vals)
		}
	}
	f("/api/items/5/parts/wheel", true, "5", "wheel")
	f("/api/items/5/parts/", false, "", "")
	f("/api/items/5/parts/wheel/", false, "", "")
	f("/api/items/5/part/wheel", false, "", "")
	f("/api/items//parts/wheel", false, "", "")
	f("/api/items/5", false, "", "")
	f("", false, "", "")
}

func TestAppendJSONString(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(appendJSONString(nil, in)); got != want {
			t.Errorf("%q: got %s, want %s", in, got, want)
		}
	}
	f("plain", `"plain"`)
	f(`a"b\c`, `"a\"b\\c"`)
	f("tab\tnl\ncr\r\x01", `"tab\tnl\ncr\r\u0001"`)
	f("café ☕", `"café ☕"`)
	f("bad\xffutf8", `"bad\ufffdutf8"`)
}

func TestETagListMatch(t *testing.T) {
	f := func(list string, want bool) {
		t.Helper()
		if got := etagListMatch([]byte(list), []byte(`"abc"`)); got != want {
			t.Errorf("%q: %v", list, got)
		}
	}
	f(`"abc"`, true)
	f(`W/"abc"`, true)
	f(`"x", "abc"`, true)
	f(`"x" ,W/"abc" `, true)
	f(`*`, true)
	f(`"abcd"`, false)
	f(`"x"`, false)
	f(` , `, false)
}

func TestParseUUIDAndTimestamp(t *testing.T) {
	if _, ok := parseUUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g"); ok {
		t.Error("non-hex accepted")
	}
	if _, ok := parseUUID("a0eebc99x9c0b-4ef8-bb6d-6bb9bd380a11"); ok {
		t.Error("bad separator accepted")
	}
	for in, want := range map[string]string{
		"2024-05-01T12:00:00Z":        "2024-05-01T12:00:00Z",
		"2024-05-01T12:00:00.5-01:00": "2024-05-01T13:00:00.5Z",
		"2024-05-01T12:00:00 01:00":   "2024-05-01T11:00:00Z", // '+' decoded as a space
		"2024-05-01T12:00:00":         "2024-05-01T12:00:00Z",
		"2024-05-01":                  "2024-05-01T00:00:00Z",
	} {
		ts, ok := parseTimestamp(in)
		if !ok || ts.UTC().Format("2006-01-02T15:04:05.999999999Z07:00") != want {
			t.Errorf("%q: %v %v, want %s", in, ts, ok, want)
		}
	}
	if _, ok := parseTimestamp("05/01/2024"); ok {
		t.Error("US date accepted")
	}
}
