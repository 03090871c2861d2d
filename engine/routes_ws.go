package engine

import (
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/edgeloop/edgeloop/handlers/wshub"
)

// wsSet is a server's pub/sub hubs and proxies. Read-only once the routes
// are built.
//
// A reload keeps WebSocket connections: the successor Server mounts the
// predecessor's Hub or Proxy for every route whose settings it does not
// change, and takes it over once it serves (takeOver). Only
// the Server that owns a hub or proxy shuts it down, so the predecessor's
// drain sends close 1001 only on the routes the reload changed.
type wsSet struct {
	hubs    []*wsHub
	proxies []*wsProxy
}

// wsMount is what a hub and a proxy mount have in common: the route's
// settings, whether this Server owns (and so shuts down) the hub or proxy,
// and, until takeOver, the predecessor's mount it was taken from.
type wsMount struct {
	cfg   wshub.Config
	owned atomic.Bool
	from  *wsMount // nil when built fresh, and after takeOver
}

// take makes m the owner of what it mounted from its predecessor, and
// reports whether it did.
func (m *wsMount) take() bool {
	from := m.from
	m.from = nil
	if from == nil || !from.owned.Swap(false) {
		return false
	}
	m.owned.Store(true)
	return true
}

// wsHub is a pub/sub route's Hub as mounted by one Server.
type wsHub struct {
	*wshub.Hub
	wsMount
	notify     string // Postgres NOTIFY channel feeding it, if any
	maxMessage int
}

// Close shuts the hub down if this Server still owns it.
func (m *wsHub) Close() error {
	if !m.owned.Load() {
		return nil
	}
	return m.Hub.Close()
}

// wsProxy is a WebSocket proxy route's Proxy as mounted by one Server.
type wsProxy struct {
	*wshub.Proxy
	wsMount
}

// Close shuts the proxy down if this Server still owns it.
func (m *wsProxy) Close() error {
	if !m.owned.Load() {
		return nil
	}
	return m.Proxy.Close()
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

// buildPubSub builds a /ws/{channel} pub/sub route, mounting the
// predecessor's hub when the route is unchanged.
func (s *Server) buildPubSub(rc Route) (routeHandler, error) {
	cfg := wsConfig(rc)
	m := &wsHub{wsMount: wsMount{cfg: cfg}, notify: rc.WebSocket.NotifyChannel, maxMessage: int(rc.WebSocket.MaxMessage)}
	if old := s.prev.ownedHub(cfg, m.notify); old != nil {
		m.Hub, m.from = old.Hub, &old.wsMount // owned from takeOver on
	} else {
		h, err := wshub.NewHub(cfg)
		if err != nil {
			return nil, err
		}
		m.Hub = h
		m.owned.Store(true)
	}
	set := s.wsSet()
	set.hubs = append(set.hubs, m)
	return m, nil
}

// buildWSProxy builds a WebSocket proxy route (ws:// upstream), mounting
// the predecessor's proxy when the route is unchanged.
func (s *Server) buildWSProxy(rc Route) (routeHandler, error) {
	cfg := wsConfig(rc)
	m := &wsProxy{wsMount: wsMount{cfg: cfg}}
	if old := s.prev.ownedProxy(cfg); old != nil {
		m.Proxy, m.from = old.Proxy, &old.wsMount
	} else {
		p, err := wshub.NewProxy(cfg)
		if err != nil {
			return nil, err
		}
		m.Proxy = p
		m.owned.Store(true)
	}
	set := s.wsSet()
	set.proxies = append(set.proxies, m)
	return m, nil
}

// ownedHub returns s's hub for an unchanged route (same settings, same
// NOTIFY channel), or nil. s may be nil.
func (s *Server) ownedHub(cfg wshub.Config, notify string) *wsHub {
	return ownedMount(s, func(set *wsSet) []*wsHub { return set.hubs }, func(h *wsHub) bool {
		return h.owned.Load() && h.notify == notify && reflect.DeepEqual(h.cfg, cfg)
	})
}

// ownedProxy is ownedHub for proxy routes.
func (s *Server) ownedProxy(cfg wshub.Config) *wsProxy {
	return ownedMount(s, func(set *wsSet) []*wsProxy { return set.proxies }, func(p *wsProxy) bool {
		return p.owned.Load() && reflect.DeepEqual(p.cfg, cfg)
	})
}

// ownedMount returns the first of s's mounts that list picks and match
// accepts, or nil. s may be nil.
func ownedMount[M *wsHub | *wsProxy](s *Server, list func(*wsSet) []M, match func(M) bool) M {
	if s == nil {
		return nil
	}
	s.featMu.Lock()
	defer s.featMu.Unlock()
	if s.ws == nil {
		return nil
	}
	for _, m := range list(s.ws) {
		if match(m) {
			return m
		}
	}
	return nil
}

// takeOver makes s the owner of what it took from its predecessor on a
// reload: the response cache, and the WebSocket hubs and proxies, whose
// connections the predecessor then leaves open when it drains. Call it
// once s serves, before the predecessor shuts down. It returns the number
// of WebSocket connections kept.
func (s *Server) takeOver() int {
	prev := s.prev
	s.prev = nil
	if prev == nil {
		return 0
	}
	prev.replaced.Store(true)
	if s.cache != nil && s.cache == prev.cache && prev.cacheOwned.Swap(false) {
		s.cacheOwned.Store(true)
		s.log.Info("reload kept the response cache")
	}
	set := s.wsSet()
	kept := func(m *wsMount, conns int) int {
		if !m.take() {
			return 0
		}
		s.log.Info("reload kept websocket connections", "route", m.cfg.Route, "conns", conns)
		return conns
	}
	n := 0
	for _, h := range set.hubs {
		n += kept(&h.wsMount, h.Conns())
	}
	for _, p := range set.proxies {
		n += kept(&p.wsMount, p.Conns())
	}
	return n
}

// closeWS sends close 1001 (going away) with a jittered reconnect hint to
// every WebSocket client of the hubs and proxies this Server owns and waits
// up to two seconds (or the drain timeout, if shorter) for them to close.
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
		if h.owned.Load() {
			wg.Go(func() { h.Shutdown(ctx) })
		}
	}
	for _, p := range set.proxies {
		if p.owned.Load() {
			wg.Go(func() { p.Shutdown(ctx) })
		}
	}
	wg.Wait()
}

func (s *Server) wsHubs() []*wsHub {
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
		// During a reload both Servers LISTEN: the owner delivers.
		if h.notify == notifyChannel && h.owned.Load() {
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
	var allowed []*wsHub
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
