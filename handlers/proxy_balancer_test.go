package handlers

import (
	"strings"
	"testing"
	"time"
)

func TestBalancerPassiveHealthSteps(t *testing.T) {
	a, b, c := &backend{name: "a"}, &backend{name: "b"}, &backend{name: "c"}
	bal := &balancer{backends: []*backend{a, b, c}, maxFails: 2, failTimeout: int64(10 * time.Second)}
	sec := func(s int) int64 { return int64(time.Duration(s) * time.Second) }
	seq := func(now int64, n int) string {
		out := ""
		for i := 0; i < n; i++ {
			out += bal.pick(now, nil).name
		}
		return out
	}
	if got := seq(0, 6); got != "abcabc" {
		t.Fatalf("round robin %q", got)
	}
	bal.failed(b, sec(1)) // one failure of two: still up
	if got := seq(sec(1), 3); got != "abc" {
		t.Fatalf("after 1 of 2 failures %q", got)
	}
	bal.failed(b, sec(2)) // down until 12s
	if got := seq(sec(3), 6); strings.Contains(got, "b") || !strings.Contains(got, "a") || !strings.Contains(got, "c") {
		t.Fatalf("b down: %q", got)
	}
	bal.next.Store(0)
	if got := seq(sec(12), 3); got != "abc" {
		t.Fatalf("b back after FailTimeout: %q", got)
	}
	bal.succeeded(b)
	if b.fails.Load() != 0 || b.downUntil.Load() != 0 {
		t.Fatal("success did not reset b")
	}
	// All down: the least recently failed one is tried, not none.
	for i, be := range []*backend{c, a, b} {
		bal.failed(be, sec(20+i))
		bal.failed(be, sec(20+i))
	}
	if got := seq(sec(21), 3); got != "ccc" {
		t.Fatalf("all down: %q, want the least recently failed (c)", got)
	}
	// Retry skips the backend that just failed.
	bal.succeeded(a)
	bal.succeeded(b)
	bal.succeeded(c)
	for i := 0; i < 6; i++ {
		if be := bal.pick(sec(40), a); be == a {
			t.Fatal("pick returned the skipped backend")
		}
	}
	one := &balancer{backends: []*backend{a}, maxFails: 1}
	if one.pick(0, a) != nil {
		t.Fatal("a single backend that was skipped must give nil (no retry)")
	}
}
