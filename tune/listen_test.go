package tune

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netAdmin reports whether this process has CAP_NET_ADMIN (bit 12 of
// CapEff), which raising SO_BUSY_POLL needs.
func netAdmin(t *testing.T) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<unix.CAP_NET_ADMIN) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

// busyPollRefused reports whether warnings hold an SO_BUSY_POLL refusal,
// and fails the test unless that refusal is EPERM for lack of
// CAP_NET_ADMIN.
func busyPollRefused(t *testing.T, warnings []error) bool {
	t.Helper()
	for _, w := range warnings {
		var oe *OptionError
		if errors.As(w, &oe) && oe.Option == "SO_BUSY_POLL" {
			if !errors.Is(w, unix.EPERM) || netAdmin(t) {
				t.Fatalf("SO_BUSY_POLL refused with CAP_NET_ADMIN or not for privileges: %v", w)
			}
			return true
		}
	}
	return false
}

// sockopt reads an integer socket option from a listener or connection.
func sockopt(t *testing.T, c syscall.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatalf("getsockopt %d/%d: %v", level, opt, gerr)
	}
	return v
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

func TestListenOptions(t *testing.T) {
	cfg := SocketConfig{
		ReusePort:   true,
		RecvBuffer:  65536,
		SendBuffer:  98304,
		DeferAccept: 3 * time.Second,
		FastOpen:    128,
		BusyPoll:    50 * time.Microsecond,
	}
	ln, warnings, err := ListenWithWarnings(context.Background(), "tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := func(name string, level, opt, want int) {
		t.Helper()
		if got := sockopt(t, ln, level, opt); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	f("SO_PROTOCOL", unix.SOL_SOCKET, unix.SO_PROTOCOL, unix.IPPROTO_TCP)
	f("SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	f("SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	f("SO_RCVBUF", unix.SOL_SOCKET, unix.SO_RCVBUF, 2*65536) // the kernel doubles it
	f("SO_SNDBUF", unix.SOL_SOCKET, unix.SO_SNDBUF, 2*98304)
	f("TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	f("TCP_DEFER_ACCEPT", unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 3) // 3s = 2 SYN-ACK retransmits = 3s
	f("TCP_FASTOPEN", unix.IPPROTO_TCP, unix.TCP_FASTOPEN, 128)
	// Expected warnings: Fast Open without the server bit in the sysctl;
	// busy polling only where the kernel wants CAP_NET_ADMIN to raise it
	// and the process lacks it (6.18 does not ask).
	var wantWarn []string
	if busyPollRefused(t, warnings) {
		wantWarn = append(wantWarn, "SO_BUSY_POLL")
	} else {
		f("SO_BUSY_POLL", unix.SOL_SOCKET, unix.SO_BUSY_POLL, 50)
	}
	tfo, _ := (Sysctl{}).Read("net.ipv4.tcp_fastopen")
	if n, _ := strconv.Atoi(tfo); n&2 == 0 {
		wantWarn = append(wantWarn, "TCP_FASTOPEN")
	}
	var gotWarn []string
	for _, w := range warnings {
		var oe *OptionError
		if !errors.As(w, &oe) {
			t.Fatalf("warning %v is not an *OptionError", w)
		}
		gotWarn = append(gotWarn, oe.Option)
	}
	slices.Sort(gotWarn)
	slices.Sort(wantWarn)
	if !slices.Equal(gotWarn, wantWarn) {
		t.Fatalf("warnings = %v, want options %v (tcp_fastopen = %s)", warnings, wantWarn, tfo)
	}

	// The zero config sets only SO_REUSEADDR and TCP_NODELAY.
	ln0, warnings, err := ListenWithWarnings(context.Background(), "tcp4", "127.0.0.1:0", SocketConfig{})
	if err != nil || len(warnings) != 0 {
		t.Fatalf("zero config: %v %v", err, warnings)
	}
	defer ln0.Close()
	for name, o := range map[string][2]int{
		"SO_REUSEPORT": {unix.SOL_SOCKET, unix.SO_REUSEPORT}, "TCP_DEFER_ACCEPT": {unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT},
		"TCP_FASTOPEN": {unix.IPPROTO_TCP, unix.TCP_FASTOPEN},
	} {
		if got := sockopt(t, ln0, o[0], o[1]); got != 0 {
			t.Errorf("zero config: %s = %d", name, got)
		}
	}
}

// rawAccept accepts one connection on the listener's fd with accept4(2), as
// an event loop that owns the fd would, bypassing Go's Accept (which sets
// TCP_NODELAY itself).
func rawAccept(t *testing.T, ln *net.TCPListener) int {
	t.Helper()
	rc, _ := ln.SyscallConn()
	for range 200 {
		nfd, err := -1, error(nil)
		rc.Control(func(fd uintptr) { nfd, _, err = unix.Accept4(int(fd), unix.SOCK_CLOEXEC) })
		if err == nil {
			t.Cleanup(func() { unix.Close(nfd) })
			return nfd
		}
		if !errors.Is(err, unix.EAGAIN) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no connection to accept within 2s")
	return -1
}

func TestListenInheritedByAccepted(t *testing.T) {
	for _, nagle := range []bool{false, true} {
		t.Run(fmt.Sprint("nagle=", nagle), func(t *testing.T) {
			cfg := SocketConfig{Nagle: nagle, RecvBuffer: 32768, BusyPoll: 20 * time.Microsecond}
			ln, warnings, err := ListenWithWarnings(context.Background(), "tcp", "127.0.0.1:0", cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fd := rawAccept(t, ln)
			get := func(level, opt int) int {
				v, err := unix.GetsockoptInt(fd, level, opt)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			if got := get(unix.IPPROTO_TCP, unix.TCP_NODELAY); got != b2i(!nagle) {
				t.Errorf("accepted TCP_NODELAY = %d, want %d", got, b2i(!nagle))
			}
			if got := get(unix.SOL_SOCKET, unix.SO_RCVBUF); got != 65536 {
				t.Errorf("accepted SO_RCVBUF = %d, want 65536", got)
			}
			if got := get(unix.SOL_SOCKET, unix.SO_BUSY_POLL); !busyPollRefused(t, warnings) && got != 20 {
				t.Errorf("accepted SO_BUSY_POLL = %d, want 20", got)
			}
		})
	}
}

func TestReusePort(t *testing.T) {
	ctx := context.Background()
	cfg := SocketConfig{ReusePort: true}
	ln1, err := Listen(ctx, "tcp4", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln1.Close()
	addr := ln1.Addr().String()
	ln2, err := Listen(ctx, "tcp4", addr, cfg)
	if err != nil {
		t.Fatalf("second SO_REUSEPORT listener: %v", err)
	}
	defer ln2.Close()
	if _, err := Listen(ctx, "tcp4", addr, SocketConfig{}); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("listener without SO_REUSEPORT on a shared port: err = %v, want EADDRINUSE", err)
	}

	var got [2]atomic.Int64
	for i, ln := range []net.Listener{ln1, ln2} {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				got[i].Add(1)
				c.Close()
			}
		}()
	}
	// The kernel hashes the 4-tuple; with distinct source ports both
	// listeners get connections well within 200 dials.
	for i := 0; i < 200 && (got[0].Load() == 0 || got[1].Load() == 0); i++ {
		c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Read(make([]byte, 1)) // wait for the server's close
		c.Close()
	}
	if got[0].Load() == 0 || got[1].Load() == 0 {
		t.Fatalf("accepted %d and %d: one listener got nothing", got[0].Load(), got[1].Load())
	}
}

func TestListenNotMPTCP(t *testing.T) {
	ln, err := Listen(context.Background(), "tcp", ":0", SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if p := sockopt(t, ln.(*net.TCPListener), unix.SOL_SOCKET, unix.SO_PROTOCOL); p != unix.IPPROTO_TCP {
		t.Errorf("Listen: SO_PROTOCOL = %d, want IPPROTO_TCP", p)
	}
	lc := ListenConfig(SocketConfig{ReusePort: true, FastOpen: 16})
	if lc.MultipathTCP() {
		t.Error("ListenConfig leaves MPTCP on")
	}
	ln2, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	tl := ln2.(*net.TCPListener)
	if p := sockopt(t, tl, unix.SOL_SOCKET, unix.SO_PROTOCOL); p != unix.IPPROTO_TCP {
		t.Errorf("ListenConfig: SO_PROTOCOL = %d, want IPPROTO_TCP", p)
	}
	if v := sockopt(t, tl, unix.SOL_SOCKET, unix.SO_REUSEPORT); v != 1 {
		t.Errorf("ListenConfig: SO_REUSEPORT = %d", v)
	}
	if v := sockopt(t, tl, unix.IPPROTO_TCP, unix.TCP_FASTOPEN); v != 16 {
		t.Errorf("ListenConfig: TCP_FASTOPEN = %d", v)
	}
	if _, err := ListenConfig(SocketConfig{Backlog: -1}).Listen(context.Background(), "tcp", "127.0.0.1:0"); !errors.Is(err, ErrBadConfig) {
		t.Errorf("ListenConfig with bad config: %v", err)
	}
}

func TestListenAddresses(t *testing.T) {
	ctx := context.Background()
	dial := func(network, addr string) error {
		c, err := net.DialTimeout(network, addr, 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	// "tcp" on the wildcard is dual stack, as with net.Listen.
	ln, err := Listen(ctx, "tcp", ":0", SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := strconv.Itoa(port(ln))
	if err := dial("tcp4", "127.0.0.1:"+p); err != nil {
		t.Errorf("dual stack, IPv4: %v", err)
	}
	if err := dial("tcp6", "[::1]:"+p); err != nil {
		t.Errorf("dual stack, IPv6: %v", err)
	}
	ln6, err := Listen(ctx, "tcp6", "[::1]:0", SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln6.Close()
	if got := ln6.Addr().(*net.TCPAddr).IP.String(); got != "::1" {
		t.Errorf("tcp6 bound %s", got)
	}
	lnName, err := Listen(ctx, "tcp", "localhost:0", SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer lnName.Close()
	if ip := lnName.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Errorf("localhost bound %s", ip)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	for _, c := range []struct {
		network, addr string
		cfg           SocketConfig
		ctx           context.Context
		want          error
	}{
		{"udp", "127.0.0.1:0", SocketConfig{}, ctx, ErrBadAddress},
		{"tcp", "127.0.0.1", SocketConfig{}, ctx, ErrBadAddress},
		{"tcp", "127.0.0.1:nope", SocketConfig{}, ctx, ErrBadAddress},
		{"tcp", "127.0.0.1:70000", SocketConfig{}, ctx, ErrBadAddress},
		{"tcp4", "[::1]:0", SocketConfig{}, ctx, ErrBadAddress},
		{"tcp6", "127.0.0.1:0", SocketConfig{}, ctx, ErrBadAddress},
		{"tcp", "[fe80::1%nosuchif0]:0", SocketConfig{}, ctx, ErrBadAddress},
		{"tcp", "192.0.2.1:0", SocketConfig{}, ctx, unix.EADDRNOTAVAIL},
		{"tcp", "127.0.0.1:0", SocketConfig{Backlog: -1}, ctx, ErrBadConfig},
		{"tcp", "127.0.0.1:0", SocketConfig{RecvBuffer: -1}, ctx, ErrBadConfig},
		{"tcp", "127.0.0.1:0", SocketConfig{DeferAccept: -time.Second}, ctx, ErrBadConfig},
		{"tcp", "127.0.0.1:0", SocketConfig{}, canceled, context.Canceled},
	} {
		ln, err := Listen(c.ctx, c.network, c.addr, c.cfg)
		if !errors.Is(err, c.want) {
			t.Errorf("Listen(%s, %s, %+v) = %v, want %v", c.network, c.addr, c.cfg, err, c.want)
		}
		if ln != nil {
			ln.Close()
		}
	}
}

func TestListenBacklog(t *testing.T) {
	ctx := context.Background()
	ln, err := Listen(ctx, "tcp4", "127.0.0.1:0", SocketConfig{Backlog: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if cur, max := listenQueue(t, port(ln)); cur != 0 || max != 7 {
		t.Fatalf("accept queue %d/%d, want 0/7", cur, max)
	}
	// Completed but unaccepted connections wait in that queue.
	for range 3 {
		c, err := net.DialTimeout("tcp4", ln.Addr().String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	cur := 0
	for i := 0; i < 100 && cur != 3; i++ {
		cur, _ = listenQueue(t, port(ln))
		time.Sleep(10 * time.Millisecond)
	}
	if cur != 3 {
		t.Errorf("accept queue holds %d, want 3", cur)
	}

	somax := hostSomaxconn()
	lnDef, err := Listen(ctx, "tcp4", "127.0.0.1:0", SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer lnDef.Close()
	if _, max := listenQueue(t, port(lnDef)); max != somax {
		t.Errorf("default backlog %d, want somaxconn %d", max, somax)
	}
	lnBig, warnings, err := ListenWithWarnings(ctx, "tcp4", "127.0.0.1:0", SocketConfig{Backlog: somax + 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lnBig.Close()
	if _, max := listenQueue(t, port(lnBig)); max != somax {
		t.Errorf("backlog above somaxconn: %d, want %d", max, somax)
	}
	var oe *OptionError
	if len(warnings) != 1 || !errors.As(warnings[0], &oe) || oe.Option != "backlog" {
		t.Errorf("warnings = %v, want one about the backlog", warnings)
	}
}

// TestKeepAlive: keepalive is off by default, on with its idle time and
// interval when configured, both for sockets accepted with accept(2)
// (netpoll: inherited from the listener) and through Go's Accept, whose
// own 15 s keepalive ConnKeepAlive replaces.
func TestKeepAlive(t *testing.T) {
	for _, ka := range []time.Duration{0, 45 * time.Second} {
		t.Run(fmt.Sprint("keepalive=", ka), func(t *testing.T) {
			ln, _, err := ListenWithWarnings(context.Background(), "tcp", "127.0.0.1:0", SocketConfig{KeepAlive: ka})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			check := func(how string, fd int) {
				t.Helper()
				on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
				if err != nil {
					t.Fatal(err)
				}
				if on != b2i(ka > 0) {
					t.Errorf("%s: SO_KEEPALIVE = %d, want %d", how, on, b2i(ka > 0))
				}
				if ka > 0 {
					idle, _ := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
					intvl, _ := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
					if idle != 45 || intvl != 45 {
						t.Errorf("%s: TCP_KEEPIDLE %d, TCP_KEEPINTVL %d; want 45, 45", how, idle, intvl)
					}
				}
			}
			for range 2 {
				c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			check("accept(2)", rawAccept(t, ln))
			gc, err := ln.AcceptTCP()
			if err != nil {
				t.Fatal(err)
			}
			defer gc.Close()
			if err := ConnKeepAlive(gc, ka); err != nil {
				t.Fatal(err)
			}
			rc, _ := gc.SyscallConn()
			_ = rc.Control(func(fd uintptr) { check("Go Accept + ConnKeepAlive", int(fd)) })
		})
	}
}
