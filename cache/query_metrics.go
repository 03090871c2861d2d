package cache

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Query-result cache metrics (subsystem "cache", prefix query_). The hit
// ratio is query_lookups_total{outcome="hit"} / sum(query_lookups_total);
// "coalesced" lookups waited for another request's database round trip.
var (
	queryLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "query_lookups_total",
		Help: "Query-result cache lookups by outcome (hit, miss, coalesced).",
	}, []string{"outcome"})
	queryPurged = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "query_purged_total",
		Help: "Stored query results dropped by tag or full purges.",
	})
	queryEvicted = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "query_evicted_total",
		Help: "Stored query results evicted to stay within the memory bound.",
	})
	queryOutcomeCounters [len(queryOutcomeNames)]prometheus.Counter

	queryMu   sync.Mutex // guards queryLive
	queryLive = map[*QueryCache]struct{}{}

	descQueryEntries = prometheus.NewDesc("edgeloop_cache_query_entries", "Stored query results.", nil, nil)
	descQueryBytes   = prometheus.NewDesc("edgeloop_cache_query_bytes", "Memory accounted to stored query results.", nil, nil)
)

type queryCollector struct{}

func (queryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descQueryEntries
	ch <- descQueryBytes
}

func (queryCollector) Collect(ch chan<- prometheus.Metric) {
	var entries, bytes int
	queryMu.Lock()
	for q := range queryLive {
		e, b := q.Len()
		entries += e
		bytes += b
	}
	queryMu.Unlock()
	ch <- prometheus.MustNewConstMetric(descQueryEntries, prometheus.GaugeValue, float64(entries))
	ch <- prometheus.MustNewConstMetric(descQueryBytes, prometheus.GaugeValue, float64(bytes))
}

func init() {
	prometheus.MustRegister(queryLookups, queryPurged, queryEvicted, queryCollector{})
	for i, n := range queryOutcomeNames {
		queryOutcomeCounters[i] = queryLookups.WithLabelValues(n)
	}
}

func countQuery(o QueryOutcome) { queryOutcomeCounters[o].Inc() }
func countQueryPurge(n int)     { queryPurged.Add(float64(n)) }
func countQueryEviction()       { queryEvicted.Inc() }

func registerQuery(q *QueryCache) {
	queryMu.Lock()
	queryLive[q] = struct{}{}
	queryMu.Unlock()
}

func unregisterQuery(q *QueryCache) {
	queryMu.Lock()
	delete(queryLive, q)
	queryMu.Unlock()
}
