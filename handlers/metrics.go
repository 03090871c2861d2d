package handlers

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of one upstream attempt, the "outcome" label of
// edgeloop_handlers_upstream_requests_total.
const (
	outcomeOK        = "ok"         // response head received
	outcomeDialError = "dial_error" // connect refused, unreachable or timed out
	outcomeTimeout   = "timeout"    // no response head within the route timeout
	outcomeError     = "error"      // write failed, closed early, malformed response
)

var (
	metricUpstreamRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "handlers", Name: "upstream_requests_total",
		Help: "Upstream attempts by route, upstream and outcome.",
	}, []string{"route", "upstream", "outcome"})
	metricUpstreamSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "edgeloop", Subsystem: "handlers", Name: "upstream_response_seconds",
		Help:    "Time from sending the request to receiving the upstream response head.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "upstream"})
)

func init() {
	prometheus.MustRegister(metricUpstreamRequests, metricUpstreamSeconds)
}

// backendMetrics holds a backend's series resolved once, so the request path
// does no label lookup.
type backendMetrics struct {
	ok, dialError, timeout, failed prometheus.Counter
	seconds                        prometheus.Observer
}

func newBackendMetrics(route, upstream string) backendMetrics {
	return backendMetrics{
		ok:        metricUpstreamRequests.WithLabelValues(route, upstream, outcomeOK),
		dialError: metricUpstreamRequests.WithLabelValues(route, upstream, outcomeDialError),
		timeout:   metricUpstreamRequests.WithLabelValues(route, upstream, outcomeTimeout),
		failed:    metricUpstreamRequests.WithLabelValues(route, upstream, outcomeError),
		seconds:   metricUpstreamSeconds.WithLabelValues(route, upstream),
	}
}
