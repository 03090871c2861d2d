package tune

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// defaultBacklog is the listen backlog when the host's net.core.somaxconn
// cannot be read (4096 is the kernel default since Linux 5.4).
const defaultBacklog = 4096

// SocketConfig holds the options Listen sets on a listening TCP socket before
// listen(2). The zero value is a reasonable edge listener: backlog =
// somaxconn, Nagle off, everything else left to the kernel. Options set on
// the listener are inherited by the connections it accepts (the kernel
// clones the listener's socket), so they need no per-connection syscalls.
type SocketConfig struct {
	// Backlog is the accept queue length passed to listen(2). If zero, the
	// host's net.core.somaxconn is used (4096 if it cannot be read). The
	// kernel silently caps it at somaxconn; Listen warns when it does.
	Backlog int

	// ReusePort sets SO_REUSEPORT so several listeners (one per worker)
	// bind the same address and the kernel spreads connections among them
	// by a hash of the 4-tuple. Required when set: Listen fails if refused.
	ReusePort bool

	// RecvBuffer and SendBuffer set SO_RCVBUF / SO_SNDBUF in bytes. If
	// zero (the default) they are left alone, and that is deliberate:
	// setting either locks that buffer (SOCK_RCVBUF_LOCK) and turns off
	// the kernel's per-connection autotuning (net.ipv4.tcp_rmem/tcp_wmem),
	// which grows buffers only for connections whose bandwidth-delay
	// product needs it and keeps idle keep-alive connections small. A fixed
	// size is either too small for far clients or wastes memory across
	// thousands of idle ones. The kernel doubles the value for bookkeeping
	// and caps it at net.core.rmem_max / wmem_max.
	RecvBuffer, SendBuffer int

	// Nagle keeps Nagle's algorithm on. If false (the default), TCP_NODELAY
	// is set on the listener and so on every accepted connection: an edge
	// proxy writes whole responses and must not wait 40 ms for a delayed
	// ACK. Go's own TCPListener.Accept sets TCP_NODELAY on each connection
	// whatever the listener has; callers that want Nagle there call
	// SetNoDelay(false). Event loops that accept on the fd (netpoll) get
	// the listener's setting.
	Nagle bool

	// DeferAccept sets TCP_DEFER_ACCEPT: the kernel completes the handshake
	// but wakes accept only when the first data arrives (rounded up to
	// whole seconds; after it expires the connection is accepted anyway).
	// If zero, it is off. Off is the default because the deferred
	// connections are invisible to the server: they are not in the accept
	// queue, not counted by connection caps or metrics, and the kernel
	// drops the client's final ACK, so clients that connect and wait for
	// the server to speak first (server-first protocols, some health
	// checks) see a stall. Turn it on for HTTP-only listeners under a flood
	// of idle connects.
	DeferAccept time.Duration

	// FastOpen sets TCP_FASTOPEN with this queue length (pending Fast Open
	// requests). If zero, Fast Open is off on the listener. Off is the
	// default because data in a SYN may be replayed by the network
	// (RFC 7413 §6.1): a proxy that forwards a replayed non-idempotent
	// request executes it twice at the origin. It also needs the server
	// bit (2) in net.ipv4.tcp_fastopen. Enable it for listeners serving
	// only idempotent traffic, e.g. 256.
	FastOpen int

	// BusyPoll sets SO_BUSY_POLL (microseconds, rounded down): reads and
	// epoll on the socket spin on the NIC queue before sleeping, trading CPU
	// for latency. If zero, the socket follows net.core.busy_read. Kernels
	// that require CAP_NET_ADMIN to raise it (6.18 does not) answer EPERM
	// without it; a refusal is a warning, not a failure.
	BusyPoll time.Duration

	// KeepAlive turns on TCP keepalive (SO_KEEPALIVE) with this idle time
	// and probe interval (TCP_KEEPIDLE, TCP_KEEPINTVL; the kernel's probe
	// count, net.ipv4.tcp_keepalive_probes, is kept). If zero, keepalive is
	// off, as nginx and HAProxy have it by default: edgeloop's timeouts and
	// WebSocket pings find dead clients, and probes every few seconds to
	// 100,000 idle connections cost packets and CPU. Accepted connections
	// inherit the listener's setting (Go's own accept turns keepalive on
	// with 15 s, so servers on Go's accept apply ConnKeepAlive per conn).
	KeepAlive time.Duration
}

// FDKeepAlive sets keepalive on a socket descriptor the way ConnKeepAlive
// does, for connections accepted outside Go's net package (netpoll).
func FDKeepAlive(fd int, keepAlive time.Duration) error {
	if keepAlive <= 0 {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 0)
	}
	secs := max(int(keepAlive/time.Second), 1)
	return errors.Join(
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1),
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs),
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs))
}

// ConnKeepAlive applies cfg's keepalive (KeepAlive) to an accepted
// connection, undoing the 15 s keepalive Go's TCPListener.Accept turns on.
func ConnKeepAlive(c *net.TCPConn, keepAlive time.Duration) error {
	if keepAlive <= 0 {
		return c.SetKeepAlive(false)
	}
	return c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: keepAlive, Interval: keepAlive, Count: -1})
}

// Validate reports fields out of range.
func (c SocketConfig) Validate() error {
	switch {
	case c.Backlog < 0:
		return fmt.Errorf("%w: backlog %d < 0", ErrBadConfig, c.Backlog)
	case c.RecvBuffer < 0 || c.SendBuffer < 0:
		return fmt.Errorf("%w: buffer sizes %d/%d < 0", ErrBadConfig, c.RecvBuffer, c.SendBuffer)
	case c.DeferAccept < 0:
		return fmt.Errorf("%w: defer accept %v < 0", ErrBadConfig, c.DeferAccept)
	case c.FastOpen < 0:
		return fmt.Errorf("%w: fast open queue %d < 0", ErrBadConfig, c.FastOpen)
	case c.BusyPoll < 0:
		return fmt.Errorf("%w: busy poll %v < 0", ErrBadConfig, c.BusyPoll)
	case c.KeepAlive < 0:
		return fmt.Errorf("%w: keepalive %v < 0", ErrBadConfig, c.KeepAlive)
	}
	return nil
}

// OptionError is a socket option the kernel refused or capped. Listen
// reports these as warnings instead of failing.
type OptionError struct {
	Option string // e.g. "SO_BUSY_POLL"
	Err    error
}

func (e *OptionError) Error() string { return "setsockopt " + e.Option + ": " + e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// setOptions sets cfg's options on a socket that is not yet bound. Required
// options (SO_REUSEADDR, SO_REUSEPORT when asked) fail; the others come back
// as warnings.
func setOptions(fd int, cfg SocketConfig) (warnings []error, err error) {
	// SO_REUSEADDR lets a restarted server bind while old connections sit
	// in TIME_WAIT; Go's net package sets it on every listener too.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, fmt.Errorf("setsockopt SO_REUSEADDR: %w", err)
	}
	if cfg.ReusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrReusePort, err)
		}
	}
	warn := func(opt string, err error) {
		if err != nil {
			warnings = append(warnings, &OptionError{Option: opt, Err: err})
		}
	}
	buffer := func(opt string, so, size int, limit string) {
		if size == 0 {
			return
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, so, size); err != nil {
			warn(opt, err)
			return
		}
		// The kernel stores twice the value, capped at 2*limit.
		if got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, so); err == nil && got < 2*size {
			warn(opt, fmt.Errorf("asked %d bytes, kernel capped at %d by %s", size, got/2, limit))
		}
	}
	buffer("SO_RCVBUF", unix.SO_RCVBUF, cfg.RecvBuffer, "net.core.rmem_max")
	buffer("SO_SNDBUF", unix.SO_SNDBUF, cfg.SendBuffer, "net.core.wmem_max")
	if !cfg.Nagle {
		warn("TCP_NODELAY", unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1))
	}
	if cfg.DeferAccept > 0 {
		secs := int((cfg.DeferAccept + time.Second - 1) / time.Second)
		warn("TCP_DEFER_ACCEPT", unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, secs))
	}
	if cfg.FastOpen > 0 {
		warn("TCP_FASTOPEN", unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_FASTOPEN, cfg.FastOpen))
		if v, err := (Sysctl{}).Read("net.ipv4.tcp_fastopen"); err == nil {
			if n, err := strconv.Atoi(v); err == nil && n&2 == 0 {
				warn("TCP_FASTOPEN", fmt.Errorf("net.ipv4.tcp_fastopen = %d lacks the server bit 2: Fast Open stays off", n))
			}
		}
	}
	if cfg.BusyPoll > 0 {
		warn("SO_BUSY_POLL", unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BUSY_POLL, int(cfg.BusyPoll/time.Microsecond)))
	}
	if cfg.KeepAlive > 0 {
		secs := max(int(cfg.KeepAlive/time.Second), 1)
		warn("SO_KEEPALIVE", unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1))
		warn("TCP_KEEPIDLE", unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs))
		warn("TCP_KEEPINTVL", unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs))
	}
	return warnings, nil
}

// ListenConfig returns a net.ListenConfig that sets cfg's options, for callers
// that must create the listener through the net package (for example to
// listen on a name that needs Go's resolver rules). It cannot honour
// cfg.Backlog: Go always passes somaxconn to listen(2). Multipath TCP is
// turned off (Go uses it by default for listeners since 1.24, and SO_REUSEPORT
// steering and several options do not apply to MPTCP sockets). Refused
// optional options are logged once and counted.
func ListenConfig(cfg SocketConfig) *net.ListenConfig {
	lc := &net.ListenConfig{
		Control: func(network, address string, c syscall.RawConn) error {
			if err := cfg.Validate(); err != nil {
				return err
			}
			var warnings []error
			var serr error
			err := c.Control(func(fd uintptr) {
				warnings, serr = setOptions(int(fd), cfg)
			})
			report(warnings)
			return errors.Join(err, serr)
		},
	}
	lc.SetMultipathTCP(false)
	return lc
}

// warned remembers which warnings were logged, so a server that opens one
// listener per worker logs each refused option once.
var warned sync.Map // string -> struct{}

// report counts warnings and logs each distinct one once via slog.
func report(warnings []error) {
	for _, w := range warnings {
		opt := "other"
		var oe *OptionError
		if errors.As(w, &oe) {
			opt = oe.Option
		}
		socketOptionErrors.WithLabelValues(opt).Inc()
		if _, seen := warned.LoadOrStore(w.Error(), struct{}{}); !seen {
			slog.Warn("tune: socket option not applied", "err", w)
		}
	}
}
