package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeloop/edgeloop/bpf"
	"github.com/edgeloop/edgeloop/engine/limit"
)

// Guard modes as they are reported (guard.mode auto resolves to one of the
// first three).
const (
	guardNative    = "native"
	guardGeneric   = "generic"
	guardUserspace = "userspace"
	guardOff       = "off"
)

// offenderQueue bounds the escalations waiting for the escalation
// goroutine. A flood that outruns it loses reports, not requests: a client
// still over its rate is reported again in its next window.
const offenderQueue = 1024

// cgroupUsers counts this process's guards that joined a cgroup. A config
// reload sets up the new Server's guard before the old one closes; only the
// last to close leaves the cgroup, so the process (and its listeners, whose
// accepted sockets sock_ops counts) never leaves it during a reload.
var cgroupUsers atomic.Int32

// guardState is a Server's guard: the kernel guard when one is loaded
// (native or generic XDP), else the user-space lists checked at accept time.
// It is built by setupGuard before any listener opens and is read-only
// afterwards except for the fields documented as safe for concurrent use.
type guardState struct {
	mode       string // native, generic, userspace or off
	why        string
	interfaces []GuardInterface
	ports      []uint16
	pinPath    string
	cgroup     string // the cgroup v2 directory joined; empty if none

	kern *bpf.Guard // nil unless native or generic
	user *userGuard // nil unless userspace

	ban      time.Duration
	prefixOf func(netip.Addr) netip.Prefix // the rate limiter's client key
	log      *slog.Logger
	now      func() time.Time // testing

	offenders   chan netip.Addr // to the escalation goroutine; nil when off
	stop        chan struct{}
	done        chan struct{}
	escalations atomic.Uint64
	closeOnce   sync.Once
}

// userGuard enforces the guard's lists and its per-source connection rate
// at accept time when the kernel guard is not loaded. The SYN rate becomes a
// rate of accepted connections: the kernel has finished the handshake by
// then, so a SYN flood still costs the kernel its SYN queue, which is why the
// XDP guard exists. Safe for concurrent use.
type userGuard struct {
	deny, allow prefixSet
	connRate    *limit.RateLimiter // nil when guard.syn_rate is off

	accepted    atomic.Uint64
	refusedDeny atomic.Uint64
	refusedRate atomic.Uint64
}

// refuse reports whether a connection from ip, accepted at now, is to be
// reset: allow wins over everything, then the deny list, then the rate.
func (u *userGuard) refuse(ip netip.Addr, now time.Time) bool {
	if u.allow.contains(ip, now) {
		u.accepted.Add(1)
		return false
	}
	if u.deny.contains(ip, now) {
		u.refusedDeny.Add(1)
		metricGuardRefused.WithLabelValues("deny").Inc()
		return true
	}
	if u.connRate != nil {
		if ok, _ := u.connRate.Allow(ip, now); !ok {
			u.refusedRate.Add(1)
			metricGuardRefused.WithLabelValues("syn_rate").Inc()
			return true
		}
	}
	u.accepted.Add(1)
	return false
}

// guardRefuses is the accept-time check of the user-space guard: true
// means reset the connection before reading from it. It does nothing when
// the kernel guard is loaded (XDP already dropped such packets) or off.
func (s *Server) guardRefuses(ip netip.Addr) bool {
	g := s.guard
	if g == nil || g.user == nil {
		return false
	}
	return g.user.refuse(ip, time.Now())
}

// guardRefusesAddr is guardRefuses for a net.Listener's remote address.
func (s *Server) guardRefusesAddr(a net.Addr) bool {
	if s.guard == nil || s.guard.user == nil {
		return false
	}
	return s.guardRefuses(remoteIP(a))
}

// setupGuard loads and attaches the guard per guard.mode. It runs in Listen
// before any listener opens, because the connection counter (sock_ops on
// edgeloop's cgroup) sees only sockets created after edgeloop joined it.
//
// auto: the kernel guard if this process may load it (native XDP on each
// interface, generic where the driver has none), else user space. native
// and generic fail the start when they cannot attach. userspace: the lists
// and rates at accept time. off: nothing. One log line says which and why.
func (s *Server) setupGuard(ctx context.Context) error {
	if s.guard != nil {
		return nil
	}
	cfg := &s.cfg.Guard
	if cfg.SYNBurst < 0 || cfg.PPSPerIP < 0 || cfg.MaxSources < 0 {
		return fmt.Errorf("guard: syn_burst, pps_per_ip and max_sources must not be negative")
	}
	g := &guardState{
		mode:     cfg.Mode,
		pinPath:  cfg.PinPath,
		ban:      cfg.Escalate.Ban.D(),
		prefixOf: hostPrefix,
		log:      s.log,
		now:      time.Now,
	}
	if s.rate != nil {
		g.prefixOf = s.rate.ClientPrefix
	}
	switch cfg.Mode {
	case guardOff:
		g.why = "guard.mode is off"
	case guardUserspace:
		if err := s.startUserGuard(g, "guard.mode is userspace"); err != nil {
			return err
		}
	default: // auto, native, generic
		err := s.startKernelGuard(ctx, g)
		if err != nil && cfg.Mode != "auto" {
			return fmt.Errorf("guard (mode %s): %w", cfg.Mode, err)
		}
		if err != nil {
			why := strings.TrimPrefix(err.Error(), bpf.ErrNotSupported.Error()+": ")
			if err := s.startUserGuard(g, why); err != nil {
				return err
			}
		}
	}
	if g.mode != guardOff && !cfg.Escalate.Disabled {
		g.offenders = make(chan netip.Addr, offenderQueue)
		g.stop, g.done = make(chan struct{}), make(chan struct{})
		go g.escalateLoop()
	}
	s.guard = g
	metricGuardMode.WithLabelValues(g.mode).Set(1)
	names := make([]string, len(g.interfaces))
	for i, ifc := range g.interfaces {
		names[i] = ifc.Name
	}
	s.log.Info("guard: mode="+g.mode, "mode", g.mode, "interfaces", strings.Join(names, ","), "why", g.why)
	return nil
}

// startKernelGuard joins the cgroup, loads the programs and attaches them;
// on error nothing stays attached and the process is back in its cgroup.
func (s *Server) startKernelGuard(ctx context.Context, g *guardState) (err error) {
	cfg := &s.cfg.Guard
	ports, err := guardPorts(s.cfg.Listen)
	if err != nil {
		return err
	}
	if err := bpf.Supported(); err != nil {
		return err
	}
	ifaces := cfg.Interfaces
	if len(ifaces) == 0 {
		sys, err := systemInterfaces()
		if err != nil {
			return err
		}
		if ifaces, err = guardInterfaces(ctx, s.cfg.Listen, sys); err != nil {
			return err
		}
	}

	var notes []string
	cg, err := bpf.JoinCgroup(cfg.Cgroup)
	if err != nil {
		if cfg.Mode != "auto" {
			return err
		}
		notes = append(notes, "connection cap at accept time only: "+err.Error())
	}
	defer func() {
		if err != nil && cg != "" && cgroupUsers.Load() == 0 {
			if lerr := bpf.LeaveCgroup(cg); lerr != nil {
				s.log.Debug("guard: leave cgroup", "err", lerr)
			}
		}
	}()
	kg, err := loadGuard(bpf.Config{
		Ports:         ports,
		SYNRate:       cfg.SYNRate.PerSecond,
		SYNBurst:      uint32(min(cfg.SYNBurst, math.MaxUint32)),
		MaxConnsPerIP: uint32(min(max(cfg.MaxConnsPerIP, 0), math.MaxUint32)),
		PPSPerIP:      uint32(min(cfg.PPSPerIP, math.MaxUint32)),
		MaxSources:    uint32(min(cfg.MaxSources, math.MaxUint32)),
		Allow:         Prefixes(cfg.Allow),
		Deny:          Prefixes(cfg.Deny),
		PinPath:       cfg.PinPath,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = kg.Close()
		}
	}()
	if cg != "" {
		if err := kg.AttachSockOps(cg); err != nil {
			if cfg.Mode != "auto" {
				return err
			}
			notes = append(notes, "connection cap at accept time only: "+err.Error())
		}
	}

	want := bpf.ModeAuto
	switch cfg.Mode {
	case guardNative:
		want = bpf.ModeNative
	case guardGeneric:
		want = bpf.ModeGeneric
	}
	mode := guardNative
	var generic []string
	for _, name := range ifaces {
		m, err := kg.AttachXDP(name, want)
		if err != nil {
			return err
		}
		g.interfaces = append(g.interfaces, GuardInterface{Name: name, Mode: string(m)})
		if m == bpf.ModeGeneric {
			mode = guardGeneric
			generic = append(generic, name)
		}
	}
	switch {
	case cfg.Mode == guardGeneric:
		notes = append([]string{"guard.mode is generic"}, notes...)
	case len(generic) > 0:
		notes = append([]string{"native XDP not supported by " + strings.Join(generic, ", ")}, notes...)
	default:
		notes = append([]string{"native XDP on every guarded interface"}, notes...)
	}
	g.mode, g.why, g.ports, g.kern, g.cgroup = mode, strings.Join(notes, "; "), ports, kg, cg
	if cg != "" {
		cgroupUsers.Add(1)
	}
	return nil
}

// startUserGuard sets up the accept-time guard: the allow and deny lists,
// the per-source connection rate, and the per-source connection cap
// tightened to guard.max_conns_per_ip.
func (s *Server) startUserGuard(g *guardState, why string) error {
	cfg := &s.cfg.Guard
	u := &userGuard{}
	for _, p := range cfg.Allow {
		u.allow.add(p.Prefix, time.Time{})
	}
	for _, p := range cfg.Deny {
		u.deny.add(p.Prefix, time.Time{})
	}
	if r := cfg.SYNRate.PerSecond; r > 0 {
		burst := cfg.SYNBurst
		if burst == 0 {
			burst = int(max(1, math.Ceil(min(r, 1e6))))
		}
		var err error
		u.connRate, err = limit.NewRateLimiter(limit.RateConfig{
			Rate: r, Burst: burst, MaxClients: cfg.MaxSources, IPv6Prefix: 128,
		})
		if err != nil {
			return fmt.Errorf("guard.syn_rate: %w", err)
		}
	}
	lim := s.cfg.Limits
	if n := cfg.MaxConnsPerIP; n > 0 && (lim.MaxConnectionsPerIP <= 0 || n < lim.MaxConnectionsPerIP) {
		s.conns = limit.NewConnLimiter(limit.ConnConfig{Max: lim.MaxConnections, MaxPerIP: n})
	}
	g.mode, g.why, g.user = guardUserspace, why, u
	g.ports, _ = guardPorts(s.cfg.Listen)
	return nil
}

// hostPrefix is the escalation key without a rate limiter: the address.
func hostPrefix(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	return netip.PrefixFrom(ip, ip.BitLen())
}

// onOffender is the rate limiter's OnOffender: it runs on the request path,
// so it only queues the address; escalateLoop denies it.
func (s *Server) onOffender(ip netip.Addr) {
	g := s.guard
	if g == nil || g.offenders == nil {
		return
	}
	select {
	case g.offenders <- ip:
	default:
		metricGuardEscalations.WithLabelValues("queue_full").Inc()
	}
}

func (g *guardState) escalateLoop() {
	defer close(g.done)
	for {
		select {
		case <-g.stop:
			return
		case ip := <-g.offenders:
			g.escalate(ip)
		}
	}
}

// escalate denies the offender's client prefix for the ban time: in the
// XDP deny map, whose entries the program deletes once expired, or in the
// user-space deny set, which ignores expired entries.
func (g *guardState) escalate(ip netip.Addr) {
	p := g.prefixOf(ip)
	if !p.IsValid() {
		return
	}
	switch {
	case g.kern != nil:
		if err := g.kern.Deny(p, g.ban); err != nil {
			metricGuardEscalations.WithLabelValues("failed").Inc()
			g.log.Warn("guard: escalation failed", "client", ip.String(), "deny", p.String(), "err", err)
			return
		}
	case g.user != nil:
		g.user.deny.add(p, g.now().Add(g.ban))
	default:
		return
	}
	g.escalations.Add(1)
	metricGuardEscalations.WithLabelValues("denied").Inc()
	g.log.Info("guard: escalated", "client", ip.String(), "deny", p.String(), "for", g.ban.String(), "mode", g.mode)
}

// closeGuard stops escalation and detaches the kernel guard (its pinned
// maps stay for the next start). Safe to call more than once.
func (s *Server) closeGuard() {
	g := s.guard
	if g == nil {
		return
	}
	g.closeOnce.Do(func() {
		if g.stop != nil {
			close(g.stop)
			<-g.done
		}
		metricGuardMode.WithLabelValues(g.mode).Set(0)
		if g.kern != nil {
			if err := g.kern.Close(); err != nil {
				s.log.Warn("guard: detach", "err", err)
			}
		}
		if g.user != nil && g.user.connRate != nil {
			g.user.connRate.Close()
		}
		if g.cgroup != "" && cgroupUsers.Add(-1) == 0 {
			// Fails with EBUSY while another edgeloop is in the cgroup.
			if err := bpf.LeaveCgroup(g.cgroup); err != nil && !errors.Is(err, bpf.ErrNotSupported) {
				s.log.Debug("guard: leave cgroup", "err", err)
			}
		}
	})
}

// joinGuardCgroup moves a supervisor into the guard's cgroup before it
// creates sockets, when the kernel guard may run. Failure only costs the
// kernel connection cap (the workers' own guard setup says so), so it is
// logged, not fatal.
func joinGuardCgroup(log *slog.Logger, cfg *Config) {
	switch cfg.Guard.Mode {
	case guardOff, guardUserspace:
		return
	}
	if err := bpf.Supported(); err != nil {
		return
	}
	if _, err := bpf.JoinCgroup(cfg.Guard.Cgroup); err != nil {
		log.Warn("guard: supervisor cannot join its cgroup; the kernel connection cap will not see worker sockets", "err", err)
	}
}

// loadGuard loads the kernel guard. Workers of one supervisor start together
// and share the pinned maps: the one that loses the race to pin a map sees
// "file exists", and on a retry finds the winner's maps and reuses them.
func loadGuard(cfg bpf.Config) (*bpf.Guard, error) {
	var err error
	for attempt := range 5 {
		var g *bpf.Guard
		if g, err = bpf.Load(cfg); err == nil || !errors.Is(err, fs.ErrExist) {
			return g, err
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	return nil, err
}
