package engine

import (
	"net/http"

	"github.com/edgeloop/edgeloop/handlers"
)

// setupCache creates the response cache when a route asks for one.
// (Wired by the response cache work.)
func (s *Server) setupCache() error { return nil }

// withCache gives a proxy route its cache settings.
func (s *Server) withCache(pc *handlers.ProxyConfig, rc Route) error { return nil }

// cacheAdmin registers the purge endpoints on the admin listener.
func (s *Server) cacheAdmin(mux *http.ServeMux) {}
