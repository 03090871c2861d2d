//go:build linux

package bpf

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gather scrapes c and returns each series as "name{label=value,...}" -> value.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range m.GetLabel() {
				key += "," + lp.GetName() + "=" + lp.GetValue()
			}
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out[key] = v
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	requireBPF(t)
	g := loadTestGuard(t, Config{Ports: []uint16{80}, PPSPerIP: 1})
	run(t, g, pkt{src: "192.0.2.1", dport: 80, flags: tcpSYN}.bytes(), xdpPass, Stats{Passed: 1})
	run(t, g, pkt{src: "192.0.2.1", dport: 80, flags: tcpACK}.bytes(), xdpDrop, Stats{DroppedPPS: 1})

	c := newStatsCollector()
	c.guard.Store(g)
	got := gather(t, c)
	want := map[string]float64{
		"edgeloop_bpf_loaded":                                        1,
		"edgeloop_bpf_deny_entries":                                  0,
		"edgeloop_bpf_packets_total,reason=checked,verdict=pass":     1,
		"edgeloop_bpf_packets_total,reason=allowed,verdict=pass":     0,
		"edgeloop_bpf_packets_total,reason=skipped,verdict=pass":     0,
		"edgeloop_bpf_packets_total,reason=parse_error,verdict=pass": 0,
		"edgeloop_bpf_packets_total,reason=deny,verdict=drop":        0,
		"edgeloop_bpf_packets_total,reason=syn_rate,verdict=drop":    0,
		"edgeloop_bpf_packets_total,reason=conn_cap,verdict=drop":    0,
		"edgeloop_bpf_packets_total,reason=pps,verdict=drop":         1,
	}
	if len(got) != len(want) {
		t.Errorf("gathered %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}

	// Load made g the package collector's guard; Close takes it away.
	if collector.guard.Load() != g {
		t.Error("Load did not register the guard with the package collector")
	}
	g.Close()
	if got := gather(t, newStatsCollector()); got["edgeloop_bpf_loaded"] != 0 || len(got) != 1 {
		t.Errorf("unloaded collector gathered %v", got)
	}
	if collector.guard.Load() == g {
		t.Error("Close left the guard in the package collector")
	}
}
