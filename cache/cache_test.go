package cache

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"negative size", Config{Size: -1}, false},
		{"tiny size", Config{Size: 1000}, false},
		{"negative ttl", Config{DefaultTTL: -time.Second}, false},
		{"negative max object", Config{MaxObjectSize: -1}, false},
	} {
		c, err := New(tc.cfg)
		if tc.ok != (err == nil) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		if err != nil && !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: err %v is not ErrBadConfig", tc.name, err)
		}
		if c != nil {
			if c.cfg.Size != defaultSize || c.cfg.DefaultTTL != defaultDefaultTTL || c.cfg.MaxObjectSize != defaultMaxObjectSize ||
				c.cfg.CoalesceWait != defaultCoalesceWait {
				t.Errorf("%s: defaults not applied: %+v", tc.name, c.cfg)
			}
			c.Close()
		}
	}
}

func TestMissStoreHit(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	req := mkReq("GET", "http://Example.com:80/a?y=2&x=1")
	out, _, res := serve(t, c, req)
	if out != Miss || res.Status().String() != "edgeloop; fwd=uri-miss" {
		t.Fatalf("cold: %v %q", out, res.Status().String())
	}
	resp := mkResp(200, "hello", "Cache-Control", "max-age=60", "Content-Type", "text/plain", "X-Origin", "1", "ETag", `"v1"`)
	if err := fetchStore(t, c, clk, req, resp); err != nil {
		t.Fatal(err)
	}
	clk.Add(10 * time.Second)
	out, got, res := serve(t, c, mkReq("GET", "http://example.com/a?x=1&y=2"))
	if out != Hit {
		t.Fatalf("want hit, got %v", out)
	}
	if string(got.Body()) != "hello" || got.StatusCode() != 200 {
		t.Fatalf("body %q status %d", got.Body(), got.StatusCode())
	}
	for k, want := range map[string]string{"Age": "10", "Content-Type": "text/plain", "X-Origin": "1",
		"Cache-Status": "edgeloop; hit; ttl=50", "Cache-Control": "max-age=60"} {
		if v := string(got.Header.Peek(k)); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if res.Age() != 10*time.Second || res.TTL() != 50*time.Second {
		t.Errorf("age %v ttl %v", res.Age(), res.TTL())
	}
	// HEAD is answered from the stored GET, without a body.
	out, got, _ = serve(t, c, mkReq("HEAD", "http://example.com/a?x=1&y=2"))
	if out != Hit || len(got.Body()) != 0 || got.Header.ContentLength() != 5 || !got.SkipBody {
		t.Fatalf("head: %v body %q len %d", out, got.Body(), got.Header.ContentLength())
	}
	clk.Add(51 * time.Second)
	out, _, res = serve(t, c, req)
	if out != Revalidate || !strings.Contains(res.Status().String(), "fwd=stale") || string(res.ETag()) != `"v1"` {
		t.Fatalf("stale: %v %s etag %s", out, res.Status().String(), res.ETag())
	}
}
