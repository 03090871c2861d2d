package limit

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

const (
	metricsNamespace = "edgeloop"
	metricsSubsystem = "limit"
)

// Label values of connectionsRejected and evictions.
const (
	reasonTotal = "total"  // the server-wide cap (ConnConfig.Max)
	reasonPerIP = "per_ip" // the per-client cap (ConnConfig.MaxPerIP)

	evictIdle   = "idle"   // the victim's bucket was full: forgetting it changes nothing
	evictActive = "active" // the victim still owed tokens: it gets a fresh bucket if it returns
)

// Package-level collectors, registered on prometheus.DefaultRegisterer, which
// the admin listener serves. Several limiters (for example the old and new
// ones during a reload) add into the same series. Labelled children are
// resolved once here so the hot paths do no label lookups.
var (
	requestsRejected = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "requests_rejected_total",
		Help: "Requests rejected by the per-client rate limiter.",
	})
	offendersReported = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "offenders_total",
		Help: "Clients reported as repeat offenders (rejected OffenderThreshold times within OffenderWindow).",
	})
	clientsTracked = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "clients_tracked",
		Help: "Client buckets held by rate limiters (bounded by MaxClients per limiter).",
	})
	evictions = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "evictions_total",
		Help: "Client buckets evicted to make room for new clients, by whether the victim's bucket was full (idle) or still in debt (active).",
	}, []string{"state"})
	connectionsRejected = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "connections_rejected_total",
		Help: "Connections refused by the connection limiter, by the cap they hit.",
	}, []string{"reason"})
	connectionsOpen = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "connections_open",
		Help: "Connections currently counted by connection limiters.",
	})
	connectionsReset = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "connections_reset_total",
		Help: "Refused connections closed with a TCP reset (SO_LINGER 0) rather than a FIN.",
	})

	evictionsIdle          = evictions.WithLabelValues(evictIdle)
	evictionsActive        = evictions.WithLabelValues(evictActive)
	connectionsRejectedAll = connectionsRejected.WithLabelValues(reasonTotal)
	connectionsRejectedIP  = connectionsRejected.WithLabelValues(reasonPerIP)
)
