//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func lpmKey(e encodedPrefix) guardLpmKey {
	return guardLpmKey{Prefixlen: e.bits, Addr: guardAddr{B: e.addr}}
}

// Deny adds p to the deny list: packets from it to the guarded ports are
// dropped unless an allow entry covers them. A ttl of zero keeps the entry
// until Undeny; otherwise the XDP program itself deletes the entry at its
// first packet after the ttl (bpf_ktime_get_ns against the stored deadline),
// so expiry needs no sweeper. Denying a listed prefix again replaces its ttl.
func (g *Guard) Deny(p netip.Prefix, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("%w: negative ttl %v", ErrConfig, ttl)
	}
	var expires uint64
	if ttl > 0 {
		expires = g.now() + uint64(ttl.Nanoseconds())
	}
	return g.denyUntil(p, expires)
}

// denyUntil adds p with a deadline in CLOCK_MONOTONIC ns (0: none).
func (g *Guard) denyUntil(p netip.Prefix, expires uint64) error {
	e, err := encodePrefix(p)
	if err != nil {
		return err
	}
	key := lpmKey(e)
	val := guardDenyEntry{ExpiresNs: expires, Key: key}
	err = g.objs.DenyList.Put(key, val)
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.E2BIG) {
		// Full: make room from entries whose ttl ran out but that no
		// packet has met since.
		if n, _ := g.sweepDenied(); n > 0 {
			err = g.objs.DenyList.Put(key, val)
		}
	}
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.E2BIG) {
		return fmt.Errorf("deny %s: %w (%d entries)", p, ErrListFull, g.cfg.MaxPrefixes)
	}
	if err != nil {
		return fmt.Errorf("deny %s: %w", p, err)
	}
	return nil
}

// Undeny removes p (exactly this prefix, not the prefixes it covers).
func (g *Guard) Undeny(p netip.Prefix) error {
	return deletePrefix(g.objs.DenyList, p)
}

// Allow adds p to the allow list, which wins over every other check.
func (g *Guard) Allow(p netip.Prefix) error {
	e, err := encodePrefix(p)
	if err != nil {
		return err
	}
	err = g.objs.AllowList.Put(lpmKey(e), uint8(1))
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.E2BIG) {
		return fmt.Errorf("allow %s: %w (%d entries)", p, ErrListFull, g.cfg.MaxPrefixes)
	}
	if err != nil {
		return fmt.Errorf("allow %s: %w", p, err)
	}
	return nil
}

// Unallow removes p from the allow list.
func (g *Guard) Unallow(p netip.Prefix) error {
	return deletePrefix(g.objs.AllowList, p)
}

func deletePrefix(m *ebpf.Map, p netip.Prefix) error {
	e, err := encodePrefix(p)
	if err != nil {
		return err
	}
	if err := m.Delete(lpmKey(e)); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("%s: %w", p, ErrNotFound)
		}
		return fmt.Errorf("delete %s: %w", p, err)
	}
	return nil
}

// DenyList returns the live deny entries; entries past their ttl that no
// packet has met yet are left out.
func (g *Guard) DenyList() ([]DenyEntry, error) {
	now := g.now()
	wall := time.Now()
	var out []DenyEntry
	var key guardLpmKey
	var val guardDenyEntry
	it := g.objs.DenyList.Iterate()
	for it.Next(&key, &val) {
		if val.ExpiresNs != 0 && val.ExpiresNs <= now {
			continue
		}
		d := DenyEntry{Prefix: decodePrefix(encodedPrefix{bits: key.Prefixlen, addr: key.Addr.B})}
		if val.ExpiresNs != 0 {
			d.Expires = wall.Add(time.Duration(val.ExpiresNs - now))
		}
		out = append(out, d)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read deny list: %w", err)
	}
	return out, nil
}

// AllowList returns the allow list.
func (g *Guard) AllowList() ([]netip.Prefix, error) {
	var out []netip.Prefix
	var key guardLpmKey
	var val uint8
	it := g.objs.AllowList.Iterate()
	for it.Next(&key, &val) {
		out = append(out, decodePrefix(encodedPrefix{bits: key.Prefixlen, addr: key.Addr.B}))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read allow list: %w", err)
	}
	return out, nil
}

// sweepDenied deletes deny entries past their ttl and reports how many.
func (g *Guard) sweepDenied() (int, error) {
	now := g.now()
	var stale []guardLpmKey
	var key guardLpmKey
	var val guardDenyEntry
	it := g.objs.DenyList.Iterate()
	for it.Next(&key, &val) {
		if val.ExpiresNs != 0 && val.ExpiresNs <= now {
			stale = append(stale, key)
		}
	}
	n := 0
	for _, k := range stale {
		if g.objs.DenyList.Delete(k) == nil {
			n++
		}
	}
	return n, it.Err()
}

// Conns is the established connection count of addr kept by sock_ops.
func (g *Guard) Conns(addr netip.Addr) (uint64, error) {
	var n uint64
	err := g.objs.ConnCount.Lookup(guardAddr{B: addr.As16()}, &n)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, nil
	}
	return n, err
}
