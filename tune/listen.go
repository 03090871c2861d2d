package tune

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Listen creates a TCP listener with cfg's options and returns it as a
// *net.TCPListener (so event loops such as netpoll can take its fd through
// SyscallConn). network is "tcp", "tcp4" or "tcp6"; addr is host:port, an
// empty host meaning all addresses (dual stack for "tcp"). ctx bounds name
// resolution.
//
// Unlike net.Listen it makes the socket itself, so that:
//   - listen(2) gets cfg.Backlog (net.Listen always passes somaxconn);
//   - the protocol is IPPROTO_TCP, never MPTCP (Go's default since 1.24);
//   - every option is set before bind, so SO_REUSEPORT groups form and
//     accepted sockets inherit the options.
//
// Optional options the kernel refuses are logged once and counted in
// edgeloop_tune_socket_option_errors_total; use ListenWithWarnings to get
// them. Safe for concurrent use.
func Listen(ctx context.Context, network, addr string, cfg SocketConfig) (net.Listener, error) {
	ln, warnings, err := ListenWithWarnings(ctx, network, addr, cfg)
	report(warnings)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// ListenWithWarnings is Listen that returns the refused or capped optional
// options (each an *OptionError) instead of logging them.
func ListenWithWarnings(ctx context.Context, network, addr string, cfg SocketConfig) (*net.TCPListener, []error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	family, sa, v6only, err := resolve(ctx, network, addr)
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil && family == unix.AF_INET6 && !v6only && errors.Is(err, unix.EAFNOSUPPORT) {
		// Wildcard "tcp" on a host without IPv6: fall back to IPv4.
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: sa.(*unix.SockaddrInet6).Port}
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: socket: %w", addr, err)
	}
	ln, warnings, err := listenFD(fd, family, sa, v6only, addr, cfg)
	if err != nil {
		unix.Close(fd)
		return nil, warnings, err
	}
	return ln, warnings, nil
}

// listenFD configures, binds and listens on fd and wraps it. It does not
// close fd on error; the file it wraps is a dup, closed here.
func listenFD(fd, family int, sa unix.Sockaddr, v6only bool, addr string, cfg SocketConfig) (*net.TCPListener, []error, error) {
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, b2i(v6only)); err != nil {
			return nil, nil, fmt.Errorf("listen %s: setsockopt IPV6_V6ONLY: %w", addr, err)
		}
	}
	warnings, err := setOptions(fd, cfg)
	if err != nil {
		return nil, warnings, fmt.Errorf("listen %s: %w", addr, err)
	}
	backlog, somaxconn := cfg.Backlog, hostSomaxconn()
	if backlog == 0 {
		backlog = somaxconn
	}
	if backlog > somaxconn {
		warnings = append(warnings, &OptionError{Option: "backlog",
			Err: fmt.Errorf("asked %d, kernel caps at net.core.somaxconn = %d", backlog, somaxconn)})
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, warnings, fmt.Errorf("listen %s: bind: %w", addr, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return nil, warnings, fmt.Errorf("listen %s: %w", addr, err)
	}
	f := os.NewFile(uintptr(fd), "tcp:"+addr)
	ln, err := net.FileListener(f) // dups fd
	f.Close()                      // closes fd, the dup lives on
	if err != nil {
		return nil, warnings, fmt.Errorf("listen %s: %w", addr, err)
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, warnings, fmt.Errorf("listen %s: got %T, not a TCP listener", addr, ln)
	}
	return tl, warnings, nil
}

// hostSomaxconn reads net.core.somaxconn, or returns defaultBacklog.
func hostSomaxconn() int {
	v, err := (Sysctl{}).Read("net.core.somaxconn")
	if err != nil {
		return defaultBacklog
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return defaultBacklog
	}
	return n
}

// resolve turns network and addr into a socket family and address. It
// follows Go's rules: "tcp" with an empty or unspecified IPv6 host is dual
// stack; a name resolves to its first IPv4 address for "tcp" and "tcp4".
func resolve(ctx context.Context, network, addr string) (family int, sa unix.Sockaddr, v6only bool, err error) {
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return 0, nil, false, fmt.Errorf("%w: network %q (want tcp, tcp4 or tcp6)", ErrBadAddress, network)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, nil, false, fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	port, err := net.DefaultResolver.LookupPort(ctx, network, portStr)
	if err != nil {
		return 0, nil, false, fmt.Errorf("%w: port %q: %v", ErrBadAddress, portStr, err)
	}
	var ip netip.Addr
	switch {
	case host == "" && network == "tcp4":
		ip = netip.IPv4Unspecified()
	case host == "":
		ip = netip.IPv6Unspecified()
	default:
		if ip, err = netip.ParseAddr(host); err != nil {
			if ip, err = lookupHost(ctx, network, host); err != nil {
				return 0, nil, false, err
			}
		}
	}
	if ip.Is4In6() && network != "tcp6" {
		ip = ip.Unmap()
	}
	switch {
	case ip.Is4() && network == "tcp6", !ip.Is4() && network == "tcp4":
		return 0, nil, false, fmt.Errorf("%w: %s is not an address of network %s", ErrBadAddress, ip, network)
	case ip.Is4():
		return unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: ip.As4()}, false, nil
	}
	sa6 := &unix.SockaddrInet6{Port: port, Addr: ip.As16()}
	if zone := ip.Zone(); zone != "" {
		ifi, err := net.InterfaceByName(zone)
		if err != nil {
			n, nerr := strconv.Atoi(zone)
			if nerr != nil {
				return 0, nil, false, fmt.Errorf("%w: zone %q: %v", ErrBadAddress, zone, err)
			}
			sa6.ZoneId = uint32(n)
		} else {
			sa6.ZoneId = uint32(ifi.Index)
		}
	}
	dual := network == "tcp" && ip.IsUnspecified()
	return unix.AF_INET6, sa6, !dual, nil
}

func lookupHost(ctx context.Context, network, host string) (netip.Addr, error) {
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	for _, want4 := range []bool{true, false} {
		for _, ip := range ips {
			ip = ip.Unmap()
			if ip.Is4() == want4 && (network == "tcp" || (network == "tcp4") == want4) {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %s has no %s address", ErrBadAddress, host, network)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
