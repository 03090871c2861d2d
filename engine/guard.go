package engine

import (
	"context"
	"net/http"
	"net/netip"
)

// setupGuard loads and attaches the kernel guard per guard.mode; it runs
// before any listener is opened. (Wired by the kernel guard work.)
func (s *Server) setupGuard(ctx context.Context) error { return nil }

// closeGuard detaches the guard on shutdown.
func (s *Server) closeGuard() {}

// onOffender is called by the rate limiter for clients that keep exceeding it.
func (s *Server) onOffender(ip netip.Addr) {}

// guardAdmin registers the guard endpoints on the admin listener.
func (s *Server) guardAdmin(mux *http.ServeMux) {}
