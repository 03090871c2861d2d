package cache

import (
	"errors"
	"testing"

	"github.com/cloudwego/hertz/pkg/protocol"
)

func TestAcceptedCodings(t *testing.T) {
	f := func(ae string, want ...uint8) {
		t.Helper()
		var m uint8
		for _, c := range want {
			m |= 1 << c
		}
		if got, _ := acceptedCodings([]byte(ae)); got != m {
			t.Errorf("acceptedCodings(%q) = %05b, want %05b", ae, got, m)
		}
	}
	f("", codingIdentity)
	f("gzip", codingGzip, codingIdentity)
	f("gzip, deflate, br", codingGzip, codingDeflate, codingBr, codingIdentity)
	f("br;q=1.0, gzip;q=0.8", codingBr, codingGzip, codingIdentity)
	f("gzip;q=0, br", codingBr, codingIdentity)
	f("identity;q=0, gzip", codingGzip)
	f("*", codingBr, codingZstd, codingGzip, codingDeflate, codingIdentity)
	f("*;q=0, gzip", codingGzip)
	f("BR , X-GZIP", codingBr, codingGzip, codingIdentity)
}

func TestVarySelection(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	url := "http://example.com/v"
	store := func(body string, reqHdrs []string, respHdrs ...string) {
		t.Helper()
		hdrs := append([]string{"Cache-Control", "max-age=60"}, respHdrs...)
		if err := fetchStore(t, c, clk, mkReq("GET", url, reqHdrs...), mkResp(200, body, hdrs...)); err != nil {
			t.Fatal(err)
		}
	}
	store("en", []string{"Accept-Language", "en-US, en;q=0.5"}, "Vary", "Accept-Language")
	store("fr", []string{"Accept-Language", "fr"}, "Vary", "accept-language")
	store("en-gz", []string{"Accept-Language", "en-US,en;q=0.5", "Accept-Encoding", "gzip"}, "Vary", "Accept-Language, Accept-Encoding", "Content-Encoding", "gzip")

	for _, tc := range []struct {
		hdrs []string
		out  Outcome
		body string
		fwd  Fwd
	}{
		{[]string{"Accept-Language", "en-US,en;q=0.5"}, Hit, "en", 0},                                   // whitespace normalised
		{[]string{"Accept-Language", "EN-us , en;q=0.5"}, Hit, "en", 0},                                 // case-folded Accept-*
		{[]string{"Accept-Language", "fr"}, Hit, "fr", 0},                                               // second variant
		{[]string{"Accept-Language", "de"}, Miss, "", FwdVaryMiss},                                      // unknown variant
		{nil, Miss, "", FwdVaryMiss},                                                                    // absent header is its own variant
		{[]string{"Accept-Language", "en-US,en;q=0.5", "Accept-Encoding", "gzip, br"}, Hit, "en-gz", 0}, // coding collapses
		{[]string{"Accept-Language", "en-US,en;q=0.5", "Accept-Encoding", "br"}, Hit, "en", 0},          // gzip unacceptable: identity
		{[]string{"Accept-Language", "fr", "Accept-Encoding", "gzip"}, Hit, "fr", 0},                    // no gzip fr: identity
	} {
		out, resp, res := serve(t, c, mkReq("GET", url, tc.hdrs...))
		if out != tc.out || string(resp.Body()) != tc.body || res.Status().Fwd != tc.fwd {
			t.Errorf("%v: %v %q fwd %v; want %v %q %v", tc.hdrs, out, resp.Body(), res.Status().Fwd, tc.out, tc.body, tc.fwd)
		}
	}
	// A different Vary set starts a new generation: old variants unreachable.
	store("new", []string{"X-Device", "mobile"}, "Vary", "X-Device")
	if out, _, _ := serve(t, c, mkReq("GET", url, "Accept-Language", "fr")); out == Hit {
		t.Error("variant of old Vary set still selected")
	}
	if out, resp, _ := serve(t, c, mkReq("GET", url, "X-Device", "mobile")); out != Hit || string(resp.Body()) != "new" {
		t.Errorf("new Vary set: %v %q", out, resp.Body())
	}
}

func TestStoreEncoded(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	url := "http://example.com/enc"
	if err := fetchStore(t, c, clk, mkReq("GET", url), mkResp(200, "plain text body", "Cache-Control", "max-age=60", "ETag", `"t"`)); err != nil {
		t.Fatal(err)
	}
	// a br client first gets identity (no br variant yet) ...
	res := NewResult()
	if out := c.Lookup(mkReq("GET", url, "Accept-Encoding", "gzip, br"), nil, res); out != Hit || res.m.coding != codingIdentity {
		t.Fatalf("first br lookup: %v coding %d", out, res.m.coding)
	}
	// ... and the compression middleware stores the br bytes once.
	if err := c.StoreEncoded(res, "br", []byte("BR-BYTES")); err != nil {
		t.Fatal(err)
	}
	if err := c.StoreEncoded(res, "compress", []byte("x")); !errors.Is(err, ErrNotStorable) {
		t.Fatalf("unknown coding: %v", err)
	}
	out, resp, _ := serve(t, c, mkReq("GET", url, "Accept-Encoding", "gzip, deflate, br"))
	if out != Hit || string(resp.Body()) != "BR-BYTES" || string(resp.Header.ContentEncoding()) != "br" ||
		string(resp.Header.Peek("Vary")) != "Accept-Encoding" || string(resp.Header.Peek("ETag")) != `W/"t"` {
		t.Fatalf("br variant: %v %q CE %q Vary %q ETag %q", out, resp.Body(), resp.Header.ContentEncoding(), resp.Header.Peek("Vary"), resp.Header.Peek("ETag"))
	}
	// identity clients still get the identity variant
	out, resp, _ = serve(t, c, mkReq("GET", url))
	if out != Hit || string(resp.Body()) != "plain text body" || len(resp.Header.ContentEncoding()) != 0 {
		t.Fatalf("identity: %v %q", out, resp.Body())
	}
	// purge removes both
	if n, err := c.PurgeURL(url); err != nil || n != 2 {
		t.Fatalf("purge: %d %v", n, err)
	}
}

func TestHitNoAllocWithVary(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	url := "http://example.com/va?z=1&a=2"
	hdrs := []string{"Accept-Language", "en-US, en;q=0.5", "Accept-Encoding", "gzip, br", "X-Device", "mobile"}
	if err := fetchStore(t, c, clk, mkReq("GET", url, hdrs...), mkResp(200, "body", "Cache-Control", "max-age=60",
		"Vary", "Accept-Language, X-Device, Accept-Encoding")); err != nil {
		t.Fatal(err)
	}
	req := mkReq("GET", url, hdrs...)
	res := NewResult()
	resp := protocol.AcquireResponse()
	n := testing.AllocsPerRun(200, func() {
		resp.Reset()
		if c.Lookup(req, nil, res) != Hit || c.Serve(res, resp) != nil {
			t.Fatal("not a hit")
		}
	})
	if n != 0 {
		t.Fatalf("hit with Vary allocates %v times", n)
	}
}
