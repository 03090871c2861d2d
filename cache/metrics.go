package cache

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics, namespace "edgeloop", subsystem "cache". The hit ratio is
// lookups_total{outcome="hit"} / sum(lookups_total) (stale and
// not_modified are served from cache too).
var (
	lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "lookups_total",
		Help: "Cache lookups by outcome (hit, stale, not_modified, miss, revalidate, pass, gateway_timeout).",
	}, []string{"outcome"})
	coalescedWaits = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "coalesced_waits_total",
		Help: "Requests that waited for another request's fill of the same URL.",
	})
	coalesceTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "coalesce_timeouts_total",
		Help: "Coalesced waits that gave up after CoalesceWait and fetched by themselves.",
	})
	stores = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "stores_total",
		Help: "Responses stored.",
	})
	encodedStores = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "encoded_variants_stored_total",
		Help: "Compressed variants stored by edgeloop (StoreEncoded).",
	})
	refreshes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "refreshes_total",
		Help: "Stored responses refreshed by a 304 from the origin.",
	})
	refusedNotStorable = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "not_storable_total",
		Help: "Responses not stored because RFC 9111 or policy forbids it.",
	})
	tooBig = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "too_big_total",
		Help: "Responses not stored because they exceed MaxObjectSize.",
	})
	fillsAbandoned = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "fills_abandoned_total",
		Help: "Streaming fills abandoned (too big, short body, purge race, aborted).",
	})
	indexFull = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "index_full_total",
		Help: "Responses not stored because the purge index was full.",
	})
	purged = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "purged_total",
		Help: "Stored responses removed, by kind (url, prefix, tag, invalidate).",
	}, []string{"kind"})
	storedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "cache", Name: "stored_bytes_total",
		Help: "Bytes written to the cache (entries and chunks).",
	})

	outcomeCounters [len(outcomeNames)]prometheus.Counter
)

// freecache's own statistics, summed over live caches.
var (
	statsMu sync.Mutex // guards live
	live    = map[*Cache]struct{}{}

	descEntries   = prometheus.NewDesc("edgeloop_cache_entries", "freecache entries (index, entries and chunks).", nil, nil)
	descEvictions = prometheus.NewDesc("edgeloop_cache_evictions_total", "Entries freecache evicted to make room.", nil, nil)
	descExpired   = prometheus.NewDesc("edgeloop_cache_expired_total", "Entries freecache dropped on expiry.", nil, nil)
	descCapacity  = prometheus.NewDesc("edgeloop_cache_capacity_bytes", "Configured freecache memory.", nil, nil)
	descURLs      = prometheus.NewDesc("edgeloop_cache_indexed_urls", "URLs in the purge index.", nil, nil)
)

type statsCollector struct{}

func (statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEntries
	ch <- descEvictions
	ch <- descExpired
	ch <- descCapacity
	ch <- descURLs
}

func (statsCollector) Collect(ch chan<- prometheus.Metric) {
	statsMu.Lock()
	defer statsMu.Unlock()
	var entries, evict, expired, capacity, urls float64
	for c := range live {
		entries += float64(c.fc.EntryCount())
		evict += float64(c.fc.EvacuateCount())
		expired += float64(c.fc.ExpiredCount())
		capacity += float64(c.cfg.Size)
		c.urls.mu.Lock()
		urls += float64(len(c.urls.urls))
		c.urls.mu.Unlock()
	}
	ch <- prometheus.MustNewConstMetric(descEntries, prometheus.GaugeValue, entries)
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, evict)
	ch <- prometheus.MustNewConstMetric(descExpired, prometheus.CounterValue, expired)
	ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, capacity)
	ch <- prometheus.MustNewConstMetric(descURLs, prometheus.GaugeValue, urls)
}

func init() {
	prometheus.MustRegister(lookups, coalescedWaits, coalesceTimeouts, stores, encodedStores, refreshes,
		refusedNotStorable, tooBig, fillsAbandoned, indexFull, purged, storedBytes, statsCollector{})
	for i, n := range outcomeNames {
		outcomeCounters[i] = lookups.WithLabelValues(n)
	}
}

func countOutcome(o Outcome) {
	if int(o) < len(outcomeCounters) {
		outcomeCounters[o].Inc()
	}
}

func countPurge(kind string, n int) { purged.WithLabelValues(kind).Add(float64(n)) }

func register(c *Cache) {
	statsMu.Lock()
	live[c] = struct{}{}
	statsMu.Unlock()
}

func unregister(c *Cache) {
	statsMu.Lock()
	delete(live, c)
	statsMu.Unlock()
}
