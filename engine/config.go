package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Defaults from the product plan. Each Config field documents what its zero
// value means; these constants are what it resolves to.
const (
	DefaultListen         = ":18100"
	DefaultAdmin          = "127.0.0.1:18101"
	defaultMaxConns       = 10000
	defaultMaxConnsPerIP  = 256
	defaultMaxBody        = 10 << 20
	defaultMaxHeader      = 64 << 10
	defaultRequestTimeout = 30 * 1e9
	defaultReadTimeout    = 30 * 1e9
	defaultWriteTimeout   = 30 * 1e9
	defaultIdleTimeout    = 60 * 1e9
	defaultHeaderTimeout  = 10 * 1e9
	defaultDrainTimeout   = 15 * 1e9
	defaultRatePerMinute  = 1000
	defaultBurst          = 100
	defaultCORSMaxAge     = 600 * 1e9
)

// Config is the whole edgeloop configuration file. Its zero value (after
// Normalize) serves the built-in default origin on :18100 with the product's
// default limits. It is what `edgeloop config check` validates.
type Config struct {
	// Listen is the list of public addresses. If empty, ":18100" is used.
	Listen StringList `yaml:"listen"`
	// Admin is the admin listener's address (metrics, health, pprof). If empty,
	// "127.0.0.1:18101" is used; "off" disables it.
	Admin string `yaml:"admin"`
	// Transport selects hertz's network layer: "standard" (Go's net package,
	// the default, see README for the measurement) or "netpoll".
	Transport string `yaml:"transport"`

	Log         LogConfig         `yaml:"log"`
	Limits      LimitsConfig      `yaml:"limits"`
	RateLimit   RateLimitConfig   `yaml:"rate_limit"`
	Timeouts    TimeoutsConfig    `yaml:"timeouts"`
	Compression CompressionConfig `yaml:"compression"`
	CORS        CORSConfig        `yaml:"cors"`
	Upstream    UpstreamConfig    `yaml:"upstream"`
	Cache       CacheConfig       `yaml:"cache"`
	Guard       GuardConfig       `yaml:"guard"`
	Database    DatabaseConfig    `yaml:"database"`
	Tune        TuneConfig        `yaml:"tune"`
	// Workers is the number of serving processes: a number, or "auto" for
	// one per CPU the process may use. If zero, 1 (one process).
	Workers Workers `yaml:"workers"`
	// Steer is "none" (default) or "cpu": a connection is handled by the
	// worker pinned to the CPU that received it.
	Steer  string  `yaml:"steer"`
	Routes []Route `yaml:"routes"`

	// file is the path the config came from, for error messages.
	file string
}

// LogConfig configures logging.
type LogConfig struct {
	// Format is "text" (default) or "json".
	Format string `yaml:"format"`
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Access turns the per-request access log on. If nil, it is on.
	Access *bool `yaml:"access"`
}

// LimitsConfig bounds what one client and all clients together may hold.
type LimitsConfig struct {
	// MaxConnections caps open client connections. If zero, 10,000.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerIP caps open connections from one address. If zero,
	// 256; negative means unlimited.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// MaxBodySize is the largest request body accepted (413 above). If zero, 10 MiB.
	MaxBodySize Size `yaml:"max_body_size"`
	// MaxHeaderSize is the largest request header block. If zero, 64 KiB.
	MaxHeaderSize Size `yaml:"max_header_size"`
}

// RateLimitConfig is the per-client-IP request rate limit (token bucket).
type RateLimitConfig struct {
	// Rate is "1000/m" style; "off" disables. If empty, 1000/m.
	Rate Rate `yaml:"rate"`
	// Burst is how many requests a client may send at once. If zero, 100.
	Burst int `yaml:"burst"`
	// MaxClients bounds the number of tracked client addresses. If zero, 65536.
	MaxClients int `yaml:"max_clients"`
}

// TimeoutsConfig holds the server's timeouts.
type TimeoutsConfig struct {
	// Read bounds reading one request (headers and body). If zero, 30s.
	Read Duration `yaml:"read"`
	// Header bounds reading a request's header block, so slow clients that
	// trickle header bytes are cut off. If zero, 10s.
	Header Duration `yaml:"header"`
	// Write bounds writing one response. If zero, 30s.
	Write Duration `yaml:"write"`
	// Idle is how long a keep-alive connection may wait for its next request. If zero, 60s.
	Idle Duration `yaml:"idle"`
	// Request is the default time a route waits for its upstream's response
	// headers (504 after). If zero, 30s.
	Request Duration `yaml:"request"`
	// Drain is how long a graceful shutdown waits for in-flight requests. If zero, 15s.
	Drain Duration `yaml:"drain"`
}

// CompressionConfig configures response compression.
type CompressionConfig struct {
	// Enabled turns compression on. If nil, it is on.
	Enabled *bool `yaml:"enabled"`
	// MinLength is the smallest body compressed. If zero, 512 bytes.
	MinLength Size `yaml:"min_length"`
	// Types lists compressible media types. If empty, a built-in text list.
	Types []string `yaml:"types"`
	// Encodings is the server's preference order. If empty, [br, gzip].
	Encodings []string `yaml:"encodings"`
	// GzipLevel and BrotliLevel choose the effort. If zero, measured defaults.
	GzipLevel   int `yaml:"gzip_level"`
	BrotliLevel int `yaml:"brotli_level"`
}

// CORSConfig configures Cross-Origin Resource Sharing. CORS is off unless
// AllowOrigins is set.
type CORSConfig struct {
	// AllowOrigins lists allowed origins; "*" allows any.
	AllowOrigins []string `yaml:"allow_origins"`
	// AllowMethods for preflight. If empty, GET, HEAD, POST, PUT, PATCH, DELETE.
	AllowMethods []string `yaml:"allow_methods"`
	// AllowHeaders for preflight. If empty, the request's
	// Access-Control-Request-Headers are echoed.
	AllowHeaders []string `yaml:"allow_headers"`
	// ExposeHeaders are listed in Access-Control-Expose-Headers.
	ExposeHeaders []string `yaml:"expose_headers"`
	// AllowCredentials sets Access-Control-Allow-Credentials: true.
	AllowCredentials bool `yaml:"allow_credentials"`
	// MaxAge is the preflight cache time. If zero, 10m.
	MaxAge Duration `yaml:"max_age"`
}

// UpstreamConfig is the default upstream pool for every proxy route.
type UpstreamConfig struct {
	// MaxIdlePerHost keep-alive connections per upstream. If zero, 1024.
	MaxIdlePerHost int `yaml:"max_idle_per_host"`
	// MaxConnsPerHost caps connections per upstream. If zero, unlimited.
	MaxConnsPerHost int `yaml:"max_conns_per_host"`
	// IdleTimeout closes idle upstream connections. If zero, 90s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// DialTimeout bounds connecting to an upstream. If zero, 5s.
	DialTimeout Duration `yaml:"dial_timeout"`
	// FailTimeout is how long an upstream that refused connections is
	// skipped (nginx's fail_timeout). If zero, 10s.
	FailTimeout Duration `yaml:"fail_timeout"`
	// MaxFails consecutive failures mark an upstream down. If zero, 1.
	MaxFails int `yaml:"max_fails"`
}

// Route maps a path prefix to a target: upstream URLs (reverse proxy) or a
// static root. The longest matching prefix wins.
type Route struct {
	// Path is the prefix, e.g. "/api/". It must start with "/".
	Path string `yaml:"path"`
	// Upstreams are http:// URLs balanced round robin. "upstream" is accepted
	// for a single URL.
	Upstreams StringList `yaml:"upstreams"`
	Upstream  StringList `yaml:"upstream"`
	// Root is a directory to serve; "embedded" serves the built-in site.
	Root string `yaml:"root"`
	// StripPrefix removes Path from the request path before looking up a
	// file under Root (like nginx's alias).
	StripPrefix bool `yaml:"strip_prefix"`
	// Timeout overrides timeouts.request for this route.
	Timeout Duration `yaml:"timeout"`
	// HostHeader is "preserve" (default: the client's Host goes upstream, like
	// Varnish and HAProxy) or "upstream" (the upstream's host, like nginx).
	HostHeader string `yaml:"host_header"`
	// Cache turns on response caching (proxy routes) or result caching
	// (query routes) for this route.
	Cache *RouteCache `yaml:"cache"`
	// SQL makes this a query route: the statement runs with parameters bound
	// from {name} path segments and the query string, typed by Params.
	SQL string `yaml:"sql"`
	// Params declares each parameter's type: int, float, text, bool, uuid
	// or timestamp.
	Params map[string]string `yaml:"params"`
	// Single answers one JSON object (404 when no row) instead of an array.
	Single bool `yaml:"single"`
	// MaxRows caps the rows of a query route's answer. If zero, unlimited.
	MaxRows int `yaml:"max_rows"`
	// WebSocket makes this a WebSocket route: pub/sub channels
	// (path /ws/{channel}) or, with a ws:// upstream, a WebSocket proxy.
	WebSocket *WebSocketConfig `yaml:"websocket"`

	line int
}

// UnmarshalYAML records the route's line for later validation errors.
func (r *Route) UnmarshalYAML(n *yaml.Node) error {
	type plain Route
	// Node.Decode does not inherit the decoder's KnownFields, so check keys here.
	if err := checkKeys(n, plain{}); err != nil {
		return err
	}
	if err := n.Decode((*plain)(r)); err != nil {
		return err
	}
	r.line = n.Line
	return nil
}

// Targets returns the route's upstream URLs from either key.
func (r *Route) Targets() []string {
	return append(append([]string(nil), r.Upstreams...), r.Upstream...)
}

// checkKeys reports the first key of mapping n that is not a yaml field of v.
func checkKeys(n *yaml.Node, v any) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	known := map[string]bool{}
	t := reflect.TypeOf(v)
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			known[name] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !known[k.Value] {
			return lineErr(k, "unknown key %q", k.Value)
		}
	}
	return nil
}

// Errors returned by configuration loading.
var (
	ErrConfig = errors.New("config error")
)

// ConfigError is a configuration problem with its place in the file.
type ConfigError struct {
	File string
	Line int // 0 when the problem is not tied to a line
	Msg  string
}

func (e *ConfigError) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return e.Msg
}

// Is lets errors.Is(err, ErrConfig) match every ConfigError.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// LoadFile reads and validates a config file.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: err.Error()}
	}
	return Parse(path, data)
}

// Parse decodes YAML strictly: unknown keys, wrong types, bad durations,
// sizes and rates are errors with the file's line. It does not apply
// defaults or validate; call Normalize for that (Load does both).
func Parse(file string, data []byte) (*Config, error) {
	cfg := &Config{file: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(file, err)
	}
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	return cfg, nil
}

var (
	reLine    = regexp.MustCompile(`^line (\d+): (.*)$`)
	reUnknown = regexp.MustCompile(`field (\S+) not found in type \S+`)
	reType    = regexp.MustCompile("cannot unmarshal !!(\\w+) `([^`]*)` into (\\S+)")
)

// yamlError turns yaml.v3's errors into FILE:LINE: reason.
func yamlError(file string, err error) error {
	var le *lineError
	if errors.As(err, &le) {
		return &ConfigError{File: file, Line: le.line, Msg: le.msg}
	}
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	// Report the first problem; the user fixes files one line at a time.
	m := strings.TrimPrefix(msgs[0], "yaml: ")
	line := 0
	if sub := reLine.FindStringSubmatch(m); sub != nil {
		line, _ = strconv.Atoi(sub[1])
		m = sub[2]
	}
	if sub := reUnknown.FindStringSubmatch(m); sub != nil {
		m = fmt.Sprintf("unknown key %q", sub[1])
	} else if sub := reType.FindStringSubmatch(m); sub != nil {
		m = fmt.Sprintf("wrong type: %q is not %s", sub[2], friendlyType(sub[3]))
	}
	return &ConfigError{File: file, Line: line, Msg: m}
}

func friendlyType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"):
		return "a whole number"
	case goType == "bool" || goType == "*bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "engine."):
		return "a mapping of keys"
	}
	return "a " + goType
}
