package bpf

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the counters of the most recently loaded Guard, read at
// scrape time; with no Guard loaded it exports only edgeloop_bpf_loaded 0.
var collector = newStatsCollector()

func init() {
	prometheus.MustRegister(collector)
}

type statsCollector struct {
	guard   atomic.Pointer[Guard]
	loaded  *prometheus.Desc
	packets *prometheus.Desc
	denied  *prometheus.Desc
}

func newStatsCollector() *statsCollector {
	return &statsCollector{
		loaded: prometheus.NewDesc("edgeloop_bpf_loaded",
			"1 when the kernel guard is loaded.", nil, nil),
		packets: prometheus.NewDesc("edgeloop_bpf_packets_total",
			"Packets seen by the XDP guard, by verdict and reason.", []string{"verdict", "reason"}, nil),
		denied: prometheus.NewDesc("edgeloop_bpf_deny_entries",
			"Live entries in the deny list.", nil, nil),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.loaded
	ch <- c.packets
	ch <- c.denied
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.guard.Load()
	if g == nil {
		ch <- prometheus.MustNewConstMetric(c.loaded, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.loaded, prometheus.GaugeValue, 1)
	if s, err := g.Stats(); err == nil {
		for _, p := range []struct {
			verdict, reason string
			n               uint64
		}{
			{"pass", "checked", s.Passed},
			{"pass", "allowed", s.Allowed},
			{"pass", "skipped", s.Skipped},
			{"pass", "parse_error", s.ParseErrors},
			{"drop", "deny", s.DroppedDeny},
			{"drop", "syn_rate", s.DroppedSYNRate},
			{"drop", "conn_cap", s.DroppedConnCap},
			{"drop", "pps", s.DroppedPPS},
		} {
			ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(p.n), p.verdict, p.reason)
		}
	}
	if d, err := g.DenyList(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.denied, prometheus.GaugeValue, float64(len(d)))
	}
}
