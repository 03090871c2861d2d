package engine

import (
	"errors"
	"net/http"
)

// buildPubSub builds a /ws/{channel} pub/sub route. (Wired by the WebSocket work.)
func (s *Server) buildPubSub(rc Route) (routeHandler, error) {
	return nil, errors.New("websocket routes are not available in this build yet")
}

// buildWSProxy builds a WebSocket proxy route (ws:// upstream).
func (s *Server) buildWSProxy(rc Route) (routeHandler, error) {
	return nil, errors.New("websocket proxy routes are not available in this build yet")
}

// closeWS sends close 1001 (going away) to WebSocket clients at shutdown.
func (s *Server) closeWS() {}

// wsAdmin registers POST /publish/{channel} on the admin listener.
func (s *Server) wsAdmin(mux *http.ServeMux) {}
