package pool

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Postgres pool metrics (namespace "edgeloop", subsystem "pool", prefix
// pg_), read from pgxpool.Stat at scrape time and summed over open pools.
var (
	pgMu   sync.Mutex // guards pgLive
	pgLive = map[*PG]struct{}{}

	descPGAcquired = prometheus.NewDesc("edgeloop_pool_pg_acquired_connections",
		"Postgres connections currently checked out by queries.", nil, nil)
	descPGIdle = prometheus.NewDesc("edgeloop_pool_pg_idle_connections",
		"Idle Postgres connections in the pool.", nil, nil)
	descPGTotal = prometheus.NewDesc("edgeloop_pool_pg_total_connections",
		"Open Postgres connections (acquired, idle and being opened).", nil, nil)
	descPGMax = prometheus.NewDesc("edgeloop_pool_pg_max_connections",
		"Configured maximum of the Postgres pool.", nil, nil)
	descPGAcquires = prometheus.NewDesc("edgeloop_pool_pg_acquires_total",
		"Successful connection acquires.", nil, nil)
	descPGAcquireSeconds = prometheus.NewDesc("edgeloop_pool_pg_acquire_seconds_total",
		"Total time spent in successful acquires (divide by acquires_total for the mean).", nil, nil)
	descPGCanceled = prometheus.NewDesc("edgeloop_pool_pg_canceled_acquires_total",
		"Acquires that ended by timeout or cancellation before a connection was available.", nil, nil)
	descPGEmpty = prometheus.NewDesc("edgeloop_pool_pg_empty_acquires_total",
		"Successful acquires that had to wait because no idle connection was ready.", nil, nil)
	descPGEmptyWait = prometheus.NewDesc("edgeloop_pool_pg_empty_acquire_wait_seconds_total",
		"Total time those acquires waited for a connection.", nil, nil)
	descPGNew = prometheus.NewDesc("edgeloop_pool_pg_new_connections_total",
		"Postgres connections opened.", nil, nil)
)

type pgCollector struct{}

func (pgCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPGAcquired, descPGIdle, descPGTotal, descPGMax, descPGAcquires,
		descPGAcquireSeconds, descPGCanceled, descPGEmpty, descPGEmptyWait, descPGNew} {
		ch <- d
	}
}

func (pgCollector) Collect(ch chan<- prometheus.Metric) {
	var acquired, idle, total, maxc, acquires, acqSec, canceled, empty, emptyWait, newConns float64
	pgMu.Lock()
	for p := range pgLive {
		st := p.Stat()
		if st == nil {
			continue
		}
		acquired += float64(st.AcquiredConns())
		idle += float64(st.IdleConns())
		total += float64(st.TotalConns())
		maxc += float64(st.MaxConns())
		acquires += float64(st.AcquireCount())
		acqSec += st.AcquireDuration().Seconds()
		canceled += float64(st.CanceledAcquireCount())
		empty += float64(st.EmptyAcquireCount())
		emptyWait += st.EmptyAcquireWaitTime().Seconds()
		newConns += float64(st.NewConnsCount())
	}
	pgMu.Unlock()
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(descPGAcquired, g, acquired)
	ch <- prometheus.MustNewConstMetric(descPGIdle, g, idle)
	ch <- prometheus.MustNewConstMetric(descPGTotal, g, total)
	ch <- prometheus.MustNewConstMetric(descPGMax, g, maxc)
	ch <- prometheus.MustNewConstMetric(descPGAcquires, c, acquires)
	ch <- prometheus.MustNewConstMetric(descPGAcquireSeconds, c, acqSec)
	ch <- prometheus.MustNewConstMetric(descPGCanceled, c, canceled)
	ch <- prometheus.MustNewConstMetric(descPGEmpty, c, empty)
	ch <- prometheus.MustNewConstMetric(descPGEmptyWait, c, emptyWait)
	ch <- prometheus.MustNewConstMetric(descPGNew, c, newConns)
}

func init() { prometheus.MustRegister(pgCollector{}) }

func registerPG(p *PG) {
	pgMu.Lock()
	pgLive[p] = struct{}{}
	pgMu.Unlock()
}

func unregisterPG(p *PG) {
	pgMu.Lock()
	delete(pgLive, p)
	pgMu.Unlock()
}

var (
	metricListening = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "edgeloop", Subsystem: "pool", Name: "pg_listening",
		Help: "1 while the database LISTEN connection is up.",
	})
	metricListenReconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "pool", Name: "pg_listen_reconnects_total",
		Help: "Times the database LISTEN connection was lost or could not be opened.",
	})
)

func init() { prometheus.MustRegister(metricListening, metricListenReconnects) }
