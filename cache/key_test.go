package cache

import "testing"

func TestKeyNormalisation(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got, err := NormalizeURL(in)
		if err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	f("http://example.com", "http://example.com/")
	f("HTTP://Example.COM:80/a", "http://example.com/a")
	f("https://example.com:443/a", "https://example.com/a")
	f("http://example.com:8080/a", "http://example.com:8080/a")
	f("https://example.com:80/a", "https://example.com:80/a")
	f("http://example.com/a?b=2&a=1", "http://example.com/a?a=1&b=2")
	f("http://example.com/a?a=1&&b=2&", "http://example.com/a?a=1&b=2")
	f("http://example.com/%7euser/%2fx%2F", "http://example.com/~user/%2Fx%2F")
	f("http://example.com/a?q=%41%2c", "http://example.com/a?q=A%2C")
	f("http://example.com/a?q=a+b", "http://example.com/a?q=a+b")
	f("http://example.com/a?z=%61&z=a", "http://example.com/a?z=a&z=a")
	f("http://example.com/a#frag", "http://example.com/a")
	f("http://example.com/a?%zz=1", "http://example.com/a?%zz=1")

	for _, bad := range []string{"", "example.com/a", "ftp://x/", "http:///a", "http://a b/"} {
		if _, err := NormalizeURL(bad); err == nil {
			t.Errorf("NormalizeURL(%q) accepted", bad)
		}
	}
}

func TestAppendKeyFromRequest(t *testing.T) {
	f := func(url, want string) {
		t.Helper()
		req := mkReq("GET", url)
		if got := string(AppendKey(nil, req)); got != want {
			t.Errorf("AppendKey(%q) = %q, want %q", url, got, want)
		}
	}
	f("http://Example.com:80/a/b?y=1&x=2", "http://example.com/a/b?x=2&y=1")
	f("http://example.com/%41", "http://example.com/A")
	f("http://example.com/", "http://example.com/")
}

func TestPrefixNormalisation(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got, err := normalizePrefix(in)
		if err != nil || got != want {
			t.Errorf("normalizePrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	f("HTTPS://Example.com:443/static/", "https://example.com/static/")
	f("http://example.com", "http://example.com")
	f("http://example.com/%7e", "http://example.com/~")
}

func TestAppendKeyNoAlloc(t *testing.T) {
	req := mkReq("GET", "http://example.com/a/b?z=1&y=2&x=3")
	buf := make([]byte, 0, 256)
	n := testing.AllocsPerRun(100, func() { buf = AppendKey(buf[:0], req) })
	if n != 0 {
		t.Fatalf("AppendKey allocates %v times", n)
	}
}
