package cache

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// lookupCount reads edgeloop_cache_lookups_total{outcome=o} from the default gatherer.
func lookupCount(t *testing.T, o string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "edgeloop_cache_lookups_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == o {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestCacheStatusValues(t *testing.T) {
	f := func(s Status, want string) {
		t.Helper()
		if got := s.String(); got != want {
			t.Errorf("%+v: %q, want %q", s, got, want)
		}
	}
	f(Status{Hit: true, TTL: 42, HasTTL: true}, "edgeloop; hit; ttl=42")
	f(Status{Fwd: FwdMiss, FwdStatus: 200, Stored: true}, "edgeloop; fwd=miss; fwd-status=200; stored")
	f(Status{Fwd: FwdURIMiss}, "edgeloop; fwd=uri-miss")
	f(Status{Fwd: FwdVaryMiss, Collapsed: true}, "edgeloop; fwd=vary-miss; collapsed")
	f(Status{Fwd: FwdStale, FwdStatus: 304, TTL: 60, HasTTL: true}, "edgeloop; fwd=stale; fwd-status=304; ttl=60")
	f(Status{Fwd: FwdRequest}, "edgeloop; fwd=request")
	f(Status{Hit: true, TTL: -3, HasTTL: true, Detail: "stale-if-error"}, "edgeloop; hit; ttl=-3; detail=stale-if-error")
	f(Status{Fwd: FwdMethod, Key: `GET http://a/"x"`}, `edgeloop; fwd=method; key="GET http://a/\"x\""`)
}

func TestMetricsMove(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	hits, misses := lookupCount(t, "hit"), lookupCount(t, "miss")
	req := mkReq("GET", "http://example.com/m")
	fetchStore(t, c, clk, req, mkResp(200, "x", "Cache-Control", "max-age=60"))
	serve(t, c, req)
	if lookupCount(t, "hit") != hits+1 || lookupCount(t, "miss") != misses+1 {
		t.Fatal("lookup counters did not move")
	}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
	}
	for _, n := range []string{"edgeloop_cache_lookups_total", "edgeloop_cache_entries", "edgeloop_cache_evictions_total", "edgeloop_cache_stores_total"} {
		if !seen[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
	if !strings.HasPrefix(lookups.WithLabelValues("hit").Desc().String(), "Desc{fqName: \"edgeloop_cache_lookups_total\"") {
		t.Error("lookups metric name")
	}
}
