package tune

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkScrape measures one scrape of the tune collector against the real
// /proc/sys (the cost the admin listener pays per /metrics request).
func BenchmarkScrape(b *testing.B) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newSysctlCollector(Sysctl{}, func() Profile { return ProfileBalanced }))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListen measures creating and closing a tuned listener.
func BenchmarkListen(b *testing.B) {
	cfg := SocketConfig{ReusePort: true, Backlog: 1024}
	b.ReportAllocs()
	for b.Loop() {
		ln, err := Listen(context.Background(), "tcp4", "127.0.0.1:0", cfg)
		if err != nil {
			b.Fatal(err)
		}
		ln.Close()
	}
}
