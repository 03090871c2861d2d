//go:build linux

package bpf

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestListsFullAndSweep(t *testing.T) {
	requireBPF(t)
	g := loadTestGuard(t, Config{Ports: []uint16{80}, MaxPrefixes: 2})
	a, b, c := netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("198.51.100.0/24")
	if err := g.Deny(a, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.denyUntil(b, g.now()-1); err != nil { // expired, not yet met by a packet
		t.Fatal(err)
	}
	// Full, but b has expired: Deny makes room by sweeping it.
	if err := g.Deny(c, time.Minute); err != nil {
		t.Fatalf("Deny with an expired entry to sweep: %v", err)
	}
	if err := g.Undeny(b); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired entry after sweep: %v, want ErrNotFound", err)
	}
	if err := g.Deny(netip.MustParsePrefix("203.0.113.0/24"), 0); !errors.Is(err, ErrListFull) {
		t.Errorf("Deny on a full list: %v, want ErrListFull", err)
	}
	// Replacing an existing entry needs no room.
	if err := g.Deny(c, 0); err != nil {
		t.Errorf("re-Deny of a listed prefix: %v", err)
	}

	if err := g.Allow(a); err != nil {
		t.Fatal(err)
	}
	if err := g.Allow(b); err != nil {
		t.Fatal(err)
	}
	if err := g.Allow(c); !errors.Is(err, ErrListFull) {
		t.Errorf("Allow on a full list: %v, want ErrListFull", err)
	}
	allow, err := g.AllowList()
	if err != nil || len(allow) != 2 {
		t.Errorf("AllowList = %v, %v", allow, err)
	}
	if err := g.Unallow(c); !errors.Is(err, ErrNotFound) {
		t.Errorf("Unallow of an absent prefix: %v, want ErrNotFound", err)
	}
	if err := g.Deny(netip.Prefix{}, 0); !errors.Is(err, ErrPrefix) {
		t.Errorf("Deny(invalid) = %v, want ErrPrefix", err)
	}
	if err := g.Deny(a, -time.Second); !errors.Is(err, ErrConfig) {
		t.Errorf("Deny with negative ttl = %v, want ErrConfig", err)
	}
}
