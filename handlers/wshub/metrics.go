package wshub

import "github.com/prometheus/client_golang/prometheus"

// Reasons a connection ended: the "reason" label of
// edgeloop_ws_disconnects_total.
const (
	reasonClient       = "client_close"  // the client sent a close frame
	reasonIdle         = "idle_timeout"  // nothing arrived within IdleTimeout
	reasonTooBig       = "too_big"       // a message over MaxMessage (1009)
	reasonProtocol     = "protocol"      // an invalid frame (1002)
	reasonSlowConsumer = "slow_consumer" // send queue full, policy disconnect
	reasonWriteError   = "write_error"   // a write failed or timed out
	reasonNetwork      = "network"       // the connection broke without a close frame
	reasonShutdown     = "shutdown"      // edgeloop is stopping (1001)
	reasonUpstream     = "upstream"      // proxy: the upstream side ended
)

// Reasons an upgrade was refused: the "reason" label of
// edgeloop_ws_refused_total.
const (
	refusedCap      = "max_conns"        // 503
	refusedIPCap    = "max_conns_per_ip" // 429
	refusedOrigin   = "origin"           // 403
	refusedBad      = "bad_handshake"    // 400 / 405
	refusedUpstream = "upstream"         // 502
	refusedDraining = "draining"         // 503
)

var (
	metricOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "edgeloop", Subsystem: "ws", Name: "connections_open",
		Help: "Open WebSocket connections by route.",
	}, []string{"route"})
	metricRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "ws", Name: "refused_total",
		Help: "Upgrades refused before any connection state existed, by route and reason.",
	}, []string{"route", "reason"})
	metricIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "ws", Name: "messages_in_total",
		Help: "Messages received from clients (pub/sub) or relayed client to upstream (proxy).",
	}, []string{"route"})
	metricOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "ws", Name: "messages_out_total",
		Help: "Messages written to clients.",
	}, []string{"route"})
	metricPublished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "ws", Name: "published_total",
		Help: "Messages published to a pub/sub route.",
	}, []string{"route"})
	metricDrops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "ws", Name: "slow_consumer_drops_total",
		Help: "Messages dropped because a connection's send queue was full (drop_oldest), or connections closed for it (disconnect), by route and policy.",
	}, []string{"route", "policy"})
	metricDisconnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "ws", Name: "disconnects_total",
		Help: "Closed WebSocket connections by route and reason.",
	}, []string{"route", "reason"})
	metricFanout = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "edgeloop", Subsystem: "ws", Name: "fanout_seconds",
		Help: "Time from a publish to the message written to one subscriber's socket.",
		// Fine around the 1 s a broadcast to every subscriber should take.
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, .75, 1, 1.5, 2.5, 5},
	}, []string{"route"})
)

func init() {
	prometheus.MustRegister(metricOpen, metricRefused, metricIn, metricOut, metricPublished,
		metricDrops, metricDisconnects, metricFanout)
}

// routeMetrics holds one route's series, resolved once.
type routeMetrics struct {
	open               prometheus.Gauge
	in, out, published prometheus.Counter
	drops              prometheus.Counter
	fanout             prometheus.Observer
	route              string
	refusedBy, discoBy map[string]prometheus.Counter
}

func newRouteMetrics(route, policy string) *routeMetrics {
	m := &routeMetrics{
		route:     route,
		open:      metricOpen.WithLabelValues(route),
		in:        metricIn.WithLabelValues(route),
		out:       metricOut.WithLabelValues(route),
		published: metricPublished.WithLabelValues(route),
		drops:     metricDrops.WithLabelValues(route, policy),
		fanout:    metricFanout.WithLabelValues(route),
		refusedBy: map[string]prometheus.Counter{},
		discoBy:   map[string]prometheus.Counter{},
	}
	for _, r := range []string{refusedCap, refusedIPCap, refusedOrigin, refusedBad, refusedUpstream, refusedDraining} {
		m.refusedBy[r] = metricRefused.WithLabelValues(route, r)
	}
	for _, r := range []string{reasonClient, reasonIdle, reasonTooBig, reasonProtocol, reasonSlowConsumer,
		reasonWriteError, reasonNetwork, reasonShutdown, reasonUpstream} {
		m.discoBy[r] = metricDisconnects.WithLabelValues(route, r)
	}
	return m
}

func (m *routeMetrics) refused(reason string)    { m.refusedBy[reason].Inc() }
func (m *routeMetrics) disconnect(reason string) { m.discoBy[reason].Inc() }
