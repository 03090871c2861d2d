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
	if len(c.Routes) == 0 {
		c.Routes = []Route{{Path: "/", Root: "embedded"}}
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
	sort.SliceStable(c.Routes, func(i, j int) bool { return len(c.Routes[i].Path) > len(c.Routes[j].Path) })
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
		u.MaxIdlePerHost = 64
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

func (r *Route) validate(c *Config) error {
	if r.Path == "" {
		return c.errf(r.line, "route has no path")
	}
	if !strings.HasPrefix(r.Path, "/") {
		return c.errf(r.line, "route path %q must start with /", r.Path)
	}
	targets := r.Targets()
	switch {
	case len(targets) == 0 && r.Root == "":
		return c.errf(r.line, "route %q has no target: give upstreams or root", r.Path)
	case len(targets) > 0 && r.Root != "":
		return c.errf(r.line, "route %q has both upstreams and root: give one", r.Path)
	}
	for _, t := range targets {
		if err := checkUpstreamURL(t); err != nil {
			return c.errf(r.line, "route %q: upstream %q: %v", r.Path, t, err)
		}
	}
	if r.Root != "" && r.Root != "embedded" {
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
	if r.Timeout == 0 {
		r.Timeout = c.Timeouts.Request
	}
	return nil
}

// checkUpstreamURL accepts http://host:port[/] upstreams. A path on the URL
// is refused rather than silently ignored.
func checkUpstreamURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("malformed URL")
	}
	if u.Scheme != "http" {
		return fmt.Errorf("scheme must be http")
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
