package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
)

// errEphemeralPort: a listen address with port 0 gets its port from the
// kernel at listen(), after the guard must be loaded, so the guard cannot
// know which port to guard.
var errEphemeralPort = errors.New("listen port 0 (ephemeral) is not known before listen")

// guardPorts returns the TCP ports of the listen addresses, deduplicated:
// the only traffic the XDP program judges.
func guardPorts(listen []string) ([]uint16, error) {
	var ports []uint16
	for _, addr := range listen {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("listen %q: %w", addr, err)
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			p, lerr := net.LookupPort("tcp", port)
			if lerr != nil {
				return nil, fmt.Errorf("listen %q: bad port", addr)
			}
			n = uint64(p)
		}
		if n == 0 {
			return nil, fmt.Errorf("listen %q: %w", addr, errEphemeralPort)
		}
		if !slices.Contains(ports, uint16(n)) {
			ports = append(ports, uint16(n))
		}
	}
	return ports, nil
}

// ifaceInfo is what interface selection needs to know about one interface.
type ifaceInfo struct {
	name     string
	up       bool
	loopback bool
	addrs    []netip.Addr
}

// systemInterfaces lists the interfaces of the calling thread's network
// namespace with their addresses.
func systemInterfaces() ([]ifaceInfo, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := make([]ifaceInfo, 0, len(ifs))
	for _, ifc := range ifs {
		info := ifaceInfo{
			name:     ifc.Name,
			up:       ifc.Flags&net.FlagUp != 0,
			loopback: ifc.Flags&net.FlagLoopback != 0,
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifc.Name, err)
		}
		for _, a := range addrs {
			if pn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(pn.IP); ok {
					info.addrs = append(info.addrs, ip.Unmap())
				}
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// guardInterfaces picks the interfaces that carry the listen addresses: for
// an unspecified host (":80", "0.0.0.0:80", "[::]:80") every interface that
// is up and has an address, loopback included; for an address, the
// interface holding it (any 127.0.0.0/8 or ::1 address is lo's, since the
// kernel routes the whole block there); a host name is resolved first.
func guardInterfaces(ctx context.Context, listen []string, ifs []ifaceInfo) ([]string, error) {
	var names []string
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, addr := range listen {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("listen %q: %w", addr, err)
		}
		ips, err := listenHostAddrs(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("listen %q: %w", addr, err)
		}
		if ips == nil {
			for _, ifc := range ifs {
				if ifc.up && len(ifc.addrs) > 0 {
					add(ifc.name)
				}
			}
			continue
		}
		for _, ip := range ips {
			name := ifaceOf(ip, ifs)
			if name == "" {
				return nil, fmt.Errorf("listen %q: no interface has address %s", addr, ip)
			}
			add(name)
		}
	}
	if len(names) == 0 {
		return nil, errors.New("no interface carries the listen addresses")
	}
	return names, nil
}

// listenHostAddrs resolves a listen host; nil means unspecified (all).
func listenHostAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if host == "" {
		return nil, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Unmap().IsUnspecified() {
			return nil, nil
		}
		return []netip.Addr{ip.Unmap().WithZone("")}, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	return ips, nil
}

func ifaceOf(ip netip.Addr, ifs []ifaceInfo) string {
	for _, ifc := range ifs {
		if slices.Contains(ifc.addrs, ip) {
			return ifc.name
		}
	}
	if ip.IsLoopback() {
		for _, ifc := range ifs {
			if ifc.loopback {
				return ifc.name
			}
		}
	}
	return ""
}
