package engine

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/edgeloop/edgeloop/internal/fairpoll"
	"github.com/edgeloop/edgeloop/internal/uring"
	"github.com/prometheus/client_golang/prometheus"
)

// Request duration buckets, 0.5 ms to 5 s: the range an edge node's latency
// lives in, from a cache hit to a slow origin.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

var (
	metricRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "requests_total",
		Help: "Requests served, by route and status code.",
	}, []string{"route", "code"})
	metricDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "request_duration_seconds",
		Help:    "Time from request read to response handed to the transport, by route.",
		Buckets: durationBuckets,
	}, []string{"route"})
	metricBytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "request_body_bytes_total",
		Help: "Request body bytes received (by Content-Length), by route.",
	}, []string{"route"})
	metricBytesOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "response_body_bytes_total",
		Help: "Response body bytes sent (by body or Content-Length), by route.",
	}, []string{"route"})
	metricPanics = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "panics_total",
		Help: "Handler panics recovered (answered 500).",
	})
	metricRateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "rate_limited_total",
		Help: "Requests answered 429 by the per-IP rate limit, by route.",
	}, []string{"route"})
	metricOpenConns = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "edgeloop", Subsystem: "engine", Name: "open_connections",
		Help: "Client connections open now, over all listeners.",
	}, func() float64 { return float64(openConns.Load()) })
	metricBatchedSends = batchSendCounter("sends_total",
		"Writes handed to the kernel through io_uring (tune.io_uring).",
		func(s uring.Stats) uint64 { return s.Sends })
	metricBatchSubmissions = batchSendCounter("submissions_total",
		"io_uring_enter(2) calls that submitted batched writes: sends_total over this is the batch size.",
		func(s uring.Stats) uint64 { return s.Submissions })
	metricBatchWaited = batchSendCounter("waited_total",
		"Batched writes that had to wait for room in their socket.",
		func(s uring.Stats) uint64 { return s.Waited })
	metricBatchTimedOut = batchSendCounter("timed_out_total",
		"Batched writes cancelled after waiting for room longer than the write timeout.",
		func(s uring.Stats) uint64 { return s.TimedOut })
)

func batchSendCounter(name, help string, f func(uring.Stats) uint64) prometheus.CounterFunc {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "io_uring", Name: name, Help: help,
	}, func() float64 { return float64(f(fairpoll.BatchSendStats())) })
}

// openConns counts client connections of every listener of this process.
var openConns atomic.Int64

func init() {
	prometheus.MustRegister(metricRequests, metricDuration, metricBytesIn, metricBytesOut,
		metricPanics, metricRateLimited, metricOpenConns,
		metricBatchedSends, metricBatchSubmissions, metricBatchWaited, metricBatchTimedOut)
}

// routeMetrics caches one route's collectors so the request path does no
// label hashing or allocation. Safe for concurrent use.
type routeMetrics struct {
	name     string
	duration prometheus.Observer
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
	limited  prometheus.Counter

	mu    sync.Mutex // guards creation of codes entries
	codes [600]atomic.Pointer[counterBox]
}

type counterBox struct{ c prometheus.Counter }

func newRouteMetrics(name string) *routeMetrics {
	return &routeMetrics{
		name:     name,
		duration: metricDuration.WithLabelValues(name),
		bytesIn:  metricBytesIn.WithLabelValues(name),
		bytesOut: metricBytesOut.WithLabelValues(name),
		limited:  metricRateLimited.WithLabelValues(name),
	}
}

// requests returns the counter for status code; codes outside 100–599 share "other".
func (m *routeMetrics) requests(code int) prometheus.Counter {
	if code < 100 || code >= 600 {
		return metricRequests.WithLabelValues(m.name, "other")
	}
	if b := m.codes[code].Load(); b != nil {
		return b.c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.codes[code].Load(); b != nil {
		return b.c
	}
	b := &counterBox{c: metricRequests.WithLabelValues(m.name, strconv.Itoa(code))}
	m.codes[code].Store(b)
	return b.c
}
