package engine

import "github.com/prometheus/client_golang/prometheus"

// Process-level metrics of the supervisor and of reloads and upgrades.
var (
	reloadsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "reloads_total",
		Help: "Config reloads by result: ok, refused (the config did not load) or failed (it did not start).",
	}, []string{"result"})
	upgradesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "upgrades_total",
		Help: "Binary upgrades by result: ok, refused or failed.",
	}, []string{"result"})
	workerStarts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "worker_starts_total",
		Help: "Worker processes started by the supervisor (first starts, reloads and restarts).",
	})
	workerDeaths = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "worker_deaths_total",
		Help: "Worker processes that exited without being asked to (then restarted with backoff).",
	})
)

func init() {
	prometheus.MustRegister(reloadsTotal, upgradesTotal, workerStarts, workerDeaths)
}
