package engine

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// prefixSet is the user-space counterpart of the kernel guard's LPM deny and
// allow maps: a set of CIDR prefixes, each with an optional expiry, looked
// up by address. Safe for concurrent use; contains takes only a read lock
// and, while the set is empty, no lock at all.
//
// Lookup masks the address once per prefix length in use (at most 33 for
// IPv4 and 129 for IPv6, in practice two or three) and probes a map, so its
// cost does not grow with the number of entries.
type prefixSet struct {
	n atomic.Int32 // entries, for the lock-free empty check

	mu      sync.RWMutex // guards entries, lens4 and lens6
	entries map[netip.Prefix]time.Time
	lens4   [33]int32  // entries per IPv4 prefix length
	lens6   [129]int32 // entries per IPv6 prefix length
}

// prefixEntry is one prefixSet entry; a zero Expires never expires.
type prefixEntry struct {
	Prefix  netip.Prefix
	Expires time.Time
}

// normPrefix masks p and unmaps IPv4-mapped IPv6 (RFC 4291 section
// 2.5.5.2) so that ::ffff:192.0.2.0/120 and 192.0.2.0/24 are one entry.
func normPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// add inserts or replaces p, expiring at expires (zero: never).
func (s *prefixSet) add(p netip.Prefix, expires time.Time) {
	p = normPrefix(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = make(map[netip.Prefix]time.Time)
	}
	if _, ok := s.entries[p]; !ok {
		s.lens(p)[p.Bits()]++
		s.n.Add(1)
	}
	s.entries[p] = expires
}

// remove deletes exactly p and reports whether it was there.
func (s *prefixSet) remove(p netip.Prefix) bool {
	p = normPrefix(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLocked(p)
}

func (s *prefixSet) removeLocked(p netip.Prefix) bool {
	if _, ok := s.entries[p]; !ok {
		return false
	}
	delete(s.entries, p)
	s.lens(p)[p.Bits()]--
	s.n.Add(-1)
	return true
}

func (s *prefixSet) lens(p netip.Prefix) []int32 {
	if p.Addr().Is4() {
		return s.lens4[:]
	}
	return s.lens6[:]
}

// contains reports whether a live entry (not expired at now) covers ip.
func (s *prefixSet) contains(ip netip.Addr, now time.Time) bool {
	if s.n.Load() == 0 || !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	s.mu.RLock()
	defer s.mu.RUnlock()
	lens := s.lens6[:]
	if ip.Is4() {
		lens = s.lens4[:]
	}
	for bits, n := range lens {
		if n == 0 {
			continue
		}
		p, _ := ip.Prefix(bits)
		if exp, ok := s.entries[p]; ok && (exp.IsZero() || now.Before(exp)) {
			return true
		}
	}
	return false
}

// list drops the entries expired at now and returns the rest, sorted.
func (s *prefixSet) list(now time.Time) []prefixEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]prefixEntry, 0, len(s.entries))
	for p, exp := range s.entries {
		if !exp.IsZero() && !now.Before(exp) {
			s.removeLocked(p)
			continue
		}
		out = append(out, prefixEntry{Prefix: p, Expires: exp})
	}
	slices.SortFunc(out, func(a, b prefixEntry) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	return out
}
