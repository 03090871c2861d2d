package handlers

import (
	"testing"

	"github.com/cloudwego/hertz/pkg/protocol"
)

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		v           string
		size        int
		first, last int
		kind        rangeKind
	}{
		{"bytes=0-9", 100, 0, 9, rangeOne},
		{"bytes=10-", 100, 10, 99, rangeOne},
		{"bytes=-5", 100, 95, 99, rangeOne},
		{"bytes=-500", 100, 0, 99, rangeOne},     // suffix longer than the body: all of it
		{"bytes=90-200", 100, 90, 99, rangeOne},  // last past the end: clamped
		{" bytes=99-99 ", 100, 99, 99, rangeOne}, // one byte
		{"bytes=100-", 100, 0, 0, rangeUnsatisfiable},
		{"bytes=-0", 100, 0, 0, rangeUnsatisfiable},
		{"bytes=0-", 0, 0, 0, rangeUnsatisfiable}, // nothing exists in an empty body
		{"bytes=0-1,5-6", 100, 0, 0, rangeIgnore}, // several: the whole body
		{"bytes=9-3", 100, 0, 0, rangeIgnore},     // invalid: ignored (RFC 9110 §14.1.1)
		{"bytes=a-3", 100, 0, 0, rangeIgnore},
		{"bytes=3", 100, 0, 0, rangeIgnore},
		{"items=0-3", 100, 0, 0, rangeIgnore},
		{"", 100, 0, 0, rangeIgnore},
		{"bytes=99999999999999999999-", 100, 0, 0, rangeIgnore},
	} {
		first, last, kind := parseRange([]byte(tc.v), tc.size)
		if kind != tc.kind || (kind == rangeOne && (first != tc.first || last != tc.last)) {
			t.Errorf("parseRange(%q, %d) = %d, %d, %d; want %d, %d, %d", tc.v, tc.size, first, last, kind, tc.first, tc.last, tc.kind)
		}
	}
}

func TestIfRangeMatches(t *testing.T) {
	var resp protocol.ResponseHeader
	resp.Set("ETag", `"v1"`)
	resp.Set("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT")
	for v, want := range map[string]bool{
		"":                              true,
		`"v1"`:                          true,
		`"v2"`:                          false,
		`W/"v1"`:                        false, // weak tags never match (strong comparison)
		"Tue, 01 Dec 2026 10:00:00 GMT": true,
		"Tue, 01 Dec 2026 10:00:01 GMT": false,
	} {
		var req protocol.RequestHeader
		if v != "" {
			req.Set("If-Range", v)
		}
		if got := ifRangeMatches(&req, &resp); got != want {
			t.Errorf("If-Range %q: %v, want %v", v, got, want)
		}
	}
}
