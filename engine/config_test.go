package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", []string(cfg.Listen), []string{":18100"}},
		{"admin", cfg.Admin, "127.0.0.1:18101"},
		{"transport", cfg.Transport, "standard"},
		{"max_connections", cfg.Limits.MaxConnections, 10000},
		{"max_body_size", int64(cfg.Limits.MaxBodySize), int64(10 << 20)},
		{"request timeout", cfg.Timeouts.Request.D(), 30 * time.Second},
		{"rate per second", cfg.RateLimit.Rate.PerSecond, 1000.0 / 60},
		{"compression on", *cfg.Compression.Enabled, true},
		{"routes", len(cfg.Routes), 1},
		{"default route root", cfg.Routes[0].Root, "embedded"},
		{"access log on", *cfg.Log.Access, true},
	}
	for _, c := range checks {
		if !equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func equal(a, b any) bool {
	as, ok1 := a.([]string)
	bs, ok2 := b.([]string)
	if ok1 && ok2 {
		return strings.Join(as, ",") == strings.Join(bs, ",")
	}
	return a == b
}

func TestParseFull(t *testing.T) {
	dir := t.TempDir()
	src := `listen: [":8080", "127.0.0.1:8081"]
admin: 127.0.0.1:9000
transport: netpoll
log: {format: json, level: debug, access: false}
limits:
  max_connections: 500
  max_connections_per_ip: 20
  max_body_size: 1MiB
  max_header_size: 16k
rate_limit: {rate: 20/s, burst: 40, max_clients: 1000}
timeouts: {read: 5s, write: 6s, idle: 7s, request: 8s, drain: 2s}
compression: {enabled: false, min_length: 1KiB, encodings: [gzip]}
cors: {allow_origins: ["https://a.example"], max_age: 1h, allow_credentials: true}
upstream: {max_idle_per_host: 8, idle_timeout: 30s, dial_timeout: 1s, fail_timeout: 3s, max_fails: 2}
routes:
  - path: /api/
    upstreams: [http://127.0.0.1:9001, http://127.0.0.1:9002]
    timeout: 2s
    host_header: upstream
  - path: /static/
    root: ` + dir + `
    strip_prefix: true
  - path: /
    upstream: http://127.0.0.1:9003
`
	cfg, err := Parse("full.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Transport != "netpoll" || cfg.Log.Format != "json" || *cfg.Log.Access {
		t.Errorf("top-level fields not read: %+v", cfg)
	}
	if cfg.Limits.MaxBodySize != 1<<20 || cfg.Limits.MaxHeaderSize != 16<<10 {
		t.Errorf("sizes: %d %d", cfg.Limits.MaxBodySize, cfg.Limits.MaxHeaderSize)
	}
	if cfg.RateLimit.Rate.PerSecond != 20 || cfg.RateLimit.Burst != 40 {
		t.Errorf("rate: %+v", cfg.RateLimit)
	}
	// Routes are sorted longest prefix first.
	if got := []string{cfg.Routes[0].Path, cfg.Routes[1].Path, cfg.Routes[2].Path}; strings.Join(got, " ") != "/static/ /api/ /" {
		t.Errorf("route order %v", got)
	}
	api := cfg.Routes[1]
	if api.Timeout.D() != 2*time.Second || len(api.Targets()) != 2 || api.HostHeader != "upstream" {
		t.Errorf("api route %+v", api)
	}
	if cfg.Routes[2].Timeout.D() != 8*time.Second {
		t.Errorf("route timeout default = %v, want timeouts.request", cfg.Routes[2].Timeout.D())
	}
}

func TestParseErrors(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, src string
		line      int
		want      string
	}{
		{"unknown top key", "listen: :1\nbogus: 1\n", 2, `unknown key "bogus"`},
		{"unknown nested key", "limits:\n  max_conns: 5\n", 2, `unknown key "max_conns"`},
		{"unknown route key", "routes:\n  - path: /\n    upstreams: [http://a:1]\n    retries: 3\n", 4, `unknown key "retries"`},
		{"bad duration", "timeouts:\n  read: 30 seconds\n", 2, `bad duration "30 seconds"`},
		{"bare number duration", "timeouts:\n  read: 30\n", 2, `bad duration "30"`},
		{"bad size", "limits:\n  max_body_size: ten megs\n", 2, `bad size "ten megs"`},
		{"bad rate", "rate_limit:\n  rate: fast\n", 2, `bad rate "fast"`},
		{"bad rate unit", "rate_limit:\n  rate: 5/week\n", 2, `bad rate unit`},
		{"wrong type", "limits:\n  max_connections: lots\n", 2, `"lots" is not a whole number`},
		{"route no target", "routes:\n  - path: /x/\n", 2, `route "/x/" has no target`},
		{"route no path", "routes:\n  - upstreams: [http://a:1]\n", 2, `route has no path`},
		{"route relative path", "routes:\n  - path: api\n    root: /\n", 2, `must start with /`},
		{"route both targets", "routes:\n  - path: /\n    root: /\n    upstream: http://a:1\n", 2, `more than one target`},
		{"malformed url", "routes:\n  - path: /\n    upstream: \"http://[::1\"\n", 2, `malformed URL`},
		{"url scheme", "routes:\n  - path: /\n    upstream: ftp://a:1\n", 2, `scheme must be http`},
		{"url no host", "routes:\n  - path: /\n    upstream: http://\n", 2, `missing host`},
		{"url with path", "routes:\n  - path: /\n    upstream: http://a:1/base\n", 2, `want only scheme://host[:port]`},
		{"url bad port", "routes:\n  - path: /\n    upstream: http://a:99999\n", 2, `bad port`},
		{"root missing", "routes:\n  - path: /\n    root: /nonexistent/edgeloop\n", 2, `no such file`},
		{"root not dir", "routes:\n  - path: /\n    root: " + notDir + "\n", 2, `is not a directory`},
		{"duplicate route", "routes:\n  - path: /\n    root: /\n  - path: /\n    root: /\n", 4, `already defined at line 2`},
		{"host header", "routes:\n  - path: /\n    root: /\n    host_header: other\n", 2, `host_header "other"`},
		{"bad listen", "listen: nowhere\n", 0, `listen "nowhere"`},
		{"admin on public", "listen: \":9\"\nadmin: \":9\"\n", 0, `must not be a public listen address`},
		{"bad transport", "transport: io_uring\n", 0, `transport "io_uring"`},
		{"bad yaml", "routes: [\n", 1, `did not find expected`},
		{"bad encoding", "compression: {encodings: [zstd]}\n", 0, `"zstd"`},
		{"sql without database", "routes:\n  - path: /i/{id}\n    sql: SELECT 1\n", 2, `sql needs database.url`},
		{"bad param type", "database: {url: postgres://x/y}\nroutes:\n  - path: /i/{id}\n    sql: SELECT $1\n    params: {id: money}\n", 3, `type "money"`},
		{"query cache without ttl", "database: {url: postgres://x/y}\nroutes:\n  - path: /i\n    sql: SELECT 1\n    cache: {tags: [a]}\n", 3, `cache needs a ttl`},
		{"params on proxy", "routes:\n  - path: /i/{id}\n    upstream: http://a:1\n", 2, `{parameters} are for sql and websocket`},
		{"pubsub without channel", "routes:\n  - path: /ws/\n    websocket: {}\n", 2, `exactly one {channel}`},
		{"ws proxy scheme", "routes:\n  - path: /live/\n    upstream: http://a:1\n    websocket: {}\n", 2, `scheme must be ws`},
		{"slow consumer", "routes:\n  - path: /ws/{channel}\n    websocket: {slow_consumer: wait}\n", 2, `slow_consumer "wait"`},
		{"cache on static", "routes:\n  - path: /\n    root: /\n    cache: {}\n", 2, `cache is for proxy and sql`},
		{"bad cidr", "guard:\n  deny: [10.0.0.0/33]\n", 2, `bad CIDR "10.0.0.0/33"`},
		{"bad guard mode", "guard: {mode: turbo}\n", 0, `guard.mode "turbo"`},
		{"bad workers", "workers: many\n", 1, `want a number or auto`},
		{"bad profile", "tune: {profile: fastest}\n", 0, `tune.profile "fastest"`},
		{"bad wake order", "tune: {wake_order: lifo}\n", 0, `tune.wake_order "lifo"`},
		{"bad io_uring", "tune: {io_uring: always}\n", 0, `tune.io_uring "always"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("edge.yaml", []byte(c.src))
			if err == nil {
				t.Fatalf("no error for:\n%s", c.src)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v is not ErrConfig", err)
			}
			prefix := "edge.yaml: "
			if c.line > 0 {
				prefix = "edge.yaml:" + strconv.Itoa(c.line) + ": "
			}
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %q, want prefix %q containing %q", err, prefix, c.want)
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	env := map[string]string{"EDGELOOP_LISTEN": ":7001,:7002", "EDGELOOP_UPSTREAM": "http://127.0.0.1:7100"}
	fromEnv := FromEnv(func(k string) string { return env[k] })
	f := func(file string, flags Overrides, wantListen string, wantRoot string, wantTargets string) {
		t.Helper()
		cfg, err := Parse("t.yaml", []byte(file))
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Apply(fromEnv.Merge(flags)); err != nil {
			t.Fatal(err)
		}
		var slash *Route
		for i := range cfg.Routes {
			if cfg.Routes[i].Path == "/" {
				slash = &cfg.Routes[i]
			}
		}
		if got := strings.Join(cfg.Listen, ","); got != wantListen {
			t.Errorf("listen = %s, want %s", got, wantListen)
		}
		if slash.Root != wantRoot || strings.Join(slash.Targets(), ",") != wantTargets {
			t.Errorf("/ route = root %q targets %v, want %q %q", slash.Root, slash.Targets(), wantRoot, wantTargets)
		}
	}
	// Environment overrides the file.
	f("listen: \":6000\"\n", Overrides{}, ":7001,:7002", "", "http://127.0.0.1:7100")
	// Flags override the environment.
	f("", Overrides{Listen: []string{":7003"}, Root: "/"}, ":7003", "/", "")
	f("", Overrides{Upstreams: []string{"http://127.0.0.1:7200"}}, ":7001,:7002", "", "http://127.0.0.1:7200")
	// Other routes of the file stay.
	cfg, _ := Parse("t.yaml", []byte("routes:\n  - path: /api/\n    upstream: http://127.0.0.1:1\n"))
	if err := cfg.Apply(Overrides{Root: "/"}); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 2 {
		t.Errorf("routes after --root: %d, want 2", len(cfg.Routes))
	}
	// A bad override is a config error too.
	cfg, _ = Parse("t.yaml", nil)
	if err := cfg.Apply(Overrides{Upstreams: []string{"nope://x"}}); !errors.Is(err, ErrConfig) {
		t.Errorf("bad --upstream: err = %v", err)
	}
}

func TestParseSizeAndRate(t *testing.T) {
	sz := func(in string, want int64) {
		t.Helper()
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	sz("4096", 4096)
	sz("10MiB", 10<<20)
	sz("10 MiB", 10<<20)
	sz("1GB", 1e9)
	sz("512k", 512<<10)
	sz("1.5KiB", 1536)
	for _, bad := range []string{"", "-1", "MiB", "10XB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	rt := func(in string, want float64) {
		t.Helper()
		got, err := ParseRate(in)
		if err != nil || got.PerSecond != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got.PerSecond, err, want)
		}
	}
	rt("60/m", 1)
	rt("20/s", 20)
	rt("3600r/h", 1)
	rt("off", 0)
	rt("0", 0)
}
