package engine

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/edgeloop/edgeloop/handlers/wshub"
)

// wsSet is a server's pub/sub hubs and proxies. Read-only once the routes
// are built.
type wsSet struct {
	hubs    []wsHub
	proxies []*wshub.Proxy
}

type wsHub struct {
	*wshub.Hub
	notify     string // Postgres NOTIFY channel feeding it, if any
	maxMessage int
}

func (s *Server) wsSet() *wsSet {
	s.featMu.Lock()
	defer s.featMu.Unlock()
	set := s.ws
	if set == nil {
		set = &wsSet{}
		s.ws = set
	}
	return set
}

func wsConfig(rc Route) wshub.Config {
	w := rc.WebSocket
	cfg := wshub.Config{
		Route:          rc.Path,
		MaxConns:       w.MaxConns,
		MaxConnsPerIP:  w.MaxConnsPerIP,
		SendQueue:      w.SendQueue,
		SlowConsumer:   w.SlowConsumer,
		MaxMessage:     int(w.MaxMessage),
		PingInterval:   w.PingInterval.D(),
		IdleTimeout:    w.IdleTimeout.D(),
		AllowedOrigins: w.AllowedOrigins,
		Upstreams:      rc.Targets(),
	}
	for _, p := range w.PublishAllow {
		cfg.PublishAllow = append(cfg.PublishAllow, p.Prefix)
	}
	return cfg
}

// buildPubSub builds a /ws/{channel} pub/sub route.
func (s *Server) buildPubSub(rc Route) (routeHandler, error) {
	cfg := wsConfig(rc)
	h, err := wshub.NewHub(cfg)
	if err != nil {
		return nil, err
	}
	set := s.wsSet()
	set.hubs = append(set.hubs, wsHub{Hub: h, notify: rc.WebSocket.NotifyChannel, maxMessage: int(rc.WebSocket.MaxMessage)})
	return h, nil
}

// buildWSProxy builds a WebSocket proxy route (ws:// upstream).
func (s *Server) buildWSProxy(rc Route) (routeHandler, error) {
	p, err := wshub.NewProxy(wsConfig(rc))
	if err != nil {
		return nil, err
	}
	set := s.wsSet()
	set.proxies = append(set.proxies, p)
	return p, nil
}

// closeWS sends close 1001 (going away) with a jittered reconnect hint to
// every WebSocket client and waits up to two seconds (or the drain timeout,
// if shorter) for them to close.
func (s *Server) closeWS() {
	s.featMu.Lock()
	set := s.ws
	s.ws = nil
	s.featMu.Unlock()
	if set == nil {
		return
	}
	wait := min(2*time.Second, max(s.cfg.Timeouts.Drain.D(), 100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var wg sync.WaitGroup
	for _, h := range set.hubs {
		wg.Go(func() { h.Shutdown(ctx) })
	}
	for _, p := range set.proxies {
		wg.Go(func() { p.Shutdown(ctx) })
	}
	wg.Wait()
}

func (s *Server) wsHubs() []wsHub {
	s.featMu.Lock()
	defer s.featMu.Unlock()
	if set := s.ws; set != nil {
		return set.hubs
	}
	return nil
}

// wsPublish publishes msg on channel on every pub/sub route and returns the
// number of subscribers it was queued for.
func (s *Server) wsPublish(channel string, msg []byte) int {
	n := 0
	for _, h := range s.wsHubs() {
		n += h.Publish(channel, msg)
	}
	return n
}

// wsNotifyChannels lists the Postgres NOTIFY channels that pub/sub routes
// listen to (their notify_channel), for the database's LISTEN connection.
func (s *Server) wsNotifyChannels() []string {
	var out []string
	seen := map[string]bool{}
	for _, h := range s.wsHubs() {
		if h.notify != "" && !seen[h.notify] {
			seen[h.notify] = true
			out = append(out, h.notify)
		}
	}
	return out
}

// errNotifyPayload: a NOTIFY payload must be "channel:message".
var errNotifyPayload = errors.New(`ws: NOTIFY payload must be "channel:message"`)

// wsNotify publishes one Postgres notification received on notifyChannel:
// its payload is "channel:message". It goes to the routes whose
// notify_channel is notifyChannel and returns the subscribers reached.
// Safe to call from the LISTEN connection's goroutine: it never blocks on
// a subscriber.
func (s *Server) wsNotify(notifyChannel, payload string) (int, error) {
	ch, msg, ok := strings.Cut(payload, ":")
	if !ok || ch == "" {
		return 0, errNotifyPayload
	}
	n := 0
	for _, h := range s.wsHubs() {
		if h.notify == notifyChannel {
			n += h.Publish(ch, []byte(msg))
		}
	}
	return n, nil
}

// wsAdmin registers POST /publish/{channel} on the admin listener: the body
// is the message; the answer is {"channel":..., "delivered": n}.
func (s *Server) wsAdmin(mux *http.ServeMux) {
	mux.HandleFunc("POST /publish/{channel}", func(w http.ResponseWriter, r *http.Request) {
		ch := r.PathValue("channel")
		hubs := s.wsHubs()
		if len(hubs) == 0 {
			http.Error(w, "no pub/sub websocket route is configured", http.StatusNotFound)
			return
		}
		limit := 0
		for _, h := range hubs {
			limit = max(limit, h.maxMessage)
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				http.Error(w, "message larger than max_message", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		n := s.wsPublish(ch, body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, wshub.PublishResult(ch, n))
	})
}

// wsPublishRoute answers POST /publish/{channel} on the public port for
// clients inside a pub/sub route's publish_allow; it publishes to the routes
// that allow the client.
type wsPublishRoute struct{ s *Server }

const wsPublishPrefix = "/publish/"

func (p wsPublishRoute) Handle(_ context.Context, c *app.RequestContext) {
	if !c.IsPost() {
		c.Response.Header.Set("Allow", "POST")
		writeError(c, 405, "publish with POST")
		return
	}
	ch := strings.TrimPrefix(string(c.Request.URI().Path()), wsPublishPrefix)
	if ch == "" || strings.Contains(ch, "/") {
		writeError(c, 404, "want /publish/{channel}")
		return
	}
	ip := remoteIP(c.RemoteAddr())
	var allowed []wsHub
	limit := 0
	for _, h := range p.s.wsHubs() {
		if h.PublishAllowed(ip) {
			allowed = append(allowed, h)
			limit = max(limit, h.maxMessage)
		}
	}
	if len(allowed) == 0 {
		writeError(c, 403, "publishing is not allowed from your address")
		return
	}
	wshub.ServePublish(c, ch, limit, func(ch string, msg []byte) int {
		n := 0
		for _, h := range allowed {
			n += h.Publish(ch, msg)
		}
		return n
	})
}

func (wsPublishRoute) Close() error { return nil }

// wsPublicRoutes adds the public /publish/ endpoint when a pub/sub route
// has publish_allow, keeping the routes sorted longest prefix first.
func (s *Server) wsPublicRoutes(routes []*mountedRoute) []*mountedRoute {
	any := false
	for _, rc := range s.cfg.Routes {
		if rc.Kind() == KindPubSub && len(rc.WebSocket.PublishAllow) > 0 {
			any = true
		}
	}
	if !any {
		return routes
	}
	for _, rt := range routes {
		if string(rt.prefix) == wsPublishPrefix {
			return routes // a configured route owns the path
		}
	}
	mr := &mountedRoute{prefix: []byte(wsPublishPrefix), handler: wsPublishRoute{s}, metrics: newRouteMetrics(wsPublishPrefix)}
	i := 0
	for i < len(routes) && len(routes[i].prefix) >= len(mr.prefix) {
		i++
	}
	return append(routes[:i], append([]*mountedRoute{mr}, routes[i:]...)...)
}
