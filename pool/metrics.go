package pool

import "github.com/prometheus/client_golang/prometheus"

// Pool metrics, labelled by upstream host:port. Two pools for the same
// upstream (two routes) add into the same series.
var (
	metricOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "edgeloop", Subsystem: "pool", Name: "upstream_open_connections",
		Help: "Open upstream connections, idle or busy.",
	}, []string{"upstream"})
	metricIdle = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "edgeloop", Subsystem: "pool", Name: "upstream_idle_connections",
		Help: "Idle keep-alive upstream connections.",
	}, []string{"upstream"})
	metricDials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "pool", Name: "upstream_dials_total",
		Help: "Upstream connect attempts.",
	}, []string{"upstream"})
	metricDialErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "pool", Name: "upstream_dial_errors_total",
		Help: "Failed upstream connect attempts (refused, unreachable, timed out).",
	}, []string{"upstream"})
)

func init() {
	prometheus.MustRegister(metricOpen, metricIdle, metricDials, metricDialErrors)
}
