package engine

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// Normalize fills in defaults and validates the config. It is idempotent, so
// it can run again after command-line overrides.
func (c *Config) Normalize() error {
	if len(c.Listen) == 0 {
		c.Listen = StringList{DefaultListen}
	}
	for _, a := range c.Listen {
		if err := checkHostPort(a); err != nil {
			return c.errf(0, "listen %q: %v", a, err)
		}
	}
	switch c.Admin {
	case "":
		c.Admin = DefaultAdmin
	case "off":
	default:
		if err := checkHostPort(c.Admin); err != nil {
			return c.errf(0, "admin %q: %v", c.Admin, err)
		}
		for _, a := range c.Listen {
			// Port 0 picks a free port for each, so they cannot collide.
			if a == c.Admin && !strings.HasSuffix(a, ":0") {
				return c.errf(0, "admin %q must not be a public listen address", c.Admin)
			}
		}
	}
	switch c.Transport {
	case "":
		c.Transport = "standard"
	case "standard", "netpoll":
	default:
		return c.errf(0, "transport %q: want standard or netpoll", c.Transport)
	}
	if err := c.Log.normalize(c); err != nil {
		return err
	}
	c.Limits.normalize()
	c.RateLimit.normalize()
	c.Timeouts.normalize()
	if c.Compression.Enabled == nil {
		on := true
		c.Compression.Enabled = &on
	}
	if c.Compression.MinLength == 0 {
		c.Compression.MinLength = 512
	}
	for _, e := range c.Compression.Encodings {
		if e != "br" && e != "gzip" {
			return c.errf(0, "compression.encodings: %q: want br or gzip", e)
		}
	}
	if c.CORS.MaxAge == 0 {
		c.CORS.MaxAge = Duration(defaultCORSMaxAge)
	}
	c.Upstream.normalize()
	if err := c.normalizeFeatures(); err != nil {
		return err
	}
	if len(c.Routes) == 0 {
		c.Routes = []Route{{Path: "/", Root: "embedded"}}
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
	switch c.Steer {
	case "":
		c.Steer = "none"
	case "none", "cpu":
	default:
		return c.errf(0, "steer %q: want none or cpu", c.Steer)
	}
	seen := map[string]int{}
	for i := range c.Routes {
		r := &c.Routes[i]
		if err := r.validate(c); err != nil {
			return err
		}
		if prev, dup := seen[r.Path]; dup {
			return c.errf(r.line, "route %q is already defined at line %d", r.Path, prev)
		}
		seen[r.Path] = r.line
	}
	// Longest prefix first, so the first match is the most specific.
	sort.SliceStable(c.Routes, func(i, j int) bool { return len(c.Routes[i].Prefix()) > len(c.Routes[j].Prefix()) })
	return nil
}

func (c *Config) errf(line int, format string, args ...any) error {
	return &ConfigError{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (l *LogConfig) normalize(c *Config) error {
	switch l.Format {
	case "":
		l.Format = "text"
	case "text", "json":
	default:
		return c.errf(0, "log.format %q: want text or json", l.Format)
	}
	switch l.Level {
	case "":
		l.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		return c.errf(0, "log.level %q: want debug, info, warn or error", l.Level)
	}
	if l.Access == nil {
		on := true
		l.Access = &on
	}
	return nil
}

func (l *LimitsConfig) normalize() {
	if l.MaxConnections == 0 {
		l.MaxConnections = defaultMaxConns
	}
	if l.MaxConnectionsPerIP == 0 {
		l.MaxConnectionsPerIP = defaultMaxConnsPerIP
	}
	if l.MaxBodySize == 0 {
		l.MaxBodySize = defaultMaxBody
	}
	if l.MaxHeaderSize == 0 {
		l.MaxHeaderSize = defaultMaxHeader
	}
}

func (r *RateLimitConfig) normalize() {
	if r.Rate.Text == "" {
		r.Rate = Rate{PerSecond: defaultRatePerMinute / 60.0, Text: "1000/m"}
	}
	if r.Burst == 0 {
		r.Burst = defaultBurst
	}
	if r.MaxClients == 0 {
		r.MaxClients = 65536
	}
}

func (t *TimeoutsConfig) normalize() {
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&t.Read, defaultReadTimeout)
	def(&t.Header, defaultHeaderTimeout)
	def(&t.Write, defaultWriteTimeout)
	def(&t.Idle, defaultIdleTimeout)
	def(&t.Request, defaultRequestTimeout)
	def(&t.Drain, defaultDrainTimeout)
}

func (u *UpstreamConfig) normalize() {
	if u.MaxIdlePerHost == 0 {
		u.MaxIdlePerHost = 1024
	}
	if u.IdleTimeout == 0 {
		u.IdleTimeout = Duration(90 * time.Second)
	}
	if u.DialTimeout == 0 {
		u.DialTimeout = Duration(5 * time.Second)
	}
	if u.FailTimeout == 0 {
		u.FailTimeout = Duration(10 * time.Second)
	}
	if u.MaxFails == 0 {
		u.MaxFails = 1
	}
}

// Route kinds, from the keys a route sets.
const (
	KindProxy   = "proxy"   // upstreams (http://)
	KindStatic  = "static"  // root
	KindQuery   = "query"   // sql
	KindPubSub  = "pubsub"  // websocket, no upstream
	KindWSProxy = "wsproxy" // websocket with ws:// upstreams
)

// Kind says what the route does.
func (r *Route) Kind() string {
	switch {
	case r.SQL != "":
		return KindQuery
	case r.WebSocket != nil && len(r.Targets()) > 0:
		return KindWSProxy
	case r.WebSocket != nil:
		return KindPubSub
	case r.Root != "":
		return KindStatic
	}
	return KindProxy
}

// Prefix is the literal part of Path before the first {param}: what the
// router matches on.
func (r *Route) Prefix() string {
	if i := strings.IndexByte(r.Path, '{'); i >= 0 {
		return r.Path[:i]
	}
	return r.Path
}

// PathParams lists the {name} segments of Path in order.
func (r *Route) PathParams() []string {
	var out []string
	rest := r.Path
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, rest[i+1:i+j])
		rest = rest[i+j+1:]
	}
}

var paramTypes = map[string]bool{"int": true, "float": true, "text": true, "bool": true, "uuid": true, "timestamp": true}

func (r *Route) validate(c *Config) error {
	if r.Path == "" {
		return c.errf(r.line, "route has no path")
	}
	if !strings.HasPrefix(r.Path, "/") {
		return c.errf(r.line, "route path %q must start with /", r.Path)
	}
	targets := r.Targets()
	kinds := 0
	for _, set := range []bool{len(targets) > 0 && r.WebSocket == nil, r.Root != "", r.SQL != "", r.WebSocket != nil} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		return c.errf(r.line, "route %q has no target: give upstreams, root, sql or websocket", r.Path)
	case kinds > 1:
		return c.errf(r.line, "route %q has more than one target (upstreams, root, sql, websocket): give one", r.Path)
	}
	for _, p := range r.PathParams() {
		if p == "" || strings.ContainsAny(p, "{}/") {
			return c.errf(r.line, "route %q: bad path parameter", r.Path)
		}
	}
	if strings.Count(r.Path, "{") != strings.Count(r.Path, "}") {
		return c.errf(r.line, "route %q: unbalanced { }", r.Path)
	}
	kind := r.Kind()
	if len(r.PathParams()) > 0 && kind != KindQuery && kind != KindPubSub {
		return c.errf(r.line, "route %q: {parameters} are for sql and websocket routes", r.Path)
	}
	wantScheme := "http"
	if kind == KindWSProxy {
		wantScheme = "ws"
	}
	for _, t := range targets {
		if err := checkUpstreamURL(t, wantScheme); err != nil {
			return c.errf(r.line, "route %q: upstream %q: %v", r.Path, t, err)
		}
	}
	if kind == KindStatic && r.Root != "embedded" {
		st, err := os.Stat(r.Root)
		if err != nil {
			return c.errf(r.line, "route %q: root: %v", r.Path, err)
		}
		if !st.IsDir() {
			return c.errf(r.line, "route %q: root %q is not a directory", r.Path, r.Root)
		}
	}
	switch r.HostHeader {
	case "", "preserve", "upstream":
	default:
		return c.errf(r.line, "route %q: host_header %q: want preserve or upstream", r.Path, r.HostHeader)
	}
	if err := r.validateKind(c, kind); err != nil {
		return err
	}
	if r.Timeout == 0 {
		r.Timeout = c.Timeouts.Request
	}
	return nil
}

// validateKind checks the keys that belong to one kind of route.
func (r *Route) validateKind(c *Config, kind string) error {
	if r.Cache != nil && kind != KindProxy && kind != KindQuery {
		return c.errf(r.line, "route %q: cache is for proxy and sql routes", r.Path)
	}
	if kind != KindQuery && (len(r.Params) > 0 || r.Single || r.MaxRows != 0) {
		return c.errf(r.line, "route %q: params, single and max_rows are for sql routes", r.Path)
	}
	switch kind {
	case KindQuery:
		if c.Database.URL == "" {
			return c.errf(r.line, "route %q: sql needs database.url", r.Path)
		}
		for name, typ := range r.Params {
			if !paramTypes[typ] {
				return c.errf(r.line, "route %q: param %q: type %q: want int, float, text, bool, uuid or timestamp", r.Path, name, typ)
			}
		}
		if r.Cache.On() && r.Cache.TTL <= 0 {
			return c.errf(r.line, "route %q: cache needs a ttl", r.Path)
		}
		if r.MaxRows < 0 {
			return c.errf(r.line, "route %q: max_rows must not be negative", r.Path)
		}
	case KindPubSub:
		if ps := r.PathParams(); len(ps) != 1 || ps[0] != "channel" {
			return c.errf(r.line, "route %q: a pub/sub websocket route needs exactly one {channel} in its path", r.Path)
		}
	}
	if r.WebSocket != nil {
		return r.WebSocket.normalize(c, r)
	}
	return nil
}

func (w *WebSocketConfig) normalize(c *Config, r *Route) error {
	if w.MaxConns == 0 {
		w.MaxConns = 100000
	}
	if w.MaxConnsPerIP == 0 {
		w.MaxConnsPerIP = 100
	}
	if w.SendQueue == 0 {
		w.SendQueue = 256
	}
	switch w.SlowConsumer {
	case "":
		w.SlowConsumer = "disconnect"
	case "disconnect", "drop_oldest":
	default:
		return c.errf(r.line, "route %q: slow_consumer %q: want disconnect or drop_oldest", r.Path, w.SlowConsumer)
	}
	if w.MaxMessage == 0 {
		w.MaxMessage = 64 << 10
	}
	if w.PingInterval == 0 {
		w.PingInterval = Duration(30 * time.Second)
	}
	if w.IdleTimeout == 0 {
		w.IdleTimeout = Duration(120 * time.Second)
	}
	return nil
}

// checkUpstreamURL accepts scheme://host:port[/] upstreams (http, or ws
// for WebSocket proxy routes). A path on the URL
// is refused rather than silently ignored.
func checkUpstreamURL(s, scheme string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("malformed URL")
	}
	if u.Scheme != scheme {
		return fmt.Errorf("scheme must be %s", scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("missing host")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("want only scheme://host[:port]")
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return fmt.Errorf("bad port %q", p)
		}
	}
	return nil
}

func checkHostPort(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("want host:port or :port")
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// normalizeFeatures fills the defaults of the cache, guard, database and
// tuning sections.
func (c *Config) normalizeFeatures() error {
	if c.Cache.Size == 0 {
		c.Cache.Size = 256 << 20
	}
	if c.Cache.MaxObjectSize == 0 {
		c.Cache.MaxObjectSize = 64 << 20
	}
	if c.Cache.CoalesceWait == 0 {
		c.Cache.CoalesceWait = Duration(5 * time.Second)
	}
	if c.Cache.Size < 1<<20 {
		return c.errf(0, "cache.size %d: at least 1MiB", c.Cache.Size)
	}
	g := &c.Guard
	switch g.Mode {
	case "":
		g.Mode = "auto"
	case "auto", "native", "generic", "userspace", "off":
	default:
		return c.errf(0, "guard.mode %q: want auto, native, generic, userspace or off", g.Mode)
	}
	if g.MaxConnsPerIP == 0 && c.Limits.MaxConnectionsPerIP > 0 {
		g.MaxConnsPerIP = c.Limits.MaxConnectionsPerIP
	}
	if g.MaxSources == 0 {
		g.MaxSources = 65536
	}
	if g.PinPath == "" {
		g.PinPath = "/sys/fs/bpf/edgeloop"
	}
	if g.Cgroup == "" {
		g.Cgroup = "edgeloop"
	}
	e := &g.Escalate
	if e.Threshold == 0 {
		e.Threshold = 300
	}
	if e.Window == 0 {
		e.Window = Duration(30 * time.Second)
	}
	if e.Ban == 0 {
		e.Ban = Duration(60 * time.Second)
	}
	d := &c.Database
	def := func(v *Duration, x time.Duration) {
		if *v == 0 {
			*v = Duration(x)
		}
	}
	if d.MaxConns == 0 {
		d.MaxConns = 100
	}
	if d.MinConns == 0 {
		d.MinConns = 10
	}
	if d.MinConns > d.MaxConns {
		d.MinConns = d.MaxConns
	}
	def(&d.AcquireTimeout, 5*time.Second)
	def(&d.IdleTimeout, 600*time.Second)
	def(&d.MaxLifetime, 1800*time.Second)
	def(&d.HealthCheckPeriod, time.Minute)
	if d.NotifyChannel == "" {
		d.NotifyChannel = "edgeloop_invalidate"
	}
	if d.URL != "" && !strings.HasPrefix(d.URL, "postgres://") && !strings.HasPrefix(d.URL, "postgresql://") {
		return c.errf(0, "database.url: want postgres://...")
	}
	switch c.Tune.Profile {
	case "":
		c.Tune.Profile = "balanced"
	case "balanced", "throughput", "latency":
	default:
		return c.errf(0, "tune.profile %q: want balanced, throughput or latency", c.Tune.Profile)
	}
	switch c.Tune.WakeOrder {
	case "":
		c.Tune.WakeOrder = "auto"
	case "auto", "arrival", "runtime":
	default:
		return c.errf(0, "tune.wake_order %q: want auto, arrival or runtime", c.Tune.WakeOrder)
	}
	switch c.Tune.IOUring {
	case "":
		c.Tune.IOUring = "auto"
	case "auto", "off":
	default:
		return c.errf(0, "tune.io_uring %q: want auto or off", c.Tune.IOUring)
	}
	return nil
}
