package engine

import (
	"context"
	"fmt"

	"github.com/edgeloop/edgeloop/cache"
	"github.com/edgeloop/edgeloop/handlers"
	"github.com/edgeloop/edgeloop/pool"
)

// dbState is one server's Postgres pool, query-result cache and LISTEN
// connection. pg and qc are set before any route uses them and never
// change; stop and done belong to setupDatabase and closeDatabase.
type dbState struct {
	pg   *pool.PG
	qc   *cache.QueryCache // nil until a query route caches
	stop context.CancelFunc
	done chan struct{} // closed when the LISTEN goroutine ended
}

// db returns the server's database state, creating the (not yet open)
// pool on first use.
func (s *Server) db() (*dbState, error) {
	s.featMu.Lock()
	defer s.featMu.Unlock()
	if st := s.dbst; st != nil {
		return st, nil
	}
	d := s.cfg.Database
	pg, err := pool.NewPG(pool.PGConfig{
		URL:               d.URL,
		MaxConns:          d.MaxConns,
		MinConns:          d.MinConns,
		AcquireTimeout:    d.AcquireTimeout.D(),
		IdleTimeout:       d.IdleTimeout.D(),
		MaxLifetime:       d.MaxLifetime.D(),
		HealthCheckPeriod: d.HealthCheckPeriod.D(),
	})
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	st := &dbState{pg: pg}
	s.dbst = st
	return st, nil
}

// dbStateOf returns the server's database state, or nil.
func (s *Server) dbStateOf() *dbState {
	s.featMu.Lock()
	defer s.featMu.Unlock()
	return s.dbst
}

// setupDatabase opens the Postgres pool when database.url is set, and
// starts the LISTEN connection for cache invalidation (notify.go). A
// database that is down at start is not an error: query routes answer 503
// until it is up, and the LISTEN connection keeps retrying.
func (s *Server) setupDatabase(ctx context.Context) error {
	if s.cfg.Database.URL == "" {
		return nil
	}
	st, err := s.db()
	if err != nil {
		return err
	}
	if st.stop != nil {
		return nil // already listening (Listen called twice)
	}
	if err := st.pg.Open(); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	s.startNotify(st)
	return nil
}

// closeDatabase stops the LISTEN connection and closes the pool.
func (s *Server) closeDatabase() {
	s.featMu.Lock()
	st := s.dbst
	s.dbst = nil
	s.featMu.Unlock()
	if st == nil {
		return
	}
	if st.stop != nil {
		st.stop()
		<-st.done
	}
	st.pg.Close()
	if st.qc != nil {
		st.qc.Close()
	}
}

// buildQuery builds a sql route on the server's pool, with the shared
// query-result cache when the route has cache.ttl.
func (s *Server) buildQuery(rc Route) (routeHandler, error) {
	st, err := s.db()
	if err != nil {
		return nil, err
	}
	qc := handlers.QueryConfig{
		Route:   rc.Path,
		SQL:     rc.SQL,
		Params:  rc.Params,
		Single:  rc.Single,
		MaxRows: rc.MaxRows,
		Timeout: rc.Timeout.D(),
		DB:      st.pg,
		Log:     s.log,
	}
	if rc.Cache.On() && rc.Cache.TTL > 0 {
		s.featMu.Lock()
		if st.qc == nil {
			st.qc, err = cache.NewQueryCache(cache.QueryConfig{MaxBytes: int(s.cfg.Database.CacheSize)})
		}
		s.featMu.Unlock()
		if err != nil {
			return nil, err
		}
		qc.Cache, qc.CacheTTL, qc.CacheTags = st.qc, rc.Cache.TTL.D(), rc.Cache.Tags
	}
	return handlers.NewQuery(qc)
}
