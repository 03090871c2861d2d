//go:build !linux

package bpf

import (
	"net/netip"
	"time"
)

// Guard is the kernel guard; off Linux every operation returns ErrNotSupported.
type Guard struct{}

// Supported reports ErrNotSupported: XDP and sock_ops are Linux only.
func Supported() error { return ErrNotSupported }

// Load returns ErrNotSupported.
func Load(Config) (*Guard, error) { return nil, ErrNotSupported }

// JoinCgroup returns ErrNotSupported.
func JoinCgroup(string) (string, error) { return "", ErrNotSupported }

// LeaveCgroup returns ErrNotSupported.
func LeaveCgroup(string) error { return ErrNotSupported }

// Cgroup2Mount returns ErrNotSupported.
func Cgroup2Mount() (string, error) { return "", ErrNotSupported }

// RemovePins returns ErrNotSupported.
func RemovePins(string) error { return ErrNotSupported }

func (g *Guard) AttachXDP(string, Mode) (Mode, error)   { return "", ErrNotSupported }
func (g *Guard) AttachSockOps(string) error             { return ErrNotSupported }
func (g *Guard) Deny(netip.Prefix, time.Duration) error { return ErrNotSupported }
func (g *Guard) Undeny(netip.Prefix) error              { return ErrNotSupported }
func (g *Guard) Allow(netip.Prefix) error               { return ErrNotSupported }
func (g *Guard) Unallow(netip.Prefix) error             { return ErrNotSupported }
func (g *Guard) DenyList() ([]DenyEntry, error)         { return nil, ErrNotSupported }
func (g *Guard) AllowList() ([]netip.Prefix, error)     { return nil, ErrNotSupported }
func (g *Guard) Stats() (Stats, error)                  { return Stats{}, ErrNotSupported }
func (g *Guard) TopSources(int, Rank) ([]Source, error) { return nil, ErrNotSupported }
func (g *Guard) Conns(netip.Addr) (uint64, error)       { return 0, ErrNotSupported }
func (g *Guard) Close() error                           { return nil }
