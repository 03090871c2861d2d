package compress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/common/config"
	"github.com/cloudwego/hertz/pkg/common/hlog"
	"github.com/cloudwego/hertz/pkg/common/ut"
	"github.com/cloudwego/hertz/pkg/route"
	"github.com/klauspost/compress/gzip"
	dto "github.com/prometheus/client_model/go"
)

func TestMain(m *testing.M) {
	hlog.SetLevel(hlog.LevelWarn) // route registration logs at debug
	os.Exit(m.Run())
}

// page is a compressible HTML body well above the default MinLength.
var page = []byte(strings.Repeat("<p>edgeloop caches and compresses responses at the edge.</p>\n", 40))

// newEngine returns a socket-free hertz engine with the middleware in front
// of h on every method at /x.
func newEngine(t *testing.T, cfg Config, h app.HandlerFunc) *route.Engine {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e := route.NewEngine(config.NewOptions(nil))
	e.Use(c.Handler())
	e.Any("/x", h)
	return e
}

func serveHTML(body []byte) app.HandlerFunc {
	return func(_ context.Context, rc *app.RequestContext) {
		rc.Data(200, "text/html; charset=utf-8", body)
	}
}

// decode reverses the coding named by a Content-Encoding value.
func decode(t *testing.T, ce string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch ce {
	case "":
		return body
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip header: %v", err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	default:
		t.Fatalf("unexpected Content-Encoding %q", ce)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", ce, err)
	}
	return out
}

func TestEligibility(t *testing.T) {
	small := page[:100]
	tests := []struct {
		name    string
		method  string
		reqHdr  []ut.Header
		handler app.HandlerFunc
		wantCE  string // Content-Encoding after the middleware
		vary    bool   // Vary: Accept-Encoding expected
		body    []byte // decoded body expected
	}{
		{"gzip", "GET", ae("gzip"), serveHTML(page), "gzip", true, page},
		{"br", "GET", ae("gzip, br"), serveHTML(page), "br", true, page},
		{"no Accept-Encoding", "GET", nil, serveHTML(page), "", true, page},
		{"client excludes both", "GET", ae("br;q=0, gzip;q=0"), serveHTML(page), "", true, page},
		{"request no-transform", "GET", append(ae("br"), ut.Header{Key: "Cache-Control", Value: "no-transform"}),
			serveHTML(page), "", true, page},
		{"already encoded", "GET", ae("br"), func(_ context.Context, rc *app.RequestContext) {
			rc.Response.Header.Set("Content-Encoding", "deflate")
			rc.Data(200, "text/html", page)
		}, "deflate", false, nil},
		{"204", "GET", ae("br"), withStatus(204), "", false, nil},
		{"304", "GET", ae("br"), withStatus(304), "", false, nil},
		{"101", "GET", ae("br"), withStatus(101), "", false, nil},
		{"206", "GET", ae("br"), func(_ context.Context, rc *app.RequestContext) {
			rc.Response.Header.Set("Content-Range", fmt.Sprintf("bytes 0-%d/9999", len(page)-1))
			rc.Data(206, "text/html", page)
		}, "", false, page},
		{"Content-Range on 200", "GET", ae("br"), func(_ context.Context, rc *app.RequestContext) {
			rc.Response.Header.Set("Content-Range", "bytes 0-10/11")
			rc.Data(200, "text/html", page)
		}, "", false, page},
		{"response no-transform", "GET", ae("br"), func(_ context.Context, rc *app.RequestContext) {
			rc.Response.Header.Set("Cache-Control", "public, No-Transform, max-age=60")
			rc.Data(200, "text/html", page)
		}, "", false, page},
		{"not a compressible type", "GET", ae("br"), func(_ context.Context, rc *app.RequestContext) {
			rc.Data(200, "image/png", page)
		}, "", false, page},
		{"type case and parameters", "GET", ae("gzip"), func(_ context.Context, rc *app.RequestContext) {
			rc.Data(200, "Application/JSON ; charset=utf-8", page)
		}, "gzip", true, page},
		{"too small", "GET", ae("br"), serveHTML(small), "", false, small},
		{"404 has a body", "GET", ae("br"), func(_ context.Context, rc *app.RequestContext) {
			rc.Data(404, "text/html", page)
		}, "br", true, page},
		{"500 has a body", "GET", ae("gzip"), func(_ context.Context, rc *app.RequestContext) {
			rc.Data(500, "text/plain", page)
		}, "gzip", true, page},
		{"incompressible", "GET", ae("gzip"), serveHTML(noise(4096)), "", true, noise(4096)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, Config{}, tt.handler)
			w := ut.PerformRequest(e, tt.method, "/x", nil, tt.reqHdr...)
			res := w.Result()
			ce := string(res.Header.ContentEncoding())
			if ce != tt.wantCE {
				t.Fatalf("Content-Encoding = %q, want %q", ce, tt.wantCE)
			}
			gotVary := hasToken(res.Header.Peek("Vary"), "Accept-Encoding")
			if gotVary != tt.vary {
				t.Errorf("Vary = %q, want Accept-Encoding: %v", res.Header.Peek("Vary"), tt.vary)
			}
			if tt.body == nil {
				return
			}
			if tt.wantCE == "" || tt.wantCE == "gzip" || tt.wantCE == "br" {
				if got := decode(t, tt.wantCE, res.Body()); !bytes.Equal(got, tt.body) {
					t.Errorf("decoded body: %d bytes, want %d", len(got), len(tt.body))
				}
			}
			if tt.wantCE != "" {
				if cl := res.Header.ContentLength(); cl != len(res.Body()) {
					t.Errorf("Content-Length = %d, body is %d bytes", cl, len(res.Body()))
				}
				if len(res.Body()) >= len(tt.body) {
					t.Errorf("coded body %d bytes is not smaller than %d", len(res.Body()), len(tt.body))
				}
			}
		})
	}
}

func ae(v string) []ut.Header { return []ut.Header{{Key: "Accept-Encoding", Value: v}} }

func withStatus(code int) app.HandlerFunc {
	return func(_ context.Context, rc *app.RequestContext) {
		rc.Data(code, "text/html", page)
	}
}

// noise is incompressible bytes (a fixed seed, so every call agrees).
func noise(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestMinLengthBoundary(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want string
	}{{599, ""}, {600, "gzip"}, {601, "gzip"}} {
		e := newEngine(t, Config{MinLength: 600}, serveHTML(page[:tt.n]))
		res := ut.PerformRequest(e, "GET", "/x", nil, ae("gzip")...).Result()
		if ce := string(res.Header.ContentEncoding()); ce != tt.want {
			t.Errorf("%d bytes: Content-Encoding %q, want %q", tt.n, ce, tt.want)
		}
	}
}

func TestVaryMerge(t *testing.T) {
	f := func(existing []string, accept string, want []string) {
		t.Helper()
		e := newEngine(t, Config{}, func(_ context.Context, rc *app.RequestContext) {
			for _, v := range existing {
				rc.Response.Header.Add("Vary", v)
			}
			rc.Data(200, "text/html", page)
		})
		res := ut.PerformRequest(e, "GET", "/x", nil, ae(accept)...).Result()
		got := res.Header.GetAll("Vary")
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("Vary %q (client %q) -> %q, want %q", existing, accept, got, want)
		}
	}
	f(nil, "gzip", []string{"Accept-Encoding"})
	f(nil, "", []string{"Accept-Encoding"})
	f([]string{"Origin"}, "gzip", []string{"Origin, Accept-Encoding"})
	f([]string{"Origin"}, "", []string{"Origin, Accept-Encoding"})
	f([]string{"origin, accept-encoding"}, "br", []string{"origin, accept-encoding"})
	f([]string{"*"}, "br", []string{"*"})
	f([]string{"Origin", "Cookie"}, "br", []string{"Origin", "Cookie", "Accept-Encoding"})
	f([]string{"Origin", "Accept-Encoding"}, "br", []string{"Origin", "Accept-Encoding"})
}

func TestCodedHeaders(t *testing.T) {
	f := func(etag, accept, wantETag string, wantRanges bool) {
		t.Helper()
		e := newEngine(t, Config{}, func(_ context.Context, rc *app.RequestContext) {
			rc.Response.Header.Set("ETag", etag)
			rc.Response.Header.Set("Accept-Ranges", "bytes")
			rc.Data(200, "text/css", page)
		})
		res := ut.PerformRequest(e, "GET", "/x", nil, ae(accept)...).Result()
		if got := string(res.Header.Peek("ETag")); got != wantETag {
			t.Errorf("ETag %s (client %q) -> %s, want %s", etag, accept, got, wantETag)
		}
		if got := len(res.Header.Peek("Accept-Ranges")) != 0; got != wantRanges {
			t.Errorf("client %q: Accept-Ranges present %v, want %v", accept, got, wantRanges)
		}
	}
	f(`"v1"`, "br", `W/"v1"`, false)
	f(`"v1"`, "gzip", `W/"v1"`, false)
	f(`W/"v1"`, "br", `W/"v1"`, false)
	f(`"v1"`, "", `"v1"`, true) // identity keeps the strong tag and ranges
	f(`garbage`, "br", `garbage`, false)
}

// TestHead checks that HEAD carries the header fields GET would, without a
// body and without a Content-Length it cannot know.
func TestHead(t *testing.T) {
	handler := func(_ context.Context, rc *app.RequestContext) {
		rc.Response.Header.Set("ETag", `"h1"`)
		rc.Response.Header.Set("Accept-Ranges", "bytes")
		rc.Data(200, "text/html", page)
	}
	e := newEngine(t, Config{}, handler)
	get := ut.PerformRequest(e, "GET", "/x", nil, ae("br")...).Result()
	hw := ut.PerformRequest(e, "HEAD", "/x", nil, ae("br")...)
	head := hw.Result()
	for _, k := range []string{"Content-Encoding", "Vary", "ETag", "Accept-Ranges", "Content-Type"} {
		if g, h := get.Header.Get(k), head.Header.Get(k); g != h {
			t.Errorf("%s: GET %q, HEAD %q", k, g, h)
		}
	}
	if head.Header.Get("Content-Encoding") != "br" {
		t.Errorf("HEAD Content-Encoding %q, want br", head.Header.Get("Content-Encoding"))
	}
	// The recorder's Result() invents a Content-Length from the body it
	// saw, so look at the header the middleware left.
	if cl := hw.Header().Peek("Content-Length"); len(head.Body()) != 0 || len(cl) != 0 {
		t.Errorf("HEAD body %d bytes, Content-Length %q; want none", len(head.Body()), cl)
	}

	// A HEAD handler that only declares the length (as hertz's FS does).
	declare := func(n int) app.HandlerFunc {
		return func(_ context.Context, rc *app.RequestContext) {
			rc.SetContentType("text/html")
			rc.Response.Header.SetContentLength(n)
			rc.Response.SkipBody = true
		}
	}
	for _, tt := range []struct {
		n    int
		want string
	}{{100, ""}, {5000, "gzip"}} {
		e := newEngine(t, Config{}, declare(tt.n))
		hw := ut.PerformRequest(e, "HEAD", "/x", nil, ae("gzip")...)
		if ce := hw.Header().Get("Content-Encoding"); ce != tt.want {
			t.Errorf("HEAD declaring %d bytes: Content-Encoding %q, want %q", tt.n, ce, tt.want)
		}
		wantCL := strconv.Itoa(tt.n)
		if tt.want != "" {
			wantCL = "" // the coded length is unknown
		}
		if cl := string(hw.Header().Peek("Content-Length")); cl != wantCL {
			t.Errorf("HEAD declaring %d bytes: Content-Length %q, want %q", tt.n, cl, wantCL)
		}
	}
}

func TestMetrics(t *testing.T) {
	read := func(e Encoding) (n, in, out float64) {
		var m dto.Metric
		m.Reset()
		_ = encMetrics[e].responses.Write(&m)
		n = m.GetCounter().GetValue()
		_ = encMetrics[e].in.Write(&m)
		in = m.GetCounter().GetValue()
		_ = encMetrics[e].out.Write(&m)
		out = m.GetCounter().GetValue()
		return
	}
	e := newEngine(t, Config{}, serveHTML(page))
	n0, in0, out0 := read(Gzip)
	res := ut.PerformRequest(e, "GET", "/x", nil, ae("gzip")...).Result()
	n1, in1, out1 := read(Gzip)
	if n1-n0 != 1 || in1-in0 != float64(len(page)) || out1-out0 != float64(len(res.Body())) {
		t.Errorf("gzip metrics moved by %v responses, %v in, %v out; want 1, %d, %d",
			n1-n0, in1-in0, out1-out0, len(page), len(res.Body()))
	}
	id0, _, _ := read(Identity)
	ut.PerformRequest(e, "GET", "/x", nil)
	if id1, _, _ := read(Identity); id1-id0 != 1 {
		t.Errorf("identity responses moved by %v, want 1", id1-id0)
	}
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		err  error
	}{
		{"zero value", Config{}, nil},
		{"all set", Config{MinLength: 1, GzipLevel: 9, BrotliLevel: 11, Types: []string{"Text/HTML", "text/*"},
			Encodings: []string{"gzip", "br"}}, nil},
		{"negative min length", Config{MinLength: -1}, ErrBadMinLength},
		{"gzip level 10", Config{GzipLevel: 10}, ErrBadLevel},
		{"gzip level -1", Config{GzipLevel: -1}, ErrBadLevel},
		{"brotli level 12", Config{BrotliLevel: 12}, ErrBadLevel},
		{"brotli level -1", Config{BrotliLevel: -1}, ErrBadLevel},
		{"unknown encoding", Config{Encodings: []string{"zstd"}}, ErrUnknownEncoding},
		{"identity listed", Config{Encodings: []string{"br", "identity"}}, ErrUnknownEncoding},
		{"duplicate", Config{Encodings: []string{"gzip", "x-gzip"}}, ErrDuplicateEncoding},
		{"type without subtype", Config{Types: []string{"text"}}, ErrBadType},
		{"wildcard type", Config{Types: []string{"*/*"}}, ErrBadType},
		{"bad subtype", Config{Types: []string{"text/ht ml"}}, ErrBadType},
		{"empty type", Config{Types: []string{""}}, ErrBadType},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: New error %v, want %v", tt.name, err, tt.err)
		}
	}
}

func TestTypeMatch(t *testing.T) {
	ts, err := newTypeSet(defaultTypes)
	if err != nil {
		t.Fatal(err)
	}
	f := func(ct string, want bool) {
		t.Helper()
		if got := ts.match([]byte(ct)); got != want {
			t.Errorf("match(%q) = %v, want %v", ct, got, want)
		}
	}
	f("text/html", true)
	f("TEXT/CSS; charset=utf-8", true)
	f(" application/json ", true)
	f("image/svg+xml", true)
	f("application/wasm", true)
	f("text/", false)
	f("text", false)
	f("image/png", false)
	f("video/mp4", false)
	f("application/zip", false)
	f("font/woff2", false)
	f("", false)
	f(strings.Repeat("a", 200)+"/json", false)
}
