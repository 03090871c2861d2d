package tune

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gather returns metric values by family name and label pairs
// ("key=...,field=..." in label order).
func gather(t *testing.T, g prometheus.Gatherer) map[string]map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		m := map[string]float64{}
		for _, x := range mf.GetMetric() {
			id := ""
			for i, l := range x.GetLabel() {
				if i > 0 {
					id += ","
				}
				id += l.GetName() + "=" + l.GetValue()
			}
			m[id] = value(x)
		}
		out[mf.GetName()] = m
	}
	return out
}

func value(m *dto.Metric) float64 {
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

func TestMetricsCollector(t *testing.T) {
	s := fakeRoot(t, hostLike, map[string]string{"net.netfilter.nf_conntrack_max": "<absent>"})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newSysctlCollector(s, func() Profile { return ProfileLatency }))
	got := gather(t, reg)
	soft, hard, _ := NoFile()
	f := func(family, labels string, want float64) {
		t.Helper()
		v, ok := got["edgeloop_tune_"+family][labels]
		if !ok || v != want {
			t.Errorf("%s{%s} = %v (present %v), want %v", family, labels, v, ok, want)
		}
	}
	f("sysctl_ok", "key=net.core.somaxconn,profile=latency", 0)
	f("sysctl_ok", "key=net.ipv4.tcp_rmem,profile=latency", 1)
	f("sysctl_ok", "key=net.core.busy_poll,profile=latency", 0)
	f("sysctl_value", "field=,key=net.core.somaxconn", 4096)
	f("sysctl_value", "field=max,key=net.ipv4.tcp_rmem", 33554432)
	f("sysctl_value", "field=low,key=net.ipv4.ip_local_port_range", 32768)
	f("sysctl_value", "field=,key=net.ipv4.tcp_tw_reuse", 2)
	f("sysctl_missing", "key=net.netfilter.nf_conntrack_max,profile=latency", 1)
	f("nofile_limit", "limit=soft", float64(soft))
	f("nofile_limit", "limit=hard", float64(hard))
	if _, ok := got["edgeloop_tune_sysctl_value"]["field=,key=net.core.default_qdisc"]; ok {
		t.Error("enum qdisc exported as a number")
	}

	// Values are read on every scrape.
	if err := os.WriteFile(s.path("net.core.somaxconn"), []byte("65535\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got = gather(t, reg)
	f("sysctl_ok", "key=net.core.somaxconn,profile=latency", 1)
	f("sysctl_value", "field=,key=net.core.somaxconn", 65535)
}

func TestMetricsRegistered(t *testing.T) {
	if err := SetMetricsProfile("warp"); !errors.Is(err, ErrUnknownProfile) {
		t.Fatalf("SetMetricsProfile(warp) = %v", err)
	}
	if err := SetMetricsProfile(ProfileThroughput); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { SetMetricsProfile(ProfileBalanced) })
	got := gather(t, prometheus.DefaultGatherer)
	if _, ok := got["edgeloop_tune_sysctl_ok"]["key=net.core.somaxconn,profile=throughput"]; !ok {
		t.Errorf("default registry lacks sysctl_ok for somaxconn: %v", got["edgeloop_tune_sysctl_ok"])
	}
	if _, ok := got["edgeloop_tune_nofile_limit"]["limit=hard"]; !ok {
		t.Error("default registry lacks nofile_limit")
	}
	// A refused option is counted under its name.
	before := got["edgeloop_tune_socket_option_errors_total"]["option=TEST"]
	report([]error{&OptionError{Option: "TEST", Err: errors.New("refused")}})
	got = gather(t, prometheus.DefaultGatherer)
	if after := got["edgeloop_tune_socket_option_errors_total"]["option=TEST"]; after != before+1 {
		t.Errorf("socket_option_errors_total{option=TEST} %v -> %v", before, after)
	}
}

func TestReportLogsOnce(t *testing.T) {
	var buf strings.Builder
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	w := &OptionError{Option: "SO_BUSY_POLL", Err: errors.New("operation not permitted (once-test)")}
	for range 3 {
		report([]error{w})
	}
	if n := strings.Count(buf.String(), "once-test"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, buf.String())
	}
}
