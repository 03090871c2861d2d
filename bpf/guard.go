// Package bpf is edgeloop's kernel guard: an XDP program that drops abusive
// TCP traffic to the guarded ports (deny list, per-source SYN rate, per-source
// connection cap, per-source packet rate) before the kernel spends anything on
// it, and a sock_ops program that counts established connections per remote
// address for the cap. The programs are C (guard.c) built with bpf2go; this
// package loads them, pins their maps so a restart keeps state, attaches them,
// and exposes their lists and counters.
//
// Every method of [Guard] is safe for concurrent use.
package bpf

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Errors returned by this package.
var (
	// ErrNotSupported: the kernel, the privileges or the platform cannot run
	// the guard. The engine falls back to its user-space limiter.
	ErrNotSupported = errors.New("bpf: kernel guard not supported")
	ErrConfig       = errors.New("bpf: invalid config")
	ErrMode         = errors.New("bpf: invalid attach mode")
	ErrPrefix       = errors.New("bpf: invalid prefix")
	ErrNotFound     = errors.New("bpf: no such entry")
	ErrListFull     = errors.New("bpf: list full")
	ErrClosed       = errors.New("bpf: guard closed")
	ErrNoCgroup2    = errors.New("bpf: no cgroup v2 mount")
)

// Defaults for the zero values of [Config].
const (
	defaultMaxSources  = 65536
	defaultMaxPrefixes = 16384
	defaultPinPath     = "/sys/fs/bpf/edgeloop"
	defaultPPSWindow   = time.Second

	maxPorts       = 1024
	maxMapEntries  = 1 << 24
	maxSYNBurst    = 1_000_000
	maxSYNRate     = 1e9 // one SYN per nanosecond is the finest schedule
	minSYNRate     = 1e-6
	toleranceLimit = 1 << 62
)

// Mode is how the XDP program is attached.
type Mode string

// Attach modes. ModeUserspace and ModeOff attach nothing in the kernel: they
// are the engine's choices not to load the guard at all.
const (
	ModeAuto      Mode = "auto"    // native, else generic
	ModeNative    Mode = "native"  // in the driver (XDP_FLAGS_DRV_MODE)
	ModeGeneric   Mode = "generic" // after skb allocation (XDP_FLAGS_SKB_MODE); works on any device, lo included
	ModeUserspace Mode = "userspace"
	ModeOff       Mode = "off"
)

// ParseMode parses a mode name; the empty string is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeAuto, nil
	case ModeAuto, ModeNative, ModeGeneric, ModeUserspace, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("%w: %q (want auto, native, generic, userspace or off)", ErrMode, s)
}

// Config configures [Load]. Its zero value is not usable: Ports is required.
// Every other zero value is a documented default or "off".
type Config struct {
	// Ports are the guarded TCP destination ports. Packets to any other port,
	// and anything that is not TCP, pass untouched. Required; at most 1024.
	Ports []uint16
	// SYNRate is the sustained SYNs per second allowed per source address,
	// and SYNBurst the SYNs it may send at once. If SYNRate is zero SYNs are
	// not rate limited; if SYNBurst is zero, max(1, ceil(SYNRate)) is used.
	SYNRate  float64
	SYNBurst uint32
	// MaxConnsPerIP caps established connections per source address: a SYN
	// from a source at the cap is dropped. The count comes from the sock_ops
	// program, so it needs AttachSockOps on the server's cgroup. Handshakes
	// in flight are not yet counted, so a source opening many connections at
	// once can pass the cap by that many; SYNRate bounds that. Zero is off.
	MaxConnsPerIP uint32
	// PPSPerIP is the packets per second allowed per source address to the
	// guarded ports (a fixed one-second window). Zero is off.
	PPSPerIP uint32
	// MaxSources sizes the per-source LRU maps (state and connection counts),
	// bounding memory whatever the number of sources. If zero, 65536.
	MaxSources uint32
	// MaxPrefixes sizes the deny and allow lists. If zero, 16384.
	MaxPrefixes uint32
	// Allow and Deny are loaded into the lists at Load (Deny without
	// expiry). Allow wins over everything, the deny list included.
	Allow, Deny []netip.Prefix
	// PinPath is the bpffs directory holding the pinned maps and links. If
	// empty, /sys/fs/bpf/edgeloop. Load mounts a bpffs if none is there.
	PinPath string

	ppsWindow time.Duration // testing; if zero, one second
}

// withDefaults returns c with zero values replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.MaxSources == 0 {
		c.MaxSources = defaultMaxSources
	}
	if c.MaxPrefixes == 0 {
		c.MaxPrefixes = defaultMaxPrefixes
	}
	if c.PinPath == "" {
		c.PinPath = defaultPinPath
	}
	if c.SYNRate > 0 && c.SYNBurst == 0 {
		c.SYNBurst = uint32(max(1, math.Ceil(min(c.SYNRate, maxSYNBurst))))
	}
	if c.ppsWindow == 0 {
		c.ppsWindow = defaultPPSWindow
	}
	return c
}

// validate checks a config that has been through withDefaults.
func (c Config) validate() error {
	if len(c.Ports) == 0 {
		return fmt.Errorf("%w: no guarded ports", ErrConfig)
	}
	if len(c.Ports) > maxPorts {
		return fmt.Errorf("%w: %d guarded ports, at most %d", ErrConfig, len(c.Ports), maxPorts)
	}
	for _, p := range c.Ports {
		if p == 0 {
			return fmt.Errorf("%w: port 0", ErrConfig)
		}
	}
	if math.IsNaN(c.SYNRate) || c.SYNRate < 0 || c.SYNRate > maxSYNRate ||
		(c.SYNRate > 0 && c.SYNRate < minSYNRate) {
		return fmt.Errorf("%w: syn rate %v outside [%g, %g] per second", ErrConfig, c.SYNRate, minSYNRate, maxSYNRate)
	}
	if c.SYNBurst > maxSYNBurst {
		return fmt.Errorf("%w: syn burst %d above %d", ErrConfig, c.SYNBurst, maxSYNBurst)
	}
	if interval, burst := c.synSchedule(); float64(interval)*float64(burst) > toleranceLimit {
		return fmt.Errorf("%w: syn burst %d at rate %v spans too long", ErrConfig, c.SYNBurst, c.SYNRate)
	}
	if c.MaxSources > maxMapEntries || c.MaxPrefixes > maxMapEntries {
		return fmt.Errorf("%w: map size above %d entries", ErrConfig, maxMapEntries)
	}
	for _, p := range append(append([]netip.Prefix(nil), c.Allow...), c.Deny...) {
		if _, err := encodePrefix(p); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if c.ppsWindow < 0 {
		return fmt.Errorf("%w: negative pps window", ErrConfig)
	}
	return nil
}

// synSchedule is the GCRA emission interval in nanoseconds and the burst.
func (c Config) synSchedule() (interval uint64, burst uint64) {
	if c.SYNRate <= 0 {
		return 0, 0
	}
	return uint64(max(1, math.Round(1e9/c.SYNRate))), uint64(c.SYNBurst)
}

// Stats are the XDP program's counters, summed over CPUs. Packets to ports
// that are not guarded, and non-TCP packets, count as Skipped.
type Stats struct {
	Passed      uint64 // to a guarded port, passed the checks
	Allowed     uint64 // to a guarded port from an allowed prefix
	Skipped     uint64 // not TCP to a guarded port: untouched
	ParseErrors uint64 // truncated or malformed headers: passed untouched

	DroppedDeny    uint64
	DroppedSYNRate uint64
	DroppedConnCap uint64
	DroppedPPS     uint64
}

// Dropped is the sum of drops over all reasons.
func (s Stats) Dropped() uint64 {
	return s.DroppedDeny + s.DroppedSYNRate + s.DroppedConnCap + s.DroppedPPS
}

// Source is one source address as the XDP program sees it.
type Source struct {
	Addr     netip.Addr
	SYNs     uint64    // SYNs to guarded ports
	Drops    uint64    // packets dropped, all reasons
	Conns    uint64    // established connections counted by sock_ops
	LastSeen time.Time // last packet to a guarded port
}

// Rank orders [Guard.TopSources].
type Rank int

// Ranks for [Guard.TopSources].
const (
	BySYNs Rank = iota
	ByDrops
)

// DenyEntry is one deny list entry.
type DenyEntry struct {
	Prefix  netip.Prefix
	Expires time.Time // zero: until removed
}

// encodedPrefix is the 16-byte key form shared with guard.c: IPv4 prefixes
// as IPv4-mapped IPv6 (RFC 4291 section 2.5.5.2) with 96 more prefix bits.
type encodedPrefix struct {
	bits uint32
	addr [16]byte
}

func encodePrefix(p netip.Prefix) (encodedPrefix, error) {
	if !p.IsValid() {
		return encodedPrefix{}, fmt.Errorf("%w: %q", ErrPrefix, p.String())
	}
	p = p.Masked()
	bits := uint32(p.Bits())
	if p.Addr().Is4() {
		bits += 96
	}
	return encodedPrefix{bits: bits, addr: p.Addr().As16()}, nil
}

func decodePrefix(e encodedPrefix) netip.Prefix {
	a := netip.AddrFrom16(e.addr)
	if a.Is4In6() && e.bits >= 96 {
		return netip.PrefixFrom(a.Unmap(), int(e.bits-96))
	}
	return netip.PrefixFrom(a, int(e.bits))
}

// decodeAddr turns a map key back into an address, unmapping IPv4.
func decodeAddr(b [16]byte) netip.Addr {
	return netip.AddrFrom16(b).Unmap()
}
