package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
)

// Defaults for the zero value of PGConfig (the product plan's pool values).
const (
	defaultPGMaxConns          = 100
	defaultPGMinConns          = 10
	defaultPGAcquireTimeout    = 5 * time.Second
	defaultPGIdleTimeout       = 600 * time.Second
	defaultPGMaxLifetime       = 1800 * time.Second
	defaultPGHealthCheckPeriod = time.Minute
)

// Errors returned by PG. A query that fails because the database cannot be
// reached matches ErrPGUnavailable; one that fails because the caller's
// deadline passed matches ErrPGTimeout; one the server rejected is a
// *pgconn.PgError wrapped in ErrPGQuery.
var (
	ErrPGConfig      = errors.New("pool: bad database config")
	ErrPGClosed      = errors.New("pool: database pool not open")
	ErrPGUnavailable = errors.New("pool: database unavailable")
	ErrPGTimeout     = errors.New("pool: database query timed out")
	ErrPGQuery       = errors.New("pool: database query failed")
)

// PGConfig configures the Postgres pool of the query routes. Its zero value,
// apart from URL, is the documented default of each field.
type PGConfig struct {
	// URL is a postgres:// connection string.
	URL string
	// MaxConns caps open connections. If zero, 100.
	MaxConns int
	// MinConns are kept open (opened in the background). If zero, 10;
	// capped at MaxConns.
	MinConns int
	// AcquireTimeout bounds waiting for a connection, including connecting
	// a new one; after it a query fails with ErrPGUnavailable. If zero, 5s.
	AcquireTimeout time.Duration
	// IdleTimeout closes connections idle longer. If zero, 600s.
	IdleTimeout time.Duration
	// MaxLifetime recycles connections older than this. If zero, 1800s.
	MaxLifetime time.Duration
	// HealthCheckPeriod is the interval of the pool's background check of
	// idle connections. If zero, 1m.
	HealthCheckPeriod time.Duration
}

func (c PGConfig) withDefaults() PGConfig {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.MaxConns == 0 {
		c.MaxConns = defaultPGMaxConns
	}
	if c.MinConns == 0 {
		c.MinConns = defaultPGMinConns
	}
	c.MinConns = min(c.MinConns, c.MaxConns)
	def(&c.AcquireTimeout, defaultPGAcquireTimeout)
	def(&c.IdleTimeout, defaultPGIdleTimeout)
	def(&c.MaxLifetime, defaultPGMaxLifetime)
	def(&c.HealthCheckPeriod, defaultPGHealthCheckPeriod)
	return c
}

// PG is a pgxpool with edgeloop's bounds: every acquire is bounded by
// AcquireTimeout (so a database that is down answers quickly, never hangs),
// every query by its caller's context, and statements are prepared once per
// connection and reused (pgx's default QueryExecModeCacheStatement).
//
// NewPG opens no sockets; Open starts the pool, which connects lazily and
// keeps MinConns open in the background. PG is safe for concurrent use.
type PG struct {
	cfg     PGConfig
	poolCfg *pgxpool.Config

	mu   sync.RWMutex // guards pool
	pool *pgxpool.Pool
}

// NewPG validates cfg and parses its URL.
func NewPG(cfg PGConfig) (*PG, error) {
	cfg = cfg.withDefaults()
	if !strings.HasPrefix(cfg.URL, "postgres://") && !strings.HasPrefix(cfg.URL, "postgresql://") {
		return nil, fmt.Errorf("%w: url: want postgres://...", ErrPGConfig)
	}
	if cfg.MaxConns < 0 || cfg.MinConns < 0 || cfg.AcquireTimeout < 0 || cfg.IdleTimeout < 0 ||
		cfg.MaxLifetime < 0 || cfg.HealthCheckPeriod < 0 {
		return nil, fmt.Errorf("%w: negative size or duration", ErrPGConfig)
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx's message may quote the password; name only the problem.
		return nil, fmt.Errorf("%w: url does not parse", ErrPGConfig)
	}
	pc.MaxConns = int32(cfg.MaxConns)
	pc.MinConns = int32(cfg.MinConns)
	pc.MaxConnIdleTime = cfg.IdleTimeout
	pc.MaxConnLifetime = cfg.MaxLifetime
	pc.MaxConnLifetimeJitter = cfg.MaxLifetime / 10
	pc.HealthCheckPeriod = cfg.HealthCheckPeriod
	// A connect that is abandoned by its acquirer continues in the
	// background; bound it so an unreachable host does not pile them up.
	pc.ConnConfig.ConnectTimeout = cfg.AcquireTimeout
	// A pooled connection idle over a second is pinged before use (pgx's
	// default); bound the ping so a dead peer costs at most this.
	pc.PingTimeout = min(cfg.AcquireTimeout, time.Second)
	return &PG{cfg: cfg, poolCfg: pc}, nil
}

// Config returns the effective configuration (defaults applied).
func (p *PG) Config() PGConfig { return p.cfg }

// Open starts the pool. It does not wait for a connection: a database that
// is down at start is reported by queries (ErrPGUnavailable) until it is up.
func (p *PG) Open() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pool != nil {
		return nil
	}
	pl, err := pgxpool.NewWithConfig(context.Background(), p.poolCfg.Copy())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPGConfig, err)
	}
	p.pool = pl
	registerPG(p)
	return nil
}

// Close closes the pool's connections; queries after it fail with
// ErrPGClosed. Rows still open keep their connection until closed.
func (p *PG) Close() {
	p.mu.Lock()
	pl := p.pool
	p.pool = nil
	p.mu.Unlock()
	if pl != nil {
		unregisterPG(p)
		pl.Close()
	}
}

func (p *PG) get() *pgxpool.Pool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.pool
}

// Stat returns the pool's statistics, or nil when it is not open.
func (p *PG) Stat() *pgxpool.Stat {
	if pl := p.get(); pl != nil {
		return pl.Stat()
	}
	return nil
}

// Query acquires a connection (waiting at most AcquireTimeout, and never
// past ctx's deadline) and runs sql with args under ctx. The returned rows
// hold the connection until Close. A pooled connection found dead before
// anything was sent is replaced once. Errors match ErrPGUnavailable,
// ErrPGTimeout, ErrPGQuery or ErrPGClosed; rows.Err() is classified the
// same way.
func (p *PG) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	pl := p.get()
	if pl == nil {
		return nil, ErrPGClosed
	}
	for attempt := 0; ; attempt++ {
		c, err := p.acquire(ctx, pl)
		if err != nil {
			return nil, err
		}
		rows, err := c.Query(ctx, sql, args...)
		if err == nil {
			return &pgRows{Rows: rows, c: c, ctx: ctx}, nil
		}
		closed := c.Conn().IsClosed()
		c.Release()
		if attempt == 0 && closed && pgconn.SafeToRetry(err) && ctx.Err() == nil {
			continue
		}
		return nil, classify(ctx, err, closed)
	}
}

func (p *PG) acquire(ctx context.Context, pl *pgxpool.Pool) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, p.cfg.AcquireTimeout)
	defer cancel()
	c, err := pl.Acquire(actx)
	if err == nil {
		return c, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: acquire: %w", ErrPGTimeout, ctx.Err())
	}
	if errors.Is(err, puddle.ErrClosedPool) {
		return nil, ErrPGClosed
	}
	return nil, fmt.Errorf("%w: %w", ErrPGUnavailable, err)
}

// classify wraps a query error: the caller's deadline first (pgx closes a
// connection whose query was interrupted, which must not read as an outage),
// then a connection that died under the query, then server errors.
func classify(ctx context.Context, err error, connClosed bool) error {
	var pe *pgconn.PgError
	switch {
	case ctx.Err() != nil || pgconn.Timeout(err):
		return fmt.Errorf("%w: %w", ErrPGTimeout, err)
	case errors.As(err, &pe) && unavailableCode(pe.Code):
		return fmt.Errorf("%w: %w", ErrPGUnavailable, err)
	case errors.As(err, &pe):
		return fmt.Errorf("%w: %w", ErrPGQuery, err)
	case connClosed:
		return fmt.Errorf("%w: %w", ErrPGUnavailable, err)
	}
	return fmt.Errorf("%w: %w", ErrPGQuery, err)
}

// unavailableCode reports SQLSTATEs that mean the server, not the query,
// is the problem: class 08 (connection exception), 53 (insufficient
// resources, e.g. too_many_connections) and 57P01-57P03 (shutdown, crash
// shutdown, cannot connect now).
func unavailableCode(code string) bool {
	return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "53") ||
		code == "57P01" || code == "57P02" || code == "57P03"
}

// pgRows releases its pooled connection on Close and classifies errors.
type pgRows struct {
	pgx.Rows
	c          *pgxpool.Conn
	ctx        context.Context
	err        error
	done       bool
	connClosed bool // the connection died under the query (known after Close)
}

func (r *pgRows) Close() {
	if r.done {
		return
	}
	r.done = true
	r.Rows.Close()
	r.connClosed = r.c.Conn().IsClosed()
	r.c.Release()
}

func (r *pgRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *pgRows) Err() error {
	if r.err != nil {
		return r.err
	}
	if err := r.Rows.Err(); err != nil {
		closed := r.connClosed
		if !r.done {
			closed = r.c.Conn().IsClosed()
		}
		r.err = classify(r.ctx, err, closed)
	}
	return r.err
}
