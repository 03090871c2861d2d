//go:build stagetime

package stagetime

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Enabled reports whether this build times stages (-tags stagetime).
const Enabled = true

const (
	bucketNs = 5000 // 5 µs buckets
	buckets  = 4000 // up to 20 ms; slower goes in the last
)

// Hist counts durations in 5 µs buckets. Safe for concurrent use.
type Hist struct {
	name string
	b    [buckets]atomic.Int64
}

var (
	mu    sync.Mutex
	hists []*Hist
)

// New returns the histogram printed under name.
func New(name string) *Hist {
	h := &Hist{name: name}
	mu.Lock()
	hists = append(hists, h)
	mu.Unlock()
	return h
}

// Rec records a duration in nanoseconds.
func (h *Hist) Rec(ns int64) {
	i := ns / bucketNs
	if i < 0 {
		i = 0
	} else if i >= buckets {
		i = buckets - 1
	}
	h.b[i].Add(1)
}

// Now is the wall clock in nanoseconds, the clock the kernel's receive
// timestamps use.
func Now() int64 { return time.Now().UnixNano() }

// Snapshot returns the percentiles (in µs, the upper edge of the bucket)
// and the count recorded since the last snapshot, and starts afresh.
func (h *Hist) Snapshot(qs ...float64) (pct []float64, n int64) {
	var c [buckets]int64
	for i := range c {
		c[i] = h.b[i].Swap(0)
		n += c[i]
	}
	pct = make([]float64, len(qs))
	for j, q := range qs {
		want, acc := int64(q*float64(n)), int64(0)
		for i := range c {
			if acc += c[i]; acc > want {
				pct[j] = float64((i+1)*bucketNs) / 1000
				break
			}
		}
	}
	return pct, n
}

func init() {
	every := 5 * time.Second
	if d, err := time.ParseDuration(os.Getenv("EDGELOOP_STAGETIME_EVERY")); err == nil && d > 0 {
		every = d
	}
	go func() {
		qs := []float64{0.5, 0.9, 0.97, 0.99, 0.999}
		for {
			time.Sleep(every)
			mu.Lock()
			hs := append([]*Hist(nil), hists...)
			mu.Unlock()
			sort.Slice(hs, func(i, j int) bool { return hs[i].name < hs[j].name })
			out := fmt.Sprintf("stagetime %s (µs: p50 p90 p97 p99 p99.9)\n", time.Now().UTC().Format("15:04:05"))
			for _, h := range hs {
				p, n := h.Snapshot(qs...)
				if n > 0 {
					out += fmt.Sprintf("  %-28s n=%-8d %6.0f %6.0f %6.0f %6.0f %6.0f\n", h.name, n, p[0], p[1], p[2], p[3], p[4])
				}
			}
			_, _ = os.Stderr.WriteString(out)
		}
	}()
}
