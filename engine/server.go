package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/hertz/pkg/app/server"
	"github.com/cloudwego/hertz/pkg/common/config"
	"github.com/cloudwego/hertz/pkg/common/hlog"
	"github.com/cloudwego/hertz/pkg/network/netpoll"
	"github.com/cloudwego/hertz/pkg/network/standard"

	"github.com/edgeloop/edgeloop/cache"
	"github.com/edgeloop/edgeloop/engine/compress"
	"github.com/edgeloop/edgeloop/engine/limit"
	"github.com/edgeloop/edgeloop/internal/fairpoll"
)

// Server is one edgeloop serving process: its public listeners, the
// middleware chain and routes, and the admin listener. Create it with New,
// then call Listen and Serve (or Run). Its methods are safe for concurrent use.
type Server struct {
	cfg       *Config
	log       *slog.Logger
	accessLog bool

	routes *router
	rate   *limit.RateLimiter // nil when the rate limit is off
	conns  *limit.ConnLimiter
	cors   *cors
	comp   *compress.Compressor // nil when compression is off
	guard  *guardState          // set by Listen before any listener opens (guard.go)
	cache  *cache.Cache         // HTTP response cache (cache.go); nil when no route caches
	// cacheOwned: this Server closes the cache when it stops (false while
	// a reload's successor has it, or before takeOver for a successor).
	cacheOwned atomic.Bool

	mu        sync.Mutex // guards the fields below
	listeners []net.Listener
	hertz     []*server.Hertz
	connSets  []interface{ closeAll() }
	admin     *http.Server
	adminLn   net.Listener

	// featMu guards the state of the routes that reach outside the request:
	// the Postgres pool and LISTEN connection (routes_query.go) and the
	// WebSocket hubs and proxies (routes_ws.go).
	featMu sync.Mutex
	dbst   *dbState
	ws     *wsSet

	inflight atomic.Int64
	draining atomic.Bool
	// replaced: a successor serves (reload), so this Server's admin
	// listener stops first when it drains and the successor's answers.
	replaced atomic.Bool

	// prev is the Server this one replaces on a reload, from New until
	// takeOver: an unchanged cache section keeps its response cache, and
	// unchanged WebSocket routes their hubs.
	prev *Server
}

// New builds a server from a normalized config. It opens no sockets.
func New(cfg *Config, log *slog.Logger) (*Server, error) {
	return newSuccessor(cfg, log, nil)
}

// newSuccessor builds a server that replaces prev (nil: none) on a reload:
// it uses prev's response cache when the cache section is unchanged, and
// the WebSocket routes the new config leaves unchanged mount prev's hubs
// and proxies; the server takes them over with takeOver once it serves,
// so stored responses and connections survive the reload.
func newSuccessor(cfg *Config, log *slog.Logger, prev *Server) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	// hertz logs through hlog; keep its chatter out of edgeloop's log.
	hlog.SetLevel(hlog.LevelError)
	s := &Server{cfg: cfg, log: log, accessLog: *cfg.Log.Access, cors: newCORS(cfg.CORS), prev: prev}
	var err error
	if cfg.RateLimit.Rate.PerSecond > 0 {
		esc := cfg.Guard.Escalate
		rc := limit.RateConfig{
			Rate:       cfg.RateLimit.Rate.PerSecond,
			Burst:      cfg.RateLimit.Burst,
			MaxClients: cfg.RateLimit.MaxClients,
		}
		if !esc.Disabled {
			rc.OffenderThreshold, rc.OffenderWindow, rc.OnOffender = esc.Threshold, esc.Window.D(), s.onOffender
		}
		s.rate, err = limit.NewRateLimiter(rc)
		if err != nil {
			return nil, fmt.Errorf("rate limit: %w", err)
		}
	}
	s.conns = limit.NewConnLimiter(limit.ConnConfig{
		Max:      cfg.Limits.MaxConnections,
		MaxPerIP: cfg.Limits.MaxConnectionsPerIP,
	})
	if *cfg.Compression.Enabled {
		s.comp, err = compress.New(compress.Config{
			MinLength:   int(cfg.Compression.MinLength),
			Types:       cfg.Compression.Types,
			Encodings:   cfg.Compression.Encodings,
			GzipLevel:   cfg.Compression.GzipLevel,
			BrotliLevel: cfg.Compression.BrotliLevel,
		})
		if err != nil {
			return nil, fmt.Errorf("compression: %w", err)
		}
	}
	if err := s.setupCache(); err != nil {
		return nil, err
	}
	if s.routes, err = s.buildRoutes(); err != nil {
		return nil, err
	}
	return s, nil
}

// Listen opens the public and admin sockets, so that address errors are
// reported before anything is served.
func (s *Server) Listen(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The guard joins edgeloop's cgroup, which must happen before listen()
	// for the kernel connection counter to see our sockets.
	if err := s.setupGuard(ctx); err != nil {
		return err
	}
	if err := s.setupDatabase(ctx); err != nil {
		return err
	}
	for _, addr := range s.cfg.Listen {
		ln, err := s.listenTCP(ctx, kindPublic, addr)
		if err != nil {
			s.closeListenersLocked()
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		s.listeners = append(s.listeners, ln)
	}
	if s.cfg.Admin != "off" {
		ln, err := s.listenTCP(ctx, kindAdmin, s.cfg.Admin)
		if err != nil {
			s.closeListenersLocked()
			return fmt.Errorf("admin listen %s: %w", s.cfg.Admin, err)
		}
		s.adminLn = ln
	}
	return nil
}

func (s *Server) closeListenersLocked() {
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	s.listeners = nil
	if s.adminLn != nil {
		_ = s.adminLn.Close()
		s.adminLn = nil
	}
}

// Addrs returns the public listeners' addresses (after Listen).
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, len(s.listeners))
	for i, ln := range s.listeners {
		out[i] = ln.Addr()
	}
	return out
}

// AdminAddr returns the admin listener's address, or nil when it is off.
func (s *Server) AdminAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Run listens (if Listen was not called) and serves until ctx is done, then
// drains gracefully and returns nil.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	listening := len(s.listeners) > 0
	s.mu.Unlock()
	if !listening {
		if err := s.Listen(ctx); err != nil {
			return err
		}
	}
	errc := make(chan error, 8)
	sends := s.batchSends()
	s.mu.Lock()
	for _, ln := range s.listeners {
		h := s.newHertz(ln)
		s.hertz = append(s.hertz, h)
		go func() { errc <- h.Run() }()
		s.log.Info("listening", "addr", ln.Addr().String(), "transport", s.cfg.Transport, "wake_order", s.wakeOrder(), "sends", sends)
	}
	if s.adminLn != nil {
		s.admin = s.newAdmin()
		go func() {
			if err := s.admin.Serve(s.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("admin: %w", err)
			}
		}()
		s.log.Info("admin listening", "addr", s.adminLn.Addr().String())
	}
	s.mu.Unlock()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.shutdown()
	return runErr
}

// newHertz builds one hertz server on ln with edgeloop's middleware chain.
func (s *Server) newHertz(ln net.Listener) *server.Hertz {
	t := s.cfg.Timeouts
	opts := []config.Option{
		server.WithStreamBody(true),
		server.WithMaxRequestBodySize(int(s.cfg.Limits.MaxBodySize)),
		server.WithMaxHeaderBytes(int(s.cfg.Limits.MaxHeaderSize)),
		server.WithReadTimeout(t.Read.D()),
		server.WithWriteTimeout(t.Write.D()),
		server.WithIdleTimeout(t.Idle.D()),
		server.WithKeepAliveTimeout(t.Idle.D()),
		server.WithExitWaitTime(t.Drain.D()),
		server.WithDisablePrintRoute(true),
		server.WithRedirectTrailingSlash(false),
		server.WithRedirectFixedPath(false),
		server.WithHandleMethodNotAllowed(false),
		server.WithSenseClientDisconnection(false),
	}
	if s.cfg.Transport == "netpoll" {
		set := newConnSet[*npConnState]()
		s.connSets = append(s.connSets, set)
		opts = append(opts, server.WithTransport(netpoll.NewTransporter), server.WithListener(ln),
			server.WithOnAccept(func(c net.Conn) context.Context { return s.netpollAccept(set, c) }))
	} else {
		set := newConnSet[*trackedConn]()
		s.connSets = append(s.connSets, set)
		opts = append(opts, server.WithTransport(standard.NewTransporter), server.WithOnAccept(acceptContext),
			server.WithListener(&trackingListener{
				Listener: s.conns.Listener(keepAliveListener{ln, s.cfg.Tune.TCPKeepalive.D()}), set: set,
				readTimeout: t.Read.D(), writeTimeout: t.Write.D(),
				refuse:  s.guardRefusesAddr,
				arrival: s.arrivalOrder(),
			}))
	}
	h := server.New(opts...)
	// WebSocket upgrades hijack the connection; hertz's pooled hijacked
	// connections are unsafe with hertz-contrib/websocket (its issue 21).
	h.NoHijackConnPool = true
	h.Name = "edgeloop" // the Server header
	h.Use(s.front)
	if s.cors != nil {
		h.Use(s.cors.handle)
	}
	if s.comp != nil {
		h.Use(s.comp.Handler())
	}
	h.NoRoute(s.dispatch)
	h.NoMethod(s.dispatch)
	return h
}

// handOff makes way for a successor Server on the same sockets: this one
// stops accepting, so that from the moment a reload returns every new
// connection reaches the successor (the sockets stay open through the
// successor's descriptors: nothing queued is lost). Its keep-alive
// connections are closed by shutdown, once idle, as before; closing them
// here would race their clients' next requests, which an HTTP client may
// not retry when they are not idempotent.
func (s *Server) handOff() {
	s.draining.Store(true)
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
}

// shutdown stops accepting, waits for in-flight requests up to the drain
// timeout, closes idle keep-alive connections, and releases the routes.
func (s *Server) shutdown() {
	s.draining.Store(true)
	s.mu.Lock()
	admin := s.admin
	s.mu.Unlock()
	if admin != nil && s.replaced.Load() {
		// Admin requests (publish, purge, metrics) go to the successor,
		// which shares the admin socket, from now on.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = admin.Shutdown(ctx)
		}()
	}
	s.mu.Lock()
	hs, sets := s.hertz, s.connSets
	s.mu.Unlock()
	// Stop accepting on every listener first: on a reload, new
	// connections (WebSocket upgrades among them) go to the successor.
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	s.closeWS()
	drain := s.cfg.Timeouts.Drain.D()
	deadline := time.Now().Add(drain)
	s.log.Info("draining", "inflight", s.inflight.Load(), "timeout", drain)
	for s.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, set := range sets {
		set.closeAll()
	}
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(time.Second))
			defer cancel()
			_ = h.Shutdown(ctx)
		}()
	}
	wg.Wait()
	if s.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.admin.Shutdown(ctx)
		cancel()
	}
	if err := s.routes.close(); err != nil {
		s.log.Warn("closing routes", "err", err)
	}
	s.closeDatabase()
	s.closeCache()
	s.closeGuard()
	s.log.Info("stopped", "inflight_left", s.inflight.Load())
}

// wakeOrder names the order in effect: arrival or runtime.
func (s *Server) wakeOrder() string {
	if s.arrivalOrder() {
		return "arrival"
	}
	return "runtime"
}

// batchSends turns batched sends through io_uring (tune.io_uring) on or
// off for the process, and names what writes are: "io_uring", "write" (off,
// or runtime order, where writes are not made through fairpoll) or
// "write (io_uring unavailable)".
func (s *Server) batchSends() string {
	if !s.arrivalOrder() || s.cfg.Tune.IOUring == "off" {
		_ = fairpoll.EnableBatchSends(false)
		return "write"
	}
	if err := fairpoll.EnableBatchSends(true); err != nil {
		s.log.Info("io_uring not available: writes are write(2) calls", "err", err)
		return "write (io_uring unavailable)"
	}
	return "io_uring"
}

// arrivalOrder reports whether connections are read through fairpoll, in
// the order their data arrived (tune.wake_order), on the standard transport.
func (s *Server) arrivalOrder() bool {
	if s.cfg.Transport == "netpoll" {
		return false
	}
	switch s.cfg.Tune.WakeOrder {
	case "arrival":
		return true
	case "runtime":
		return false
	}
	return fairpoll.Enabled()
}
