//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Guard is the loaded kernel guard: its programs, its pinned maps and the
// links attaching them. Safe for concurrent use.
type Guard struct {
	cfg  Config
	objs guardObjects
	now  func() uint64 // CLOCK_MONOTONIC ns, the clock of bpf_ktime_get_ns; testing

	mu     sync.Mutex           // guards links and closed
	links  map[string]link.Link // by pin file name
	closed bool
}

// Capabilities needed to load and attach: CAP_BPF (or CAP_SYS_ADMIN before
// Linux 5.8) and CAP_NET_ADMIN for XDP and cgroup attachment.
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capBPF      = 39
)

// Supported reports whether this process can run the guard here: nil, or an
// error wrapping ErrNotSupported that says why (privileges, kernel features).
func Supported() error {
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("%w: read capabilities: %v", ErrNotSupported, err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if !has(capNetAdmin) || !(has(capBPF) || has(capSysAdmin)) {
		return fmt.Errorf("%w: needs root (CAP_BPF and CAP_NET_ADMIN)", ErrNotSupported)
	}
	for _, pt := range []ebpf.ProgramType{ebpf.XDP, ebpf.SockOps} {
		if err := features.HaveProgramType(pt); err != nil {
			return fmt.Errorf("%w: kernel lacks %s programs: %v", ErrNotSupported, pt, err)
		}
	}
	for _, mt := range []ebpf.MapType{ebpf.LPMTrie, ebpf.LRUHash, ebpf.PerCPUArray} {
		if err := features.HaveMapType(mt); err != nil {
			return fmt.Errorf("%w: kernel lacks %s maps: %v", ErrNotSupported, mt, err)
		}
	}
	return nil
}

// Load validates cfg, loads the programs with cfg's tunables, reuses the
// maps pinned under cfg.PinPath when they are compatible (recreating them
// when not), and loads cfg's ports and lists. Nothing is attached yet.
func Load(cfg Config) (g *Guard, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := Supported(); err != nil {
		return nil, err
	}
	// A no-op on kernels that account BPF memory to the cgroup (5.11+).
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("%w: remove memlock limit: %v", ErrNotSupported, err)
	}
	if err := ensurePinDir(cfg.PinPath); err != nil {
		return nil, err
	}
	spec, err := guardSpec(cfg)
	if err != nil {
		return nil, err
	}

	g = &Guard{cfg: cfg, now: monotonicNow, links: map[string]link.Link{}}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: cfg.PinPath}}
	err = spec.LoadAndAssign(&g.objs, opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		if err = dropIncompatiblePins(spec, cfg.PinPath); err == nil {
			err = spec.LoadAndAssign(&g.objs, opts)
		}
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load guard: %+v", ve)
		}
		return nil, fmt.Errorf("load guard: %w", err)
	}
	loaded := g // the error returns below set g to nil
	defer func() {
		if err != nil {
			loaded.objs.Close()
		}
	}()

	one := uint8(1)
	for _, p := range cfg.Ports {
		if err := g.objs.GuardedPorts.Put(p, one); err != nil {
			return nil, fmt.Errorf("load ports: %w", err)
		}
	}
	// Entries a former config added and this one dropped go first.
	if err := g.syncConfigLists(cfg); err != nil {
		return nil, err
	}
	for _, p := range cfg.Allow {
		if err := g.Allow(p); err != nil {
			return nil, err
		}
	}
	for _, p := range cfg.Deny {
		if err := g.Deny(p, 0); err != nil {
			return nil, err
		}
	}
	collector.guard.Store(g)
	return g, nil
}

// guardSpec is the embedded collection sized and tuned for cfg.
func guardSpec(cfg Config) (*ebpf.CollectionSpec, error) {
	spec, err := loadGuard()
	if err != nil {
		return nil, err
	}
	var s guardSpecs
	if err := spec.Assign(&s); err != nil {
		return nil, err
	}
	s.Sources.MaxEntries = cfg.MaxSources
	s.ConnCount.MaxEntries = cfg.MaxSources
	s.DenyList.MaxEntries = cfg.MaxPrefixes
	s.AllowList.MaxEntries = cfg.MaxPrefixes
	s.GuardedPorts.MaxEntries = uint32(len(cfg.Ports))

	interval, burst := cfg.synSchedule()
	for _, v := range []struct {
		spec  *ebpf.VariableSpec
		value any
	}{
		{s.SynIntervalNs, interval},
		{s.SynToleranceNs, interval * burst},
		{s.MaxConns, cfg.MaxConnsPerIP},
		{s.PpsLimit, cfg.PPSPerIP},
		{s.PpsWindowNs, uint64(cfg.ppsWindow.Nanoseconds())},
	} {
		if err := v.spec.Set(v.value); err != nil {
			return nil, fmt.Errorf("set %s: %w", v.spec.Name, err)
		}
	}
	return spec, nil
}

// Close detaches the links this Guard attached (removing their pins) and
// closes its objects; links a newer Guard has taken over stay attached.
// The pinned maps survive for the next Load.
func (g *Guard) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	collector.guard.CompareAndSwap(g, nil)
	var errs []error
	for name, l := range g.links {
		errs = append(errs, g.release(l))
		delete(g.links, name)
	}
	errs = append(errs, g.objs.Close())
	return errors.Join(errs...)
}

func monotonicNow() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}
