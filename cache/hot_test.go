package cache

import (
	"bytes"
	"testing"
)

// TestHotBodies: large bodies are served from one kept copy (the same
// bytes on every hit, chunked or not), a new version of the URL is served
// as the new bytes, and the kept copies stay within their bound.
func TestHotBodies(t *testing.T) {
	for _, size := range []int{20 << 10, 100 << 10} { // inline and chunked (a 64 MiB cache stores up to 64 KiB in one entry)
		c, clk := newTestCache(t, Config{Size: 64 << 20})
		url := "http://example.com/big"
		v1 := bytes.Repeat([]byte("a"), size)
		if err := fetchStore(t, c, clk, mkReq("GET", url), mkResp(200, string(v1), "Cache-Control", "max-age=60")); err != nil {
			t.Fatal(err)
		}
		// The first hit keeps a copy; the next ones share it.
		_, r1, _ := serve(t, c, mkReq("GET", url))
		_, r2, _ := serve(t, c, mkReq("GET", url))
		_, r3, _ := serve(t, c, mkReq("GET", url))
		if !bytes.Equal(r1.Body(), v1) || !bytes.Equal(r2.Body(), v1) || !bytes.Equal(r3.Body(), v1) {
			t.Fatalf("%d: served bodies differ from the stored one", size)
		}
		if &r2.Body()[0] != &r3.Body()[0] {
			t.Errorf("%d: two hits copied the body instead of sharing the kept one", size)
		}
		v2 := bytes.Repeat([]byte("b"), size)
		if err := fetchStore(t, c, clk, mkReq("GET", url), mkResp(200, string(v2), "Cache-Control", "max-age=60")); err != nil {
			t.Fatal(err)
		}
		if _, r4, _ := serve(t, c, mkReq("GET", url)); !bytes.Equal(r4.Body(), v2) {
			t.Fatalf("%d: after a new store the old body was served", size)
		}
	}

	h := newHotBodies(16 << 20) // bound 1 MiB, at most 128 KiB per body
	for id := uint64(1); id <= 20; id++ {
		h.put(id, make([]byte, 100<<10))
	}
	if h.bytes > h.max || h.get(1) != nil || h.get(20) == nil {
		t.Errorf("after 20 bodies of 100 KiB: %d bytes kept (bound %d), oldest kept %v, newest kept %v",
			h.bytes, h.max, h.get(1) != nil, h.get(20) != nil)
	}
	h.put(99, make([]byte, 200<<10))
	if h.get(99) != nil {
		t.Errorf("a body over an eighth of the bound was kept")
	}
	if newHotBodies(1<<20) != nil {
		t.Errorf("a 1 MiB cache keeps hot bodies")
	}
}
