package engine

import (
	"bytes"
	"context"
	"log/slog"
	"sort"
	"strings"
	"testing"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/common/config"
	"github.com/cloudwego/hertz/pkg/common/ut"
	"github.com/cloudwego/hertz/pkg/route"
)

// funcHandler adapts a function to routeHandler for tests.
type funcHandler func(ctx context.Context, c *app.RequestContext)

func (f funcHandler) Handle(ctx context.Context, c *app.RequestContext) { f(ctx, c) }
func (funcHandler) Close() error                                        { return nil }

// testServer builds a Server whose routes are the given handlers by prefix,
// mounted on a hertz engine without sockets.
func testServer(t *testing.T, yaml string, routes map[string]routeHandler) (*Server, *route.Engine, *bytes.Buffer) {
	t.Helper()
	cfg, err := Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	s := &Server{cfg: cfg, log: slog.New(slog.NewTextHandler(&logBuf, nil)), accessLog: true, cors: newCORS(cfg.CORS)}
	s.routes = &router{fallback: &mountedRoute{handler: notFound{}, metrics: newRouteMetrics("none")}}
	for prefix, h := range routes {
		s.routes.routes = append(s.routes.routes, &mountedRoute{prefix: []byte(prefix), handler: h, metrics: newRouteMetrics(prefix)})
	}
	// The router expects longest prefix first, as buildRoutes leaves them.
	sort.Slice(s.routes.routes, func(i, j int) bool {
		return len(s.routes.routes[i].prefix) > len(s.routes.routes[j].prefix)
	})
	e := route.NewEngine(config.NewOptions(nil))
	e.Use(s.front)
	if s.cors != nil {
		e.Use(s.cors.handle)
	}
	e.NoRoute(s.dispatch)
	return s, e, &logBuf
}

func TestPanicRecovery(t *testing.T) {
	_, e, logs := testServer(t, "", map[string]routeHandler{
		"/boom": funcHandler(func(ctx context.Context, c *app.RequestContext) { panic("kaboom") }),
		"/":     funcHandler(func(ctx context.Context, c *app.RequestContext) { c.String(200, "fine") }),
	})
	w := ut.PerformRequest(e, "GET", "/boom", nil)
	if w.Code != 500 || !strings.Contains(w.Body.String(), "internal error") {
		t.Fatalf("panic: %d %q", w.Code, w.Body.String())
	}
	if !strings.Contains(logs.String(), "kaboom") || !strings.Contains(logs.String(), "stack=") {
		t.Errorf("panic not logged with its stack: %s", logs.String())
	}
	// The server keeps serving.
	if w := ut.PerformRequest(e, "GET", "/ok", nil); w.Code != 200 || w.Body.String() != "fine" {
		t.Errorf("after panic: %d %q", w.Code, w.Body.String())
	}
}

func TestRequestID(t *testing.T) {
	var seen string
	_, e, _ := testServer(t, "", map[string]routeHandler{
		"/": funcHandler(func(ctx context.Context, c *app.RequestContext) {
			seen = string(c.Request.Header.Peek(headerRequestID))
			c.String(200, "x")
		}),
	})
	w := ut.PerformRequest(e, "GET", "/", nil)
	got := w.Header().Get(headerRequestID)
	if len(got) != 25 || got != seen {
		t.Errorf("generated id %q (handler saw %q)", got, seen)
	}
	w2 := ut.PerformRequest(e, "GET", "/", nil)
	if w2.Header().Get(headerRequestID) == got {
		t.Error("two requests got the same id")
	}
	// A sane client id is kept; an unsafe one is replaced.
	f := func(in string, keep bool) {
		t.Helper()
		w := ut.PerformRequest(e, "GET", "/", nil, ut.Header{Key: headerRequestID, Value: in})
		if out := w.Header().Get(headerRequestID); (out == in) != keep {
			t.Errorf("client id %q: response id %q, keep=%v", in, out, keep)
		}
	}
	f("abc-123", true)
	f(strings.Repeat("a", 128), true)
	f(strings.Repeat("a", 129), false)
	f("has space", false)
	f(`quote"`, false)
}

// TestFrontAllocatesNothing: what every request goes through in edgeloop's
// own code (request id, routing, metrics, dispatch) makes no heap
// allocation, so a steady load does not make work for the collector.
func TestFrontAllocatesNothing(t *testing.T) {
	body := []byte("ok")
	s, _, _ := testServer(t, "", map[string]routeHandler{
		"/": funcHandler(func(ctx context.Context, c *app.RequestContext) {
			c.SetStatusCode(200)
			c.Response.SetBodyRaw(body)
		}),
	})
	s.accessLog = false // the access log, when on, allocates its record
	chain := app.HandlersChain{s.front, s.dispatch}
	c := app.NewContext(0)
	ctx := context.Background()
	serve := func() {
		c.Reset()
		c.Request.Header.SetMethod("GET")
		c.Request.SetRequestURI("/item?id=1")
		c.Request.Header.SetHost("h")
		c.SetHandlers(chain)
		c.Next(ctx)
	}
	serve()
	first := string(c.Response.Header.Peek(headerRequestID))
	if n := testing.AllocsPerRun(500, serve); n != 0 {
		t.Errorf("%.1f allocations per request, want 0", n)
	}
	if c.Response.StatusCode() != 200 || len(c.Response.Header.Peek(headerRequestID)) != 25 ||
		string(c.Response.Header.Peek(headerRequestID)) == first {
		t.Errorf("status %d, id %q after %q: the chain did not run", c.Response.StatusCode(),
			c.Response.Header.Peek(headerRequestID), first)
	}
}

func TestCORS(t *testing.T) {
	yaml := "cors:\n  allow_origins: [\"https://app.example\"]\n  expose_headers: [X-Request-Id]\n  max_age: 1h\n"
	var reached int
	_, e, _ := testServer(t, yaml, map[string]routeHandler{
		"/": funcHandler(func(ctx context.Context, c *app.RequestContext) { reached++; c.String(200, "x") }),
	})
	// Preflight from an allowed origin: answered here, not passed on.
	w := ut.PerformRequest(e, "OPTIONS", "/api", nil,
		ut.Header{Key: "Origin", Value: "https://app.example"},
		ut.Header{Key: "Access-Control-Request-Method", Value: "PUT"},
		ut.Header{Key: "Access-Control-Request-Headers", Value: "X-Custom"})
	h := w.Header()
	if w.Code != 204 || h.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		h.Get("Access-Control-Max-Age") != "3600" || h.Get("Access-Control-Allow-Headers") != "X-Custom" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PUT") || reached != 0 {
		t.Errorf("preflight: %d %v reached=%d", w.Code, h, reached)
	}
	// Actual request from an allowed origin.
	w = ut.PerformRequest(e, "GET", "/x", nil, ut.Header{Key: "Origin", Value: "https://app.example"})
	if w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" ||
		w.Header().Get("Access-Control-Expose-Headers") != "X-Request-Id" ||
		!strings.Contains(w.Header().Get("Vary"), "Origin") {
		t.Errorf("actual request: %v", w.Header())
	}
	// A foreign origin gets no CORS headers; its preflight is refused.
	w = ut.PerformRequest(e, "GET", "/x", nil, ut.Header{Key: "Origin", Value: "https://evil.example"})
	if w.Header().Get("Access-Control-Allow-Origin") != "" || w.Code != 200 {
		t.Errorf("foreign origin: %d %v", w.Code, w.Header())
	}
	w = ut.PerformRequest(e, "OPTIONS", "/x", nil, ut.Header{Key: "Origin", Value: "https://evil.example"},
		ut.Header{Key: "Access-Control-Request-Method", Value: "GET"})
	if w.Code != 403 {
		t.Errorf("foreign preflight: %d", w.Code)
	}
}

func TestRouterLongestPrefix(t *testing.T) {
	mk := func(name string) routeHandler {
		return funcHandler(func(ctx context.Context, c *app.RequestContext) { c.String(200, name) })
	}
	cfg, err := Parse("t.yaml", []byte("routes:\n  - path: /\n    root: embedded\n  - path: /api/\n    upstream: http://127.0.0.1:1\n  - path: /api/v2/\n    upstream: http://127.0.0.1:2\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := &router{fallback: &mountedRoute{handler: mk("none")}}
	for _, rc := range cfg.Routes {
		r.routes = append(r.routes, &mountedRoute{prefix: []byte(rc.Prefix()), handler: mk(rc.Path)})
	}
	f := func(path, want string) {
		t.Helper()
		got := string(r.match([]byte(path)).prefix)
		if got != want {
			t.Errorf("match(%q) = %q, want %q", path, got, want)
		}
	}
	f("/api/v2/x", "/api/v2/")
	f("/api/v1/x", "/api/")
	f("/apix", "/")
	f("/", "/")
}
