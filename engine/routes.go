package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/edgeloop/edgeloop/handlers"
	"github.com/edgeloop/edgeloop/pool"
)

// routeHandler is what every kind of route (proxy, static, ...) provides.
type routeHandler interface {
	Handle(ctx context.Context, c *app.RequestContext)
	Close() error
}

// mountedRoute is a configured route with its built handler.
type mountedRoute struct {
	prefix  []byte
	handler routeHandler
	metrics *routeMetrics
}

// router picks the longest matching path prefix. Routes are few, so a
// linear scan of prefixes sorted longest first beats a tree. It is read-only
// after construction and safe for concurrent use.
type router struct {
	routes   []*mountedRoute
	fallback *mountedRoute // answers 404 when no prefix matches
}

func (r *router) match(path []byte) *mountedRoute {
	for _, rt := range r.routes {
		if bytes.HasPrefix(path, rt.prefix) {
			return rt
		}
	}
	return r.fallback
}

// dispatch is the last handler of the chain.
// hertz presets 404 for requests no hertz route matched (all of ours, since
// edgeloop routes by prefix itself); handlers expect the usual 200 default.
func (s *Server) dispatch(ctx context.Context, c *app.RequestContext) {
	c.Response.SetStatusCode(200)
	s.routes.match(c.Request.URI().Path()).handler.Handle(ctx, c)
}

// notFound answers requests that no route matches.
type notFound struct{}

func (notFound) Handle(_ context.Context, c *app.RequestContext) {
	writeError(c, 404, "no route")
}
func (notFound) Close() error { return nil }

// buildRoutes constructs one handler per configured route.
func (s *Server) buildRoutes() (*router, error) {
	r := &router{fallback: &mountedRoute{handler: notFound{}, metrics: newRouteMetrics("none")}}
	for _, rc := range s.cfg.Routes {
		h, err := s.buildHandler(rc)
		if err != nil {
			r.close()
			return nil, fmt.Errorf("route %q: %w", rc.Path, err)
		}
		r.routes = append(r.routes, &mountedRoute{
			prefix:  []byte(rc.Prefix()),
			handler: h,
			metrics: newRouteMetrics(rc.Path),
		})
	}
	r.routes = s.wsPublicRoutes(r.routes)
	return r, nil
}

func (s *Server) buildHandler(rc Route) (routeHandler, error) {
	switch rc.Kind() {
	case KindProxy:
		return s.buildProxy(rc)
	case KindStatic:
		return buildStatic(rc)
	case KindQuery:
		return s.buildQuery(rc)
	case KindPubSub:
		return s.buildPubSub(rc)
	case KindWSProxy:
		return s.buildWSProxy(rc)
	}
	return nil, fmt.Errorf("unknown route kind %q", rc.Kind())
}

func (s *Server) buildProxy(rc Route) (routeHandler, error) {
	u := s.cfg.Upstream
	pc := handlers.ProxyConfig{
		Route:       rc.Path,
		Upstreams:   rc.Targets(),
		Timeout:     rc.Timeout.D(),
		FailTimeout: u.FailTimeout.D(),
		MaxFails:    u.MaxFails,
		HostHeader:  rc.HostHeader,
		Pool: pool.UpstreamConfig{
			MaxIdleConns: u.MaxIdlePerHost,
			MaxConns:     u.MaxConnsPerHost,
			IdleTimeout:  u.IdleTimeout.D(),
			DialTimeout:  u.DialTimeout.D(),
			ArrivalOrder: s.arrivalOrder(),
		},
	}
	if err := s.withCache(&pc, rc); err != nil {
		return nil, err
	}
	return handlers.NewProxy(pc)
}

func buildStatic(rc Route) (routeHandler, error) {
	sc := handlers.StaticConfig{}
	if rc.Root != "embedded" {
		sc.Root = rc.Root
	}
	if rc.StripPrefix {
		sc.StripPrefix = rc.Path
	}
	return handlers.NewStatic(sc)
}

func (r *router) close() error {
	var errs []error
	for _, rt := range r.routes {
		errs = append(errs, rt.handler.Close())
	}
	return errors.Join(errs...)
}
