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
// The link is pinned under the pin path, so a crashed process leaves its
// guard in place; the next AttachXDP on the same interface detaches that
// pinned link first and attaches afresh. An XDP program attached by other
// means (ip link set xdp) makes the attach fail with EBUSY.
func (g *Guard) AttachXDP(iface string, mode Mode) (Mode, error) {
	if mode == "" {
		mode = ModeAuto
	}
	var tries []Mode
	switch mode {
	case ModeAuto:
		tries = []Mode{ModeNative, ModeGeneric}
	case ModeNative, ModeGeneric:
		tries = []Mode{mode}
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
	name := "link_xdp_" + iface
	if err := g.replacePinned(name); err != nil {
		return "", fmt.Errorf("attach xdp: %w", err)
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
		if err := g.keep(name, l); err != nil {
			return "", fmt.Errorf("attach xdp: %w", err)
		}
		return m, nil
	}
	return "", fmt.Errorf("attach xdp to %s: %w", iface, errors.Join(errs...))
}

// AttachSockOps attaches the connection-counting sock_ops program to the
// cgroup v2 directory path (see JoinCgroup). Only sockets created by
// processes in that cgroup, after they joined, are counted. A link pinned
// by a previous process for the same cgroup is replaced.
func (g *Guard) AttachSockOps(cgroupPath string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	h := fnv.New32a()
	h.Write([]byte(filepath.Clean(cgroupPath)))
	name := fmt.Sprintf("link_sockops_%08x", h.Sum32())
	if err := g.replacePinned(name); err != nil {
		return fmt.Errorf("attach sock_ops: %w", err)
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

// replacePinned detaches the link pinned or held under name: ours from an
// earlier attach, or a crashed process's. Callers hold g.mu.
func (g *Guard) replacePinned(name string) error {
	if l, ok := g.links[name]; ok {
		delete(g.links, name)
		if err := detach(l); err != nil {
			return err
		}
	}
	path := filepath.Join(g.cfg.PinPath, name)
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		// Not a loadable link (a stray file): remove it so the pin is free.
		if rmErr := os.Remove(path); rmErr != nil {
			return fmt.Errorf("stale pin %s: %w", name, err)
		}
		return nil
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
