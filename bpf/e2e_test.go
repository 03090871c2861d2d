//go:build linux

package bpf

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/internal/netnstest"
)

const (
	serverAddr  = "10.77.0.1"
	serverPort  = 8080
	dialTimeout = 300 * time.Millisecond // well under the 1 s initial SYN RTO (RFC 6298)
)

// testbed is a client namespace with four source addresses and a server
// namespace running an HTTP server, joined by a veth pair whose server end
// carries the XDP guard in native mode.
type testbed struct {
	cli, srv *NetNS
	srvIf    string
	cgroup   string // the server's cgroup v2, for sock_ops
}

func newTestbed(t *testing.T) *testbed {
	t.Helper()
	requireBPF(t)
	tb := &testbed{cli: NewNetNS(t), srv: NewNetNS(t)}
	sfx := randomSuffix(t)
	cliIf, srvIf := "vc"+sfx, "vs"+sfx
	tb.srvIf = srvIf
	NewVeth(t, tb.cli, cliIf, tb.srv, srvIf)
	for i := 2; i <= 5; i++ {
		tb.cli.IP(t, "addr", "add", fmt.Sprintf("10.77.0.%d/24", i), "dev", cliIf)
	}
	tb.srv.IP(t, "addr", "add", serverAddr+"/24", "dev", srvIf)

	// The server joins its cgroup before listen(): sock_ops counts only
	// sockets whose listener was created inside the cgroup.
	cg, err := JoinCgroup("edgeloop-test-" + sfx)
	if err != nil {
		t.Fatalf("JoinCgroup: %v", err)
	}
	tb.cgroup = cg
	t.Cleanup(func() {
		if err := LeaveCgroup(cg); err != nil {
			t.Errorf("LeaveCgroup: %v", err)
		}
	})

	var ln net.Listener
	err = tb.srv.Do(func() error {
		var lc net.ListenConfig
		lc.SetMultipathTCP(false)
		var err error
		ln, err = lc.Listen(context.Background(), "tcp4", net.JoinHostPort(serverAddr, strconv.Itoa(serverPort)))
		return err
	})
	if err != nil {
		t.Fatalf("listen in server namespace: %v", err)
	}
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(ln)
	}()
	// Registered after LeaveCgroup's cleanup, so it runs before it.
	t.Cleanup(func() {
		hs.Close()
		<-done
	})
	return tb
}

// guard loads a guard for the server port, attaches XDP to the server's
// veth end in native mode and sock_ops to the server's cgroup.
func (tb *testbed) guard(t *testing.T, cfg Config) *Guard {
	t.Helper()
	cfg.Ports = []uint16{serverPort}
	g := loadTestGuard(t, cfg)
	var mode Mode
	err := tb.srv.Do(func() error {
		var err error
		mode, err = g.AttachXDP(tb.srvIf, ModeNative)
		return err
	})
	if err != nil || mode != ModeNative {
		t.Fatalf("AttachXDP native = %q, %v", mode, err)
	}
	if err := g.AttachSockOps(tb.cgroup); err != nil {
		t.Fatalf("AttachSockOps: %v", err)
	}
	return g
}

// dial connects from src (10.77.0.x) in the client namespace.
func (tb *testbed) dial(src string) (net.Conn, error) {
	return tb.cli.DialFrom(src, net.JoinHostPort(serverAddr, strconv.Itoa(serverPort)), dialTimeout)
}

// served dials from src and makes one HTTP request; the connection is
// closed afterwards.
func (tb *testbed) served(src string) error {
	c, err := tb.dial(src)
	if err != nil {
		return err
	}
	defer c.Close()
	return get(c)
}

func get(c net.Conn) error {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: edgeloop\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(body) != "ok" {
		return fmt.Errorf("got %d %q", resp.StatusCode, body)
	}
	return nil
}

// wantDropped checks that a dial from src times out: a dropped SYN is
// never answered, so the client sees a timeout, not a refusal.
func (tb *testbed) wantDropped(t *testing.T, src string) {
	t.Helper()
	c, err := tb.dial(src)
	netnstest.WantDropped(t, src, c, err)
}

// waitConns polls the sock_ops count of src until it is want (bounded).
func waitConns(t *testing.T, g *Guard, src string, want uint64) {
	t.Helper()
	addr := netip.MustParseAddr(src)
	var n uint64
	for range 200 {
		var err error
		if n, err = g.Conns(addr); err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("conns of %s = %d, want %d", src, n, want)
}

func TestE2E(t *testing.T) {
	tb := newTestbed(t)

	t.Run("syn rate", func(t *testing.T) {
		// One SYN per 10 s after a burst of 3: no refill during the test.
		g := tb.guard(t, Config{SYNRate: 0.1, SYNBurst: 3})
		for i := range 3 {
			if err := tb.served("10.77.0.3"); err != nil {
				t.Fatalf("request %d from 10.77.0.3: %v", i+1, err)
			}
		}
		tb.wantDropped(t, "10.77.0.3")
		if err := tb.served("10.77.0.4"); err != nil {
			t.Fatalf("another source: %v", err)
		}
		s, err := g.Stats()
		if err != nil || s.DroppedSYNRate == 0 || s.Passed == 0 {
			t.Errorf("Stats = %+v, %v; want SYN rate drops and passes", s, err)
		}
		top, err := g.TopSources(1, ByDrops)
		if err != nil || len(top) != 1 || top[0].Addr != netip.MustParseAddr("10.77.0.3") {
			t.Errorf("TopSources(ByDrops) = %+v, %v", top, err)
		}
	})

	t.Run("conn cap", func(t *testing.T) {
		g := tb.guard(t, Config{MaxConnsPerIP: 3})
		var conns []net.Conn
		t.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		for i := range 3 {
			c, err := tb.dial("10.77.0.2")
			if err != nil {
				t.Fatalf("connection %d: %v", i+1, err)
			}
			conns = append(conns, c)
		}
		waitConns(t, g, "10.77.0.2", 3)
		tb.wantDropped(t, "10.77.0.2")
		if err := tb.served("10.77.0.5"); err != nil {
			t.Fatalf("another source at the cap: %v", err)
		}

		// One closes (the server closes on EOF, its socket reaches
		// TCP_CLOSE and sock_ops counts it down): the next is admitted.
		conns[0].Close()
		conns = conns[1:]
		waitConns(t, g, "10.77.0.2", 2)
		c, err := tb.dial("10.77.0.2")
		if err != nil {
			t.Fatalf("dial after a close: %v", err)
		}
		conns = append(conns, c)
		if err := get(c); err != nil {
			t.Fatalf("request after a close: %v", err)
		}
		if s, err := g.Stats(); err != nil || s.DroppedConnCap == 0 {
			t.Errorf("Stats = %+v, %v; want conn cap drops", s, err)
		}
	})

	t.Run("deny", func(t *testing.T) {
		g := tb.guard(t, Config{Deny: []netip.Prefix{netip.MustParsePrefix("10.77.0.5/32")}})
		tb.wantDropped(t, "10.77.0.5")
		if err := tb.served("10.77.0.2"); err != nil {
			t.Fatalf("source not denied: %v", err)
		}

		// A 2 s deny expires by itself.
		p := netip.MustParsePrefix("10.77.0.4/32")
		if err := g.Deny(p, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		tb.wantDropped(t, "10.77.0.4")
		var err error
		for time.Since(start) < 5*time.Second {
			if err = tb.served("10.77.0.4"); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("deny with a 2 s ttl still holds after %v: %v", time.Since(start), err)
		}
		if err := g.Undeny(p); !errors.Is(err, ErrNotFound) {
			t.Errorf("Undeny after expiry: %v, want ErrNotFound (the program deleted it)", err)
		}
		if s, err := g.Stats(); err != nil || s.DroppedDeny < 2 {
			t.Errorf("Stats = %+v, %v; want deny drops", s, err)
		}
	})
}

// TestLoopbackGeneric: on lo, generic XDP sees both directions of every
// connection. The guard judges by destination port, so the server's own
// replies (from the guarded port, to an ephemeral one) pass even when the
// server's address is denied as a source.
func TestLoopbackGeneric(t *testing.T) {
	requireBPF(t)
	ns := NewNetNS(t)
	g := loadTestGuard(t, Config{
		Ports: []uint16{serverPort},
		Deny:  []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("127.0.0.2/32")},
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(serverPort))
	var ln net.Listener
	err := ns.Do(func() error {
		mode, err := g.AttachXDP("lo", ModeAuto)
		if err != nil {
			return err
		}
		if mode != ModeGeneric {
			return fmt.Errorf("lo attached in %q, want generic", mode)
		}
		var lc net.ListenConfig
		lc.SetMultipathTCP(false)
		ln, err = lc.Listen(context.Background(), "tcp4", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); <-done })

	dial := func(src string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() error {
			d := net.Dialer{Timeout: dialTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			var err error
			c, err = d.Dial("tcp4", addr)
			return err
		})
		return c, err
	}
	c, err := dial("127.0.0.3")
	if err != nil {
		t.Fatalf("dial from 127.0.0.3: %v", err)
	}
	err = get(c)
	c.Close()
	if err != nil {
		t.Fatalf("request from 127.0.0.3 (replies come from the denied 127.0.0.1): %v", err)
	}
	if c, err := dial("127.0.0.2"); err == nil {
		c.Close()
		t.Fatal("denied 127.0.0.2 connected")
	}
	s, err := g.Stats()
	if err != nil || s.DroppedDeny == 0 || s.Skipped == 0 {
		t.Errorf("Stats = %+v, %v; want deny drops and skipped replies", s, err)
	}
}
