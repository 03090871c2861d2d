package engine

import (
	"fmt"

	"github.com/edgeloop/edgeloop/cache"
	"github.com/edgeloop/edgeloop/handlers"
)

// setupCache creates the process's one HTTP response cache when a proxy
// route turns caching on (`cache:` on the route; `--cache SIZE` does it for
// the / route). Its memory is taken up front by freecache, so no cache is
// made when no route uses one.
func (s *Server) setupCache() error {
	on := false
	for i := range s.cfg.Routes {
		if r := &s.cfg.Routes[i]; r.Kind() == KindProxy && r.Cache.On() {
			on = true
		}
	}
	if !on {
		return nil
	}
	cc := s.cfg.Cache
	if prev := s.prev; prev != nil && prev.cache != nil && prev.cacheOwned.Load() && sameCacheStore(prev.cfg.Cache, cc) {
		// A reload keeps the stored responses, as nginx and Varnish do:
		// the cache is the predecessor's until takeOver.
		s.cache = prev.cache
		return nil
	}
	c, err := cache.New(cache.Config{
		Size:          int(cc.Size),
		MaxObjectSize: int64(cc.MaxObjectSize),
		CoalesceWait:  cc.CoalesceWait.D(),
		Shared:        true,
	})
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	s.cache = c
	s.cacheOwned.Store(true)
	return nil
}

// sameCacheStore reports whether two cache sections make the same store
// (size, object limit, coalescing wait), which a reload can then keep.
func sameCacheStore(a, b CacheConfig) bool {
	return a.Size == b.Size && a.MaxObjectSize == b.MaxObjectSize && a.CoalesceWait == b.CoalesceWait
}

// withCache gives a proxy route its cache settings: the shared cache, the
// route's policy, the PURGE allow list and the compressor whose output hits
// keep as variants.
func (s *Server) withCache(pc *handlers.ProxyConfig, rc Route) error {
	if s.cache == nil || !rc.Cache.On() {
		return nil
	}
	pc.Cache = s.cache
	pc.CacheRoute = &cache.Route{
		TTL:          rc.Cache.DefaultTTL.D(),
		StaleIfError: rc.Cache.StaleIfError.D(),
	}
	pc.PurgeAllow = Prefixes(s.cfg.Cache.PurgeAllow)
	if s.comp != nil {
		pc.Compress = s.comp.Handler()
	}
	return nil
}

// closeCache frees the cache's memory and stops its metrics, unless a
// successor took the cache over.
func (s *Server) closeCache() {
	if s.cache != nil && s.cacheOwned.Load() {
		_ = s.cache.Close()
	}
}
