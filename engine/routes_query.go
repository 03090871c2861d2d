package engine

import (
	"context"
	"errors"
)

// setupDatabase opens the Postgres pool when database.url is set.
// (Wired by the data API work.)
func (s *Server) setupDatabase(ctx context.Context) error { return nil }

// closeDatabase closes the pool and its LISTEN connection.
func (s *Server) closeDatabase() {}

// buildQuery builds a sql route.
func (s *Server) buildQuery(rc Route) (routeHandler, error) {
	return nil, errors.New("sql routes are not available in this build yet")
}
