package engine

import "github.com/prometheus/client_golang/prometheus"

// The guard's own metrics. The kernel counters (packets by verdict and
// reason, deny entries) are exported by package bpf as edgeloop_bpf_*.
var (
	metricGuardMode = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "guard_mode",
		Help: "1 for the guard mode in effect (native, generic, userspace, off).",
	}, []string{"mode"})
	metricGuardRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "guard_refused_total",
		Help: "Connections reset at accept time by the user-space guard, by reason (deny, syn_rate).",
	}, []string{"reason"})
	metricGuardEscalations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "guard_escalations_total",
		Help: "Rate limit offenders escalated to the guard's deny list, by result (denied, failed, queue_full).",
	}, []string{"result"})
)

func init() {
	prometheus.MustRegister(metricGuardMode, metricGuardRefused, metricGuardEscalations)
}
