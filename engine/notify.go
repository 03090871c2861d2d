package engine

import (
	"context"
	"strings"

	"github.com/edgeloop/edgeloop/pool"
)

// startNotify starts the database's LISTEN connection: the invalidation
// channel (database.notify_channel) and the notify_channel of each pub/sub
// WebSocket route. It reconnects with backoff until closeDatabase.
func (s *Server) startNotify(st *dbState) {
	channels := append([]string{s.cfg.Database.NotifyChannel}, s.wsNotifyChannels()...)
	ctx, stop := context.WithCancel(context.Background())
	st.stop, st.done = stop, make(chan struct{})
	go func() {
		defer close(st.done)
		_ = st.pg.Listen(ctx, pool.ListenConfig{
			Channels: channels,
			OnNotify: func(channel, payload string) { s.onNotify(st, channel, payload) },
			OnListen: func(reconnected bool) { s.onListen(st, reconnected) },
			Log:      s.log,
		})
	}()
}

// onNotify handles one notification. On the invalidation channel the
// payload is one or more tags (separated by commas or spaces): query
// results and cached HTTP responses carrying them are dropped. Other
// channels feed the pub/sub WebSocket routes.
func (s *Server) onNotify(st *dbState, channel, payload string) {
	if channel == s.cfg.Database.NotifyChannel {
		for _, tag := range strings.FieldsFunc(payload, func(r rune) bool { return r == ',' || r == ' ' }) {
			q := 0
			if st.qc != nil {
				q = st.qc.PurgeTag(tag)
			}
			h := s.purgeHTTPTag(tag)
			s.log.Debug("invalidated by NOTIFY", "tag", tag, "query_results", q, "http_responses", h)
		}
	}
	for _, ch := range s.wsNotifyChannels() {
		if ch == channel {
			if _, err := s.wsNotify(channel, payload); err != nil {
				s.log.Warn("NOTIFY for websocket routes", "channel", channel, "err", err)
			}
		}
	}
}

// purgeHTTPTag drops cached HTTP responses whose Surrogate-Key (or
// Cache-Tag) carries tag; the single place NOTIFY reaches the HTTP cache.
func (s *Server) purgeHTTPTag(tag string) int {
	if s.cache == nil {
		return 0
	}
	return s.cache.PurgeTag(tag)
}

// onListen runs after each successful LISTEN. After a lost connection,
// notifications sent meanwhile were missed, so every stored query result
// is dropped rather than served stale until its TTL.
func (s *Server) onListen(st *dbState, reconnected bool) {
	if !reconnected {
		s.log.Info("listening for database notifications", "channel", s.cfg.Database.NotifyChannel)
		return
	}
	n := 0
	if st.qc != nil {
		n = st.qc.PurgeAll()
	}
	s.log.Info("database LISTEN connection restored; dropped query results that may be stale", "dropped", n)
}
