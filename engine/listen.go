package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeloop/edgeloop/internal/fairpoll"
	"github.com/edgeloop/edgeloop/tune"
)

// Socket kinds held by a listenerSet.
const (
	kindPublic = "public"
	kindAdmin  = "admin"
)

// Environment variables through which a process hands its sockets to the
// processes it starts (workers, or its successor on a binary upgrade).
const (
	envInherit = "EDGELOOP_INHERIT"  // JSON []inheritedSocket
	envReadyFD = "EDGELOOP_READY_FD" // fd of a pipe: write one JSON line when serving
	envWorker  = "EDGELOOP_WORKER"   // JSON workerSpec: this process is a worker
)

// listenTCP opens a public or admin listener for a Server.
//
// Outside of Serve (engine tests, embedders) it makes a fresh socket that the
// Server owns. Under Serve the process keeps its sockets in a listenerSet,
// so that they outlive any one Server: a config reload builds a new Server on
// the same sockets, and a binary upgrade or a worker inherits them. The
// Server then gets a dup of the held socket, and closing it on shutdown only
// stops that Server from accepting; connections queued in the kernel stay
// for the next Server. Multipath TCP stays off either way (tune.Listen
// makes an IPPROTO_TCP socket; reuseport steering and several options do
// not apply to MPTCP, see DESIGN.md).
func (s *Server) listenTCP(ctx context.Context, kind, addr string) (net.Listener, error) {
	sc := socketConfig(s.cfg, kind)
	if set := procSockets.Load(); set != nil {
		return set.listener(ctx, kind, addr, sc)
	}
	ln, warnings, err := tune.ListenWithWarnings(ctx, "tcp", addr, sc)
	logSocketWarnings(s.log, addr, warnings)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// socketConfig maps the tune: keys onto a public listener's options. The
// admin listener gets the defaults: it carries a few scrapes, not traffic.
func socketConfig(cfg *Config, kind string) tune.SocketConfig {
	if kind != kindPublic {
		return tune.SocketConfig{}
	}
	t := cfg.Tune
	return tune.SocketConfig{
		Backlog:     t.Backlog,
		RecvBuffer:  int(t.RecvBuffer),
		SendBuffer:  int(t.SendBuffer),
		DeferAccept: t.DeferAccept.D(),
		FastOpen:    t.FastOpen,
		BusyPoll:    t.BusyPoll.D(),
		KeepAlive:   t.TCPKeepalive.D(),
	}
}

func logSocketWarnings(log *slog.Logger, addr string, warnings []error) {
	for _, w := range warnings {
		log.Warn("socket option not applied", "addr", addr, "err", w)
	}
}

// procSockets is the process's listenerSet while Serve runs, nil otherwise.
// It is process-wide on purpose: inherited file descriptors are.
var procSockets atomic.Pointer[listenerSet]

// sockKey names one held socket. Addr is the address as configured (so
// "127.0.0.1:0" keeps meaning the same socket across reloads); slot is the
// worker slot for SO_REUSEPORT groups, 0 otherwise.
type sockKey struct {
	Kind string `json:"kind"`
	Addr string `json:"addr"`
	Slot int    `json:"slot"`
}

// inheritedSocket describes one fd passed to a child process.
type inheritedSocket struct {
	sockKey
	FD int `json:"fd"`
}

// heldSocket is a listening socket kept open by the process.
type heldSocket struct {
	key   sockKey
	file  *os.File // owns one reference to the socket
	bound net.Addr // the address the kernel bound (port 0 resolved)
	seq   int      // creation order: the socket's index in its reuseport group
}

// listenerSet holds the listening sockets of a process. Safe for concurrent
// use; mu guards the fields below it.
type listenerSet struct {
	log *slog.Logger
	// inheritOnly: public sockets must come from the parent (a worker must
	// never bind on its own, or it would leave the supervisor's group).
	inheritOnly bool

	mu    sync.Mutex
	socks map[sockKey]*heldSocket
	seq   int
}

func newListenerSet(log *slog.Logger) *listenerSet {
	return &listenerSet{log: log, socks: make(map[sockKey]*heldSocket)}
}

// listener returns a new listener on the held socket for (kind, addr),
// creating the socket first if the process has none.
func (l *listenerSet) listener(ctx context.Context, kind, addr string, sc tune.SocketConfig) (net.Listener, error) {
	hs, err := l.socket(ctx, sockKey{Kind: kind, Addr: addr}, sc)
	if err != nil {
		return nil, err
	}
	ln, err := net.FileListener(hs.file) // dups: closing ln leaves hs open
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// socket returns the held socket for k, creating it with sc if needed.
// For slots above 0 of a port-0 address, the port bound by slot 0 is used,
// so that the group shares one port.
func (l *listenerSet) socket(ctx context.Context, k sockKey, sc tune.SocketConfig) (*heldSocket, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if hs := l.socks[k]; hs != nil {
		return hs, nil
	}
	if l.inheritOnly && k.Kind == kindPublic {
		return nil, fmt.Errorf("listen %s: %w", k.Addr, errNotInherited)
	}
	addr := k.Addr
	if k.Slot > 0 {
		first := l.socks[sockKey{Kind: k.Kind, Addr: k.Addr}]
		if first == nil {
			return nil, fmt.Errorf("listen %s: slot %d before slot 0", k.Addr, k.Slot)
		}
		addr = first.bound.String()
	}
	ln, warnings, err := tune.ListenWithWarnings(ctx, "tcp", addr, sc)
	if k.Slot == 0 {
		logSocketWarnings(l.log, addr, warnings)
	}
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	f, err := ln.File()
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	hs := &heldSocket{key: k, file: f, bound: ln.Addr(), seq: l.seq}
	l.seq++
	l.socks[k] = hs
	return hs, nil
}

// adopt takes over sockets passed by the parent process.
func (l *listenerSet) adopt(list []inheritedSocket) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, in := range list {
		f := os.NewFile(uintptr(in.FD), "inherited:"+in.Addr)
		if f == nil {
			return fmt.Errorf("inherited fd %d for %s: %w", in.FD, in.Addr, errBadInherit)
		}
		ln, err := net.FileListener(f)
		if err != nil {
			f.Close()
			return fmt.Errorf("inherited fd %d for %s: %w", in.FD, in.Addr, err)
		}
		bound := ln.Addr()
		ln.Close()
		l.socks[in.sockKey] = &heldSocket{key: in.sockKey, file: f, bound: bound, seq: l.seq}
		l.seq++
	}
	return nil
}

// adoptFromEnv adopts the sockets named in EDGELOOP_INHERIT, if any, and
// clears the variable so that it does not leak into later children.
func (l *listenerSet) adoptFromEnv() error {
	v := os.Getenv(envInherit)
	if v == "" {
		return nil
	}
	os.Unsetenv(envInherit)
	var list []inheritedSocket
	if err := json.Unmarshal([]byte(v), &list); err != nil {
		return fmt.Errorf("%s: %w: %v", envInherit, errBadInherit, err)
	}
	return l.adopt(list)
}

// files returns the held sockets matching keep, for a child's ExtraFiles,
// and their descriptions numbered from fd 3 (os/exec's first extra fd).
func (l *listenerSet) files(keep func(sockKey) bool) ([]*os.File, []inheritedSocket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var held []*heldSocket
	for _, hs := range l.socks {
		if keep(hs.key) {
			held = append(held, hs)
		}
	}
	// Creation order, so a successor sees reuseport groups in group order.
	sortHeld(held)
	files := make([]*os.File, len(held))
	list := make([]inheritedSocket, len(held))
	for i, hs := range held {
		files[i] = hs.file
		list[i] = inheritedSocket{sockKey: hs.key, FD: 3 + i}
	}
	return files, list
}

func sortHeld(h []*heldSocket) {
	for i := 1; i < len(h); i++ {
		for j := i; j > 0 && h[j].seq < h[j-1].seq; j-- {
			h[j], h[j-1] = h[j-1], h[j]
		}
	}
}

// bound returns the address the kernel bound for (kind, addr, slot 0).
func (l *listenerSet) bound(kind, addr string) net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if hs := l.socks[sockKey{Kind: kind, Addr: addr}]; hs != nil {
		return hs.bound
	}
	return nil
}

// group returns the files of addr's reuseport group in group order.
func (l *listenerSet) group(addr string) []*os.File {
	files, _ := l.files(func(k sockKey) bool { return k.Kind == kindPublic && k.Addr == addr })
	return files
}

// retain closes held sockets that keep rejects: addresses dropped by a
// reload, and worker slots above a lowered worker count (highest slot
// first, so that the kernel's swap-with-last on close keeps the remaining
// reuseport indexes in place).
func (l *listenerSet) retain(keep func(sockKey) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var gone []*heldSocket
	for k, hs := range l.socks {
		if !keep(k) {
			gone = append(gone, hs)
			delete(l.socks, k)
		}
	}
	sortHeld(gone)
	for i := len(gone) - 1; i >= 0; i-- {
		gone[i].file.Close()
	}
}

// closeAll closes every held socket.
func (l *listenerSet) closeAll() {
	l.retain(func(sockKey) bool { return false })
}

var (
	errNotInherited = errors.New("worker listeners must be inherited from the supervisor (did the config's listen list change?)")
	errBadInherit   = errors.New("bad inherited socket")
)

// keepAliveListener applies tune.tcp_keepalive to each accepted connection:
// Go's accept turns a 15 s keepalive on, which edgeloop leaves off unless
// configured (tune.SocketConfig.KeepAlive).
type keepAliveListener struct {
	net.Listener
	keepAlive time.Duration
}

func (l keepAliveListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && err == nil {
		_ = tune.ConnKeepAlive(tc, l.keepAlive)
	}
	return c, err
}

// trackingListener keeps the set of open connections so a graceful shutdown
// can close the idle ones, counts them, and applies the first request's read
// timeout and the write timeout, which hertz's standard transport does not. Safe for concurrent use.
type trackingListener struct {
	net.Listener
	readTimeout  time.Duration
	writeTimeout time.Duration
	set          *connSet[*trackedConn]
	refuse       func(net.Addr) bool // the user-space guard (guard.go); may be nil
	// arrival: read through fairpoll, serving connections that became
	// readable together in the order their data arrived (tune.wake_order).
	arrival bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	for err == nil && l.refuse != nil && l.refuse(c.RemoteAddr()) {
		_ = c.Close()
		c, err = l.Listener.Accept()
	}
	if err != nil {
		return nil, err
	}
	// hertz's standard transport arms the read timeout only for TLS
	// handshakes and for the second and later requests of a connection;
	// without this, a client trickling the first request's header bytes
	// (slowloris) would hold the connection forever.
	now := time.Now()
	tc := &trackedConn{Conn: c, writeTimeout: l.writeTimeout, set: l.set, accepted: now}
	tc.fw = fairpoll.NewWriter(innerConn(c)) // nil without a socket
	if l.arrival {
		tc.fr = fairpoll.NewReader(innerConn(c))
		if tc.fr != nil {
			// A keep-alive client's next request is read right after the
			// answer went out, before the client can have sent it: wait
			// for the netpoller instead of a read(2) that fails.
			tc.fr.WaitFirst(true)
		}
		tc.rawWrites = tc.fw != nil
		if tc.rawWrites {
			tc.fw.BatchSends() // when tune.io_uring allows (server.go)
		}
		fairpoll.TimeStages(tc.fr, tc.fw, true) // builds with -tags stagetime only
	}
	if l.readTimeout > 0 {
		_ = tc.SetReadDeadline(now.Add(l.readTimeout))
	}
	l.set.add(tc)
	return tc, nil
}

// drainable is a client connection a graceful shutdown can tell idle: a
// *trackedConn (standard transport) or an *npConnState (netpoll).
type drainable interface {
	comparable
	idle() bool
	Close() error
}

// connSet is the set of open client connections of one server. Safe for
// concurrent use.
type connSet[C drainable] struct {
	mu    sync.Mutex // guards conns
	conns map[C]struct{}
}

func newConnSet[C drainable]() *connSet[C] { return &connSet[C]{conns: make(map[C]struct{})} }

func (s *connSet[C]) add(c C) {
	openConns.Add(1)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *connSet[C]) remove(c C) {
	s.mu.Lock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	s.mu.Unlock()
	if ok {
		openConns.Add(-1)
	}
}

func (s *connSet[C]) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// closeAll closes every connection still open. It is called once no
// request is in flight, but a connection may still be writing the last
// bytes of a response (the in-flight count drops when the handler returns,
// before hertz writes) or may have just read a new request: closing those
// would cut a response in half. So it closes the idle connections (blocked
// reading, with nothing read since their last response) at once and the
// others as soon as they turn idle, and force-closes what is left after
// closeIdleWait.
func (s *connSet[C]) closeAll() {
	deadline := time.Now().Add(closeIdleWait)
	for {
		busy := 0
		for _, c := range s.snapshot() {
			if c.idle() || !time.Now().Before(deadline) {
				_ = c.Close()
			} else {
				busy++
			}
		}
		if busy == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// closeIdleWait bounds how long closeAll waits for busy connections.
const closeIdleWait = 2 * time.Second

func (s *connSet[C]) snapshot() []C {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]C, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

type trackedConn struct {
	net.Conn
	writeTimeout time.Duration
	set          *connSet[*trackedConn]
	accepted     time.Time
	served       atomic.Bool // a response was written on it
	once         sync.Once
	// reading is set while the server is blocked in Read; pending from the
	// moment request bytes arrive until the response is written. A
	// connection reading with nothing pending is idle between requests.
	reading, pending atomic.Bool
	fr               *fairpoll.Reader // reads the socket when not nil
	// fw writes the socket: every write when rawWrites (arrival order),
	// else only a large response's header and body in one writev
	// (bodywrite.go). nil when the connection has no socket.
	fw        *fairpoll.Writer
	rawWrites bool
	bw        bodyWriter
}

func (c *trackedConn) Read(p []byte) (n int, err error) {
	c.reading.Store(true)
	if c.fr != nil {
		n, err = c.fr.Read(p)
	} else {
		n, err = c.Conn.Read(p)
	}
	c.reading.Store(false)
	if n > 0 {
		c.pending.Store(true)
	}
	return n, err
}

// SetReadDeadline sets the read deadline; in arrival order lazily, through
// the fairpoll reader (fairpoll.Slack): hertz sets one before every
// request, and most requests are read without waiting for it.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if c.fr != nil {
		return c.fr.SetDeadline(t)
	}
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline; in arrival order, where every
// write goes through the fairpoll writer, lazily through it. Otherwise on
// the socket, which the writer's large-response writes (bodywrite.go)
// honour too: it is never given a deadline of its own then.
func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	if c.rawWrites {
		return c.fw.SetDeadline(t)
	}
	return c.Conn.SetWriteDeadline(t)
}

// armWriteTimeout bounds the next write by the write timeout: in arrival
// order, each write that has to wait fails after waiting that long (set
// once; no clock is read for a write that does not wait, which is nearly
// every one), else from now.
func (c *trackedConn) armWriteTimeout() {
	switch {
	case c.writeTimeout <= 0:
	case c.rawWrites:
		if c.fw.CallTimeout() != c.writeTimeout { // a SetWriteDeadline replaced it
			c.fw.SetCallTimeout(c.writeTimeout)
		}
	default:
		_ = c.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
}

// SetDeadline sets both deadlines.
func (c *trackedConn) SetDeadline(t time.Time) error {
	err := c.SetReadDeadline(t)
	if werr := c.SetWriteDeadline(t); err == nil {
		err = werr
	}
	return err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	c.armWriteTimeout()
	var n int
	var err error
	if c.rawWrites {
		n, err = c.fw.Write(p)
	} else {
		n, err = c.Conn.Write(p)
	}
	c.pending.Store(false)
	c.served.Store(true)
	return n, err
}

// idle reports whether the connection waits for a new request: blocked
// reading, nothing read since its last response, and nothing in the
// kernel's receive queue either (a request that arrived but was not read
// yet would be answered with a reset if the connection closed now).
//
// A connection that has not answered a request yet counts as idle only
// after newConnGrace: its client may be sending its first request right now,
// and an HTTP client retries a request on a closed reused connection but not
// on a new one (net/http's Shutdown waits the same way for new connections).
func (c *trackedConn) idle() bool {
	if !c.served.Load() && time.Since(c.accepted) < newConnGrace {
		return false
	}
	return c.reading.Load() && !c.pending.Load() && unreadBytes(c.Conn) == 0
}

// newConnGrace is how long a connection without a request is left alone at
// shutdown; closeIdleWait bounds the whole wait.
const newConnGrace = time.Second

// innerConn unwraps c (NetConn methods) down to the socket's connection.
func innerConn(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c
		}
		c = u.NetConn()
	}
}

// unreadBytes returns the bytes waiting in the socket's receive queue
// (SIOCINQ), or 0 when the connection has no socket to ask.
func unreadBytes(c net.Conn) int {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	return n
}

// SyncWrites waits for the connection's batched write in flight, if any:
// code that writes the socket directly (a detached WebSocket) calls it
// first, so that its bytes follow the response already written.
func (c *trackedConn) SyncWrites() error {
	if c.fw != nil {
		return c.fw.Sync()
	}
	return nil
}

func (c *trackedConn) Close() error {
	if c.fw != nil {
		c.fw.Close() // no batched write may name the descriptor once it is closed
	}
	err := c.Conn.Close()
	c.once.Do(func() { c.set.remove(c) })
	return err
}
