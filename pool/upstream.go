package pool

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeloop/edgeloop/internal/fairpoll"
)

// Upstream is a keep-alive pool of HTTP/1.1 connections to one host:port.
// It is safe for concurrent use. Connections are reused LIFO (the most
// recently used one is the most likely to still be open at the origin) and
// closed after IdleTimeout idle, by a background sweeper stopped by Close.
type Upstream struct {
	addr string // host:port dialled; never derived from a request
	cfg  UpstreamConfig

	dialer net.Dialer

	// slots holds one token per open connection when MaxConns > 0.
	slots chan struct{}
	// idleSig wakes one Acquire waiting on MaxConns when a connection is put back.
	idleSig chan struct{}

	mu     sync.Mutex // guards idle, closed
	idle   []*Conn    // oldest first
	closed bool

	open, dials, dialErrors atomic.Int64

	mOpen, mIdle        prometheus.Gauge
	mDials, mDialErrors prometheus.Counter
	stop                chan struct{}
	sweeperDone         chan struct{}
	now                 func() time.Time // testing
}

// Stats is a snapshot of an Upstream's pool.
type Stats struct {
	Open       int   // connections open, idle or busy
	Idle       int   // connections idle in the pool
	Dials      int64 // connect attempts so far
	DialErrors int64 // failed connect attempts so far
}

// NewUpstream validates rawURL ("http://host:port") and returns its pool.
// No connection is opened until the first Acquire.
func NewUpstream(rawURL string, cfg UpstreamConfig) (*Upstream, error) {
	addr, err := parseUpstreamURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	u := &Upstream{
		addr:        addr,
		cfg:         cfg,
		dialer:      net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		idleSig:     make(chan struct{}, 1),
		stop:        make(chan struct{}),
		sweeperDone: make(chan struct{}),
		now:         time.Now,
		mOpen:       metricOpen.WithLabelValues(addr),
		mIdle:       metricIdle.WithLabelValues(addr),
		mDials:      metricDials.WithLabelValues(addr),
		mDialErrors: metricDialErrors.WithLabelValues(addr),
	}
	if cfg.MaxConns > 0 {
		u.slots = make(chan struct{}, cfg.MaxConns)
	}
	go u.sweep()
	return u, nil
}

// Addr returns the host:port this pool dials.
func (u *Upstream) Addr() string { return u.addr }

// Stats returns the pool's counters.
func (u *Upstream) Stats() Stats {
	u.mu.Lock()
	idle := len(u.idle)
	u.mu.Unlock()
	return Stats{Open: int(u.open.Load()), Idle: idle, Dials: u.dials.Load(), DialErrors: u.dialErrors.Load()}
}

// Acquire returns an idle connection, or dials a new one. With fresh set it
// always dials (used to retry after a pooled connection turned out closed).
// A dial failure is a *DialError.
func (u *Upstream) Acquire(ctx context.Context, fresh bool) (*Conn, error) {
	for {
		if !fresh {
			if c := u.popIdle(); c != nil {
				return c, nil
			}
		}
		if u.slots == nil {
			return u.dial(ctx)
		}
		select {
		case u.slots <- struct{}{}:
			c, err := u.dial(ctx)
			if err != nil {
				<-u.slots
			}
			return c, err
		default:
		}
		select {
		case u.slots <- struct{}{}:
			c, err := u.dial(ctx)
			if err != nil {
				<-u.slots
			}
			return c, err
		case <-u.idleSig:
			fresh = false
		case <-u.stop:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (u *Upstream) popIdle() *Conn {
	u.mu.Lock()
	n := len(u.idle)
	if n == 0 {
		u.mu.Unlock()
		return nil
	}
	c := u.idle[n-1]
	u.idle[n-1] = nil
	u.idle = u.idle[:n-1]
	u.mu.Unlock()
	u.mIdle.Dec()
	c.reused = true
	return c
}

func (u *Upstream) dial(ctx context.Context) (*Conn, error) {
	u.mu.Lock()
	closed := u.closed
	u.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	u.dials.Add(1)
	u.mDials.Inc()
	nc, err := u.dialer.DialContext(ctx, "tcp", u.addr)
	if err != nil {
		u.dialErrors.Add(1)
		u.mDialErrors.Inc()
		return nil, &DialError{Addr: u.addr, Err: err}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		// Go sets TCP_NODELAY by default; set it explicitly because small
		// request heads must not wait for Nagle's algorithm (RFC 896).
		_ = tc.SetNoDelay(true)
	}
	u.open.Add(1)
	u.mOpen.Inc()
	var rd io.Reader = nc
	var wr io.Writer = nc
	c := &Conn{up: u, nc: nc, rto: -1, wto: -1}
	if u.cfg.ArrivalOrder {
		if c.fr = fairpoll.NewReader(nc); c.fr != nil {
			rd = c.fr
			// The origin's answer is almost never there when the pool
			// reads right after sending the request (99.5% of those
			// reads failed with EAGAIN under load): wait for the
			// netpoller first, as client connections do.
			c.waitFirst = c.fr.WaitFirst(true)
		}
		if c.fw = fairpoll.NewWriter(nc); c.fw != nil {
			wr = c.fw
			c.fw.BatchSends() // when the process batches sends (fairpoll.EnableBatchSends)
		}
		fairpoll.TimeStages(c.fr, c.fw, false) // builds with -tags stagetime only
	}
	c.br, c.bw = bufio.NewReaderSize(rd, readBufSize), bufio.NewWriterSize(wr, writeBufSize)
	c.body.c = c
	return c, nil
}

// put returns a healthy connection whose response was read to its end.
func (u *Upstream) put(c *Conn) {
	if c.br.Buffered() > 0 { // bytes beyond the response: the stream is out of sync
		u.discard(c)
		return
	}
	c.lastUsed = u.now()
	u.mu.Lock()
	if u.closed || len(u.idle) >= u.cfg.MaxIdleConns {
		u.mu.Unlock()
		u.discard(c)
		return
	}
	u.idle = append(u.idle, c)
	u.mu.Unlock()
	u.mIdle.Inc()
	select {
	case u.idleSig <- struct{}{}:
	default:
	}
}

// discard closes a connection that must not be reused.
func (u *Upstream) discard(c *Conn) {
	if c.fw != nil {
		c.fw.Close() // no batched write may name the descriptor once it is closed
	}
	_ = c.nc.Close()
	u.open.Add(-1)
	u.mOpen.Dec()
	if u.slots != nil {
		<-u.slots
	}
}

// closeIdleBefore closes idle connections last used before t.
func (u *Upstream) closeIdleBefore(t time.Time) int {
	u.mu.Lock()
	i := 0
	for i < len(u.idle) && u.idle[i].lastUsed.Before(t) {
		i++
	}
	old := make([]*Conn, i)
	copy(old, u.idle[:i])
	n := copy(u.idle, u.idle[i:])
	clear(u.idle[n:])
	u.idle = u.idle[:n]
	u.mu.Unlock()
	for _, c := range old {
		u.mIdle.Dec()
		u.discard(c)
	}
	return len(old)
}

func (u *Upstream) sweep() {
	defer close(u.sweeperDone)
	every := u.cfg.IdleTimeout / 4
	if every < time.Second {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-t.C:
			u.closeIdleBefore(u.now().Add(-u.cfg.IdleTimeout))
		}
	}
}

// Close stops the sweeper and closes idle connections. Busy connections are
// closed when their response is finished. Close is idempotent.
func (u *Upstream) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	u.mu.Unlock()
	close(u.stop)
	<-u.sweeperDone
	u.closeIdleBefore(time.Unix(1<<40, 0))
	return nil
}
