package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults for the zero value of ListenConfig.
const (
	defaultListenMinBackoff = 100 * time.Millisecond
	defaultListenMaxBackoff = 10 * time.Second
	// listenProbe is how often an idle LISTEN connection is pinged, so a
	// peer that vanished without a FIN is noticed.
	listenProbe = 30 * time.Second
)

// ListenConfig configures PG.Listen.
type ListenConfig struct {
	// Channels are the LISTEN channel names (each quoted as an identifier).
	Channels []string
	// OnNotify is called, on Listen's goroutine, for each notification
	// (PostgreSQL NOTIFY) with its channel and payload.
	OnNotify func(channel, payload string)
	// OnListen is called after each successful LISTEN. reconnected is true
	// after a lost connection: notifications sent meanwhile were missed.
	OnListen func(reconnected bool)
	// MinBackoff and MaxBackoff bound the wait between reconnect attempts,
	// doubling from Min to Max. If zero, 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// Log receives connection loss and recovery. If nil, slog.Default().
	Log *slog.Logger
}

// Listen holds one dedicated connection (outside the pool, as LISTEN is
// session state) that LISTENs on lc.Channels and calls lc.OnNotify for every
// notification, reconnecting with exponential backoff whenever the
// connection is lost. It blocks until ctx is done and then returns nil.
// It needs the pool's URL only, so it works before and after Open.
func (p *PG) Listen(ctx context.Context, lc ListenConfig) error {
	if len(lc.Channels) == 0 || lc.OnNotify == nil {
		return fmt.Errorf("%w: listen needs a channel and a callback", ErrPGConfig)
	}
	for _, ch := range lc.Channels {
		if ch == "" {
			return fmt.Errorf("%w: empty listen channel", ErrPGConfig)
		}
	}
	if lc.MinBackoff <= 0 {
		lc.MinBackoff = defaultListenMinBackoff
	}
	if lc.MaxBackoff <= 0 {
		lc.MaxBackoff = defaultListenMaxBackoff
	}
	log := lc.Log
	if log == nil {
		log = slog.Default()
	}
	backoff, lost := lc.MinBackoff, false
	for ctx.Err() == nil {
		err := p.listenOnce(ctx, &lc, lost)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, errListening) {
			backoff = lc.MinBackoff // it had worked: start the backoff over
		}
		lost = true
		metricListenReconnects.Inc()
		log.Warn("database listen connection lost; reconnecting", "channels", lc.Channels, "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(backoff*2, lc.MaxBackoff)
	}
	return nil
}

// errListening marks a connection that had LISTENed before it failed.
var errListening = errors.New("pool: listen connection lost")

func (p *PG) listenOnce(ctx context.Context, lc *ListenConfig, reconnected bool) error {
	cctx, cancel := context.WithTimeout(ctx, p.cfg.AcquireTimeout)
	conn, err := pgx.ConnectConfig(cctx, p.poolCfg.ConnConfig.Copy())
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	cctx, cancel = context.WithTimeout(ctx, p.cfg.AcquireTimeout)
	var sql string
	for _, ch := range lc.Channels {
		sql += "LISTEN " + pgx.Identifier{ch}.Sanitize() + ";"
	}
	_, err = conn.Exec(cctx, sql)
	cancel()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	metricListening.Set(1)
	defer metricListening.Set(0)
	if lc.OnListen != nil {
		lc.OnListen(reconnected)
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, listenProbe)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			lc.OnNotify(n.Channel, n.Payload)
			continue
		case ctx.Err() != nil:
			return nil
		case !conn.IsClosed() && wctx.Err() != nil:
			// Quiet channel: probe the connection.
			pctx, cancel := context.WithTimeout(ctx, p.cfg.AcquireTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err == nil {
				continue
			}
		}
		return fmt.Errorf("%w: %w", errListening, err)
	}
}
