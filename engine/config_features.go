package engine

import (
	"net/netip"

	"gopkg.in/yaml.v3"
)

// CacheConfig is the process-wide HTTP response cache (RFC 9111). Routes opt
// in with their own `cache:` block; the store exists only when one does.
type CacheConfig struct {
	// Size is the cache memory. If zero, 256 MiB.
	Size Size `yaml:"size"`
	// MaxObjectSize is the largest response stored; larger ones stream
	// through uncached. If zero, 64 MiB.
	MaxObjectSize Size `yaml:"max_object_size"`
	// CoalesceWait bounds how long concurrent misses wait for one fill
	// before going to the origin themselves. If zero, 5s.
	CoalesceWait Duration `yaml:"coalesce_wait"`
	// PurgeAllow lists the client networks that may send PURGE requests on
	// the public port. Empty: PURGE is refused there (the admin listener's
	// POST /cache/purge always works).
	PurgeAllow []Prefix `yaml:"purge_allow"`
}

// RouteCache turns caching on for one proxy route.
type RouteCache struct {
	// Enabled turns it on; a `cache:` block without it means on.
	Enabled *bool `yaml:"enabled"`
	// DefaultTTL applies to 200, 301 and 404 responses without explicit
	// freshness or a Last-Modified (like nginx's proxy_cache_valid). Zero:
	// only what the origin says is cached.
	DefaultTTL Duration `yaml:"default_ttl"`
	// StaleIfError serves a stale copy for this long past its freshness when
	// the origin is down or answers 5xx. Zero: only the origin's own
	// stale-if-error directive.
	StaleIfError Duration `yaml:"stale_if_error"`
	// TTL of a query route's cached results. Zero: not cached.
	TTL Duration `yaml:"ttl"`
	// Tags name the data a query route's results depend on; a NOTIFY on the
	// database's notify_channel with a tag drops them (and cached HTTP
	// responses carrying that Surrogate-Key).
	Tags []string `yaml:"tags"`
}

// On reports whether the block turns caching on.
func (r *RouteCache) On() bool { return r != nil && (r.Enabled == nil || *r.Enabled) }

// GuardConfig is the kernel guard (XDP + sock_ops) in front of the listeners.
type GuardConfig struct {
	// Mode is auto (native XDP, else generic, else user space), native,
	// generic, userspace or off. If empty, auto.
	Mode string `yaml:"mode"`
	// Interfaces to attach to. If empty, those that carry the listen addresses.
	Interfaces []string `yaml:"interfaces"`
	// SYNRate per source IP, e.g. "50/s"; "off" disables. If empty, off.
	SYNRate Rate `yaml:"syn_rate"`
	// SYNBurst SYNs a source may send at once. If zero, the per-second rate.
	SYNBurst int `yaml:"syn_burst"`
	// MaxConnsPerIP established connections per source, counted in the
	// kernel. If zero, limits.max_connections_per_ip.
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// PPSPerIP caps packets per second per source to the guarded ports. Zero: off.
	PPSPerIP int `yaml:"pps_per_ip"`
	// Allow and Deny are CIDR lists (IPv4 and IPv6); allow wins over everything.
	Allow []Prefix `yaml:"allow"`
	Deny  []Prefix `yaml:"deny"`
	// MaxSources sizes the per-source maps. If zero, 65536.
	MaxSources int `yaml:"max_sources"`
	// Escalate moves clients that keep exceeding the request rate into the
	// kernel deny list for a while.
	Escalate EscalateConfig `yaml:"escalate"`
	// PinPath is the bpffs directory for maps and links. If empty,
	// /sys/fs/bpf/edgeloop.
	PinPath string `yaml:"pin_path"`
	// Cgroup is the cgroup v2 name edgeloop joins for the connection
	// counter. If empty, "edgeloop".
	Cgroup string `yaml:"cgroup"`
}

// EscalateConfig moves L7 offenders into the XDP deny map.
type EscalateConfig struct {
	// Threshold 429s within Window make a client an offender. If zero, 300.
	Threshold int `yaml:"threshold"`
	// Window for counting rejections. If zero, 30s.
	Window Duration `yaml:"window"`
	// Ban is how long an offender stays denied. If zero, 60s.
	Ban Duration `yaml:"ban"`
	// Disabled turns escalation off.
	Disabled bool `yaml:"disabled"`
}

// TuneConfig selects the host tuning profile and socket options.
type TuneConfig struct {
	// Profile is balanced, throughput or latency. If empty, balanced.
	Profile string `yaml:"profile"`
	// Backlog is the listen queue length. If zero, net.core.somaxconn.
	Backlog int `yaml:"backlog"`
	// RecvBuffer and SendBuffer set SO_RCVBUF/SO_SNDBUF. Zero leaves the
	// kernel's autotuning alone, which is right for most hosts.
	RecvBuffer Size `yaml:"recv_buffer"`
	SendBuffer Size `yaml:"send_buffer"`
	// DeferAccept sets TCP_DEFER_ACCEPT. Zero: off.
	DeferAccept Duration `yaml:"defer_accept"`
	// FastOpen is the TCP_FASTOPEN queue length. Zero: off.
	FastOpen int `yaml:"fast_open"`
	// BusyPoll sets SO_BUSY_POLL. Zero: off.
	BusyPoll Duration `yaml:"busy_poll"`
	// TCPKeepalive turns TCP keepalive on for client connections with this
	// idle time and probe interval. Zero: off (nginx's default).
	TCPKeepalive Duration `yaml:"tcp_keepalive"`
	// WakeOrder is the order in which the standard transport serves
	// connections that became readable together: arrival (as an event
	// loop does), runtime (Go's netpoller: reversed each round), or auto
	// (arrival when the process has one scheduler slot, GOMAXPROCS=1, as
	// workers and pinned servers do). If empty, auto.
	WakeOrder string `yaml:"wake_order"`
	// IOUring is whether writes in arrival order go to the kernel in
	// batches through io_uring, one system call per scheduler round
	// instead of one per write: auto (when the kernel allows io_uring)
	// or off. If empty, auto.
	IOUring string `yaml:"io_uring"`
}

// DatabaseConfig is the Postgres pool of the query routes.
type DatabaseConfig struct {
	// URL is a postgres:// connection string. Empty: no database.
	URL string `yaml:"url"`
	// MaxConns in the pool. If zero, 100.
	MaxConns int `yaml:"max_conns"`
	// MinConns kept open. If zero, 10.
	MinConns int `yaml:"min_conns"`
	// AcquireTimeout bounds waiting for a connection (503 after). If zero, 5s.
	AcquireTimeout Duration `yaml:"acquire_timeout"`
	// IdleTimeout closes idle connections. If zero, 600s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxLifetime recycles connections. If zero, 1800s.
	MaxLifetime Duration `yaml:"max_lifetime"`
	// HealthCheckPeriod between pool health checks. If zero, 1m.
	HealthCheckPeriod Duration `yaml:"health_check_period"`
	// NotifyChannel is LISTENed to for cache invalidation by tag. If empty,
	// edgeloop_invalidate.
	NotifyChannel string `yaml:"notify_channel"`
	// CacheSize bounds the results cached by sql routes (per process). If
	// zero, 64 MiB.
	CacheSize Size `yaml:"cache_size"`
}

// WebSocketConfig configures a pub/sub route (`/ws/{channel}`) or a proxied
// WebSocket route (upstream ws://...).
type WebSocketConfig struct {
	// MaxConns on this route. If zero, 100,000.
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerIP on this route. If zero, 100.
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// SendQueue is each connection's outgoing queue length. If zero, 256.
	SendQueue int `yaml:"send_queue"`
	// SlowConsumer is disconnect (default) or drop_oldest.
	SlowConsumer string `yaml:"slow_consumer"`
	// MaxMessage size; larger messages close with 1009. If zero, 64 KiB.
	MaxMessage Size `yaml:"max_message"`
	// PingInterval between server pings. If zero, 30s.
	PingInterval Duration `yaml:"ping_interval"`
	// IdleTimeout closes connections silent this long. If zero, 120s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// AllowedOrigins for the upgrade; empty allows any.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// NotifyChannel: a Postgres NOTIFY on it publishes to the route's
	// channels (payload "channel:message"). Empty: none.
	NotifyChannel string `yaml:"notify_channel"`
	// PublishAllow lists networks that may POST /publish/{channel} on the
	// public port; the admin listener always may.
	PublishAllow []Prefix `yaml:"publish_allow"`
}

// Workers is a worker process count: a number or "auto" (stored as -1).
type Workers int

// UnmarshalYAML implements yaml.Unmarshaler.
func (w *Workers) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Value == "auto" {
		*w = -1
		return nil
	}
	var v int
	if err := n.Decode(&v); err != nil || v < 0 {
		return lineErr(n, "workers: want a number or auto, not %q", n.Value)
	}
	*w = Workers(v)
	return nil
}

// Prefix is a CIDR (or a single address, taken as /32 or /128) from YAML.
type Prefix struct{ netip.Prefix }

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineErr(n, "expected a CIDR such as 192.0.2.0/24")
	}
	if pf, err := netip.ParsePrefix(n.Value); err == nil {
		p.Prefix = pf.Masked()
		return nil
	}
	if a, err := netip.ParseAddr(n.Value); err == nil {
		p.Prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		return nil
	}
	return lineErr(n, "bad CIDR %q (want e.g. 192.0.2.0/24 or 2001:db8::/32)", n.Value)
}

// Prefixes unwraps a list.
func Prefixes(ps []Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = p.Prefix
	}
	return out
}
