package cache

import "testing"

func TestParseDirectives(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  Directives
		flags DirFlag
	}{
		{"", Directives{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, 0},
		{"max-age=60", Directives{MaxAge: 60, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, 0},
		{"Max-Age=60, S-MAXAGE=30", Directives{MaxAge: 60, SMaxAge: 30, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, 0},
		{`public, max-age="120"`, Directives{MaxAge: 120, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, FlagPublic},
		{"max-age=10, max-age=20", Directives{MaxAge: 10, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, 0},
		{"max-age=abc", Directives{MaxAge: 0, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, FlagInvalid},
		{"max-age", Directives{MaxAge: 0, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, FlagInvalid},
		{"max-age=99999999999", Directives{MaxAge: maxDelta, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, 0},
		{"no-store,no-cache , private", Directives{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, FlagNoStore | FlagNoCache | FlagPrivate},
		{`no-cache="Set-Cookie, X-Foo", must-revalidate`, Directives{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, FlagNoCache | FlagMustRevalidate},
		{"max-stale", Directives{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, FlagMaxStaleAny},
		{"max-stale=5, min-fresh=7, only-if-cached", Directives{MaxAge: -1, SMaxAge: -1, MaxStale: 5, MinFresh: 7, StaleWhileRevalidate: -1, StaleIfError: -1}, FlagOnlyIfCached},
		{"max-age=1, stale-while-revalidate=30, stale-if-error=600, proxy-revalidate, immutable", Directives{MaxAge: 1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: 30, StaleIfError: 600}, FlagProxyRevalidate | FlagImmutable},
		{"unknown-ext=foo, max-age=5", Directives{MaxAge: 5, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, 0},
		{`x="a,b", max-age=5`, Directives{MaxAge: 5, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, 0},
		// RFC 9213 dictionaries: parameters after ';' are ignored
		{"max-age=60;foo=bar, no-transform", Directives{MaxAge: 60, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, FlagNoTransform},
		{`max-age="5`, Directives{MaxAge: 5, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, FlagInvalid},
		{",,, ,", Directives{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}, 0},
	} {
		var d Directives
		d.Reset()
		d.Parse([]byte(tc.in))
		tc.want.Flags = tc.flags
		if d != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, d, tc.want)
		}
	}
}

func TestParseDirectivesNoAlloc(t *testing.T) {
	v := []byte(`max-age=60, s-maxage=30, stale-while-revalidate=10, no-cache="x", public`)
	n := testing.AllocsPerRun(100, func() {
		var d Directives
		d.Reset()
		d.Parse(v)
	})
	if n != 0 {
		t.Fatalf("Parse allocates %v times", n)
	}
}

func TestHasToken(t *testing.T) {
	f := func(v, tok string, want bool) {
		t.Helper()
		if got := hasToken([]byte(v), tok); got != want {
			t.Errorf("hasToken(%q, %q) = %v", v, tok, got)
		}
	}
	f("no-cache", "no-cache", true)
	f(" NO-CACHE ", "no-cache", true)
	f("foo, no-cache", "no-cache", true)
	f("no-cache-x", "no-cache", false)
	f("", "no-cache", false)
}
