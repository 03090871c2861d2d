package handlers

import "github.com/prometheus/client_golang/prometheus"

var (
	metricQueryRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeloop", Subsystem: "handlers", Name: "query_requests_total",
		Help: "Query route answers by route and outcome (ok, not_modified, not_found, bad_param, unavailable, timeout, error, streamed).",
	}, []string{"route", "outcome"})
	metricQuerySeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "edgeloop", Subsystem: "handlers", Name: "query_seconds",
		Help:    "Time to answer a query route (to the start of a streamed body).",
		Buckets: []float64{.0002, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route"})
)

func init() { prometheus.MustRegister(metricQueryRequests, metricQuerySeconds) }

// queryMetrics holds a route's series resolved once.
type queryMetrics struct {
	ok, notModified, notFound, badParam, unavailable, timeout, failed, streamed prometheus.Counter
	seconds                                                                     prometheus.Observer
}

func newQueryMetrics(route string) queryMetrics {
	c := func(o string) prometheus.Counter { return metricQueryRequests.WithLabelValues(route, o) }
	return queryMetrics{ok: c("ok"), notModified: c("not_modified"), notFound: c("not_found"),
		badParam: c("bad_param"), unavailable: c("unavailable"), timeout: c("timeout"), failed: c("error"),
		streamed: c("streamed"), seconds: metricQuerySeconds.WithLabelValues(route)}
}
