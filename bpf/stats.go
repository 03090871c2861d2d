//go:build linux

package bpf

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Counter indexes of the per-CPU stats array, as enum stat in guard.c.
const (
	statPass = iota
	statAllowed
	statSkipped
	statParseError
	statDropDeny
	statDropSYNRate
	statDropConnCap
	statDropPPS
	statMax
)

// Stats reads the XDP program's per-CPU counters and sums them. The
// counters live in a pinned map, so they carry over a restart.
func (g *Guard) Stats() (Stats, error) {
	var sum [statMax]uint64
	var perCPU []uint64
	for i := range uint32(statMax) {
		if err := g.objs.Stats.Lookup(i, &perCPU); err != nil {
			return Stats{}, fmt.Errorf("read stats: %w", err)
		}
		for _, v := range perCPU {
			sum[i] += v
		}
	}
	return Stats{
		Passed:         sum[statPass],
		Allowed:        sum[statAllowed],
		Skipped:        sum[statSkipped],
		ParseErrors:    sum[statParseError],
		DroppedDeny:    sum[statDropDeny],
		DroppedSYNRate: sum[statDropSYNRate],
		DroppedConnCap: sum[statDropConnCap],
		DroppedPPS:     sum[statDropPPS],
	}, nil
}

// TopSources returns up to n tracked sources, most SYNs or most drops
// first. It walks the whole source map (at most MaxSources entries), so it
// is meant for the admin API, not for a hot path.
func (g *Guard) TopSources(n int, by Rank) ([]Source, error) {
	if n <= 0 {
		return nil, nil
	}
	now := g.now()
	wall := time.Now()
	var all []Source
	var key guardAddr
	var val guardSource
	it := g.objs.Sources.Iterate()
	for it.Next(&key, &val) {
		s := Source{Addr: decodeAddr(key.B), SYNs: val.Syns, Drops: val.Drops}
		if val.LastSeen <= now {
			s.LastSeen = wall.Add(-time.Duration(now - val.LastSeen))
		}
		all = append(all, s)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read sources: %w", err)
	}
	metric := func(s Source) uint64 { return s.SYNs }
	if by == ByDrops {
		metric = func(s Source) uint64 { return s.Drops }
	}
	slices.SortFunc(all, func(a, b Source) int {
		if c := cmp.Compare(metric(b), metric(a)); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
	all = all[:min(n, len(all))]
	for i := range all {
		c, err := g.Conns(all[i].Addr)
		if err != nil {
			return nil, fmt.Errorf("read conns: %w", err)
		}
		all[i].Conns = c
	}
	return all, nil
}
