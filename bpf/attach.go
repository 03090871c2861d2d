//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// AttachXDP attaches the XDP program to iface (resolved in the calling
// thread's network namespace) in mode: ModeNative, ModeGeneric, or ModeAuto
// (native, else generic). It returns the mode that attached.
//
// Links are pinned under the pin path by interface name and mode, so a
// crashed process leaves its guard guarding. When such a link exists, from a
// crash or from a Guard that is still open during a reload, AttachXDP swaps
// this Guard's program into it (BPF_LINK_UPDATE: atomic, no unguarded gap)
// in ModeAuto or when the modes match; a link in the other mode is detached
// first, which fails with EBUSY while another open Guard still holds it. An
// XDP program attached by other means (ip link set xdp) also gives EBUSY.
func (g *Guard) AttachXDP(iface string, mode Mode) (Mode, error) {
	if mode == "" {
		mode = ModeAuto
	}
	var tries []Mode
	switch mode {
	case ModeAuto:
		tries = []Mode{ModeNative, ModeGeneric}
	case ModeNative:
		tries = []Mode{ModeNative}
	case ModeGeneric:
		tries = []Mode{ModeGeneric}
	default:
		return "", fmt.Errorf("%w: %q attaches nothing in the kernel", ErrMode, mode)
	}
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return "", fmt.Errorf("attach xdp: %w", err)
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return "", ErrClosed
	}
	for _, m := range tries {
		ok, err := g.adopt(xdpPinName(iface, m), g.objs.XdpGuard)
		if err != nil {
			return "", fmt.Errorf("attach xdp: %w", err)
		}
		if ok {
			return m, nil
		}
	}
	if mode != ModeAuto {
		other := ModeGeneric
		if mode == ModeGeneric {
			other = ModeNative
		}
		if err := g.detachPinned(xdpPinName(iface, other)); err != nil {
			return "", fmt.Errorf("attach xdp: %w", err)
		}
	}

	var errs []error
	for _, m := range tries {
		flags := link.XDPDriverMode
		if m == ModeGeneric {
			flags = link.XDPGenericMode
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: g.objs.XdpGuard, Interface: ifc.Index, Flags: flags})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			continue
		}
		if err := g.keep(xdpPinName(iface, m), l); err != nil {
			return "", fmt.Errorf("attach xdp: %w", err)
		}
		return m, nil
	}
	return "", fmt.Errorf("attach xdp to %s: %w", iface, errors.Join(errs...))
}

func xdpPinName(iface string, m Mode) string {
	return "link_xdp_" + iface + "_" + string(m)
}

// AttachSockOps attaches the connection-counting sock_ops program to the
// cgroup v2 directory cgroupPath (see JoinCgroup). Only sockets created by
// processes in that cgroup, after they joined, are counted. A link pinned
// for the same cgroup by an earlier or crashed process gets this Guard's
// program swapped in.
func (g *Guard) AttachSockOps(cgroupPath string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	h := fnv.New32a()
	h.Write([]byte(filepath.Clean(cgroupPath)))
	name := fmt.Sprintf("link_sockops_%08x", h.Sum32())
	ok, err := g.adopt(name, g.objs.SockopsConns)
	if err != nil || ok {
		return err
	}
	l, err := link.AttachCgroup(link.CgroupOptions{
		Path:    cgroupPath,
		Attach:  ebpf.AttachCGroupSockOps,
		Program: g.objs.SockopsConns,
	})
	if err != nil {
		return fmt.Errorf("attach sock_ops to %s: %w", cgroupPath, err)
	}
	if err := g.keep(name, l); err != nil {
		return fmt.Errorf("attach sock_ops: %w", err)
	}
	return nil
}

// adopt takes over the link held or pinned under name by swapping prog
// into it, and reports whether there was one. A pinned link that cannot be
// updated is detached so a fresh attach can follow. Callers hold g.mu.
func (g *Guard) adopt(name string, prog *ebpf.Program) (bool, error) {
	if l, ok := g.links[name]; ok {
		if err := l.Update(prog); err != nil {
			return false, fmt.Errorf("update link: %w", err)
		}
		return true, nil
	}
	path := filepath.Join(g.cfg.PinPath, name)
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		// Not a loadable link (a stray file): free the pin.
		if rmErr := os.Remove(path); rmErr != nil {
			return false, fmt.Errorf("stale pin %s: %w", name, err)
		}
		return false, nil
	}
	if err := l.Update(prog); err != nil {
		return false, detach(l)
	}
	g.links[name] = l
	return true, nil
}

// detachPinned unpins and closes the link pinned under name, if any, which
// detaches it unless another process still holds it. Callers hold g.mu.
func (g *Guard) detachPinned(name string) error {
	if l, ok := g.links[name]; ok {
		delete(g.links, name)
		return detach(l)
	}
	l, err := link.LoadPinnedLink(filepath.Join(g.cfg.PinPath, name), nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pinned link %s: %w", name, err)
	}
	return detach(l)
}

// keep pins l under name and records it for Close. Callers hold g.mu.
func (g *Guard) keep(name string, l link.Link) error {
	if err := l.Pin(filepath.Join(g.cfg.PinPath, name)); err != nil {
		l.Close()
		return fmt.Errorf("pin link: %w", err)
	}
	g.links[name] = l
	return nil
}

// release is Close's part for one link: it detaches the link, unless a
// newer Guard has swapped its program in (a reload), in which case the
// link and its pin now belong to that Guard and only the descriptor goes.
func (g *Guard) release(l link.Link) error {
	info, err := l.Info()
	if err == nil && !g.ownsProgram(info.Program) {
		return l.Close()
	}
	return detach(l)
}

func (g *Guard) ownsProgram(id ebpf.ProgramID) bool {
	for _, p := range []*ebpf.Program{g.objs.XdpGuard, g.objs.SockopsConns} {
		if info, err := p.Info(); err == nil {
			if own, ok := info.ID(); ok && own == id {
				return true
			}
		}
	}
	return false
}

// detach unpins and closes l; with no pin and no descriptor left the
// kernel detaches the program.
func detach(l link.Link) error {
	if err := l.Unpin(); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.Close()
		return fmt.Errorf("unpin link: %w", err)
	}
	return l.Close()
}
