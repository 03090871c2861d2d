//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/bpf"
	"github.com/edgeloop/edgeloop/engine"
	"github.com/edgeloop/edgeloop/internal/netnstest"
)

const (
	guardSrvAddr = "10.78.0.1"
	guardPort    = "8080"
	guardDial    = 300 * time.Millisecond
)

// guardBed is a server namespace and a client namespace with five source
// addresses (10.78.0.2-6), joined by a veth pair; edgeloop runs in the
// server namespace with its guard on the server's veth end in native mode.
type guardBed struct {
	cli, srv *netnstest.NS
	srvIf    string
	cgroup   string // guard.cgroup, shared by this test's servers
	sfx      string
	n        int // servers started, for their pin paths
}

func newGuardBed(t *testing.T) *guardBed {
	t.Helper()
	requireGuardBPF(t)
	sfx := netnstest.RandSuffix(t)
	tb := &guardBed{cli: netnstest.New(t, "elg-"), srv: netnstest.New(t, "elg-"), srvIf: "vs" + sfx, sfx: sfx,
		cgroup: "edgeloop-test-" + sfx}
	cliIf := "vc" + sfx
	netnstest.Veth(t, tb.cli, cliIf, tb.srv, tb.srvIf)
	for i := 2; i <= 6; i++ {
		tb.cli.IP(t, "addr", "add", fmt.Sprintf("10.78.0.%d/24", i), "dev", cliIf)
	}
	tb.srv.IP(t, "addr", "add", guardSrvAddr+"/24", "dev", tb.srvIf)
	// Registered first, so it runs after every server has stopped.
	t.Cleanup(func() {
		root, err := bpf.Cgroup2Mount()
		if err != nil {
			return
		}
		dir := filepath.Join(root, tb.cgroup)
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove cgroup %s: %v", dir, err)
		}
	})
	return tb
}

// pinPath is a fresh per-test pin directory, removed in t.Cleanup.
func (tb *guardBed) pinPath(t *testing.T) string {
	t.Helper()
	tb.n++
	dir := fmt.Sprintf("/sys/fs/bpf/edgeloop-test-%s-%d", tb.sfx, tb.n)
	t.Cleanup(func() {
		if err := bpf.RemovePins(dir); err != nil {
			t.Errorf("remove pins %s: %v", dir, err)
		}
	})
	return dir
}

// serve starts edgeloop in the server namespace on 10.78.0.1:8080 with the
// admin API on the namespace's loopback; extra is YAML appended to the
// config, guardExtra lines under guard:.
func (tb *guardBed) serve(t *testing.T, pin, extra, guardExtra string) *proc {
	t.Helper()
	cfg := fmt.Sprintf("log: {access: false}\nguard:\n  mode: native\n  pin_path: %s\n  cgroup: %s\n%s%s",
		pin, tb.cgroup, guardExtra, extra)
	file := writeFile(t, "guard.yaml", cfg)
	return startCmd(t, guardCommand(tb.srv, "serve", "--listen", guardSrvAddr+":"+guardPort,
		"--admin", "127.0.0.1:0", "--config", file))
}

func (tb *guardBed) dial(src string) (net.Conn, error) {
	return tb.cli.DialFrom(src, guardSrvAddr+":"+guardPort, guardDial)
}

// served dials from src and gets 200 for GET /.
func (tb *guardBed) served(t *testing.T, src string) {
	t.Helper()
	if err := tb.tryServed(src); err != nil {
		t.Fatalf("request from %s: %v", src, err)
	}
}

func (tb *guardBed) tryServed(src string) error {
	c, err := tb.dial(src)
	if err != nil {
		return err
	}
	defer c.Close()
	code, err := guardGet(c, 2*time.Second)
	if err == nil && code != 200 {
		err = fmt.Errorf("status %d", code)
	}
	return err
}

// dropped checks that a dial from src times out: a dropped SYN is never
// answered, so the client sees a timeout, not a refusal.
func (tb *guardBed) dropped(t *testing.T, src string) {
	t.Helper()
	c, err := tb.dial(src)
	netnstest.WantDropped(t, src, c, err)
}

// status runs `edgeloop guard status --json` inside the server namespace.
func (tb *guardBed) status(t *testing.T, p *proc) engine.GuardStatus {
	t.Helper()
	code, out, errOut := guardCLIIn(t, tb.srv, "guard", "status", "--json", "--admin", p.admin)
	if code != 0 {
		t.Fatalf("guard status: exit %d: %s", code, errOut)
	}
	var st engine.GuardStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("guard status --json: %v\n%s", err, out)
	}
	return st
}

func (tb *guardBed) run(t *testing.T, p *proc, args ...string) string {
	t.Helper()
	code, out, errOut := guardCLIIn(t, tb.srv, append(append([]string{"guard"}, args...), "--admin", p.admin)...)
	if code != 0 {
		t.Fatalf("guard %v: exit %d: %s", args, code, errOut)
	}
	return out
}

// waitConns polls the kernel's connection count of src until it is want.
func (tb *guardBed) waitConns(t *testing.T, p *proc, src string, want uint64) {
	t.Helper()
	var got uint64
	for range 50 {
		got = 0
		for _, s := range tb.status(t, p).TopBySYN {
			if s.Addr == src {
				got = s.Conns
			}
		}
		if got == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("connections of %s = %d, want %d", src, got, want)
}

// xdpAttached reports whether an XDP program is on the server's veth end.
func (tb *guardBed) xdpAttached(t *testing.T) bool {
	t.Helper()
	return strings.Contains(tb.srv.IP(t, "link", "show", "dev", tb.srvIf), "xdp")
}

func TestGuardKernel(t *testing.T) {
	tb := newGuardBed(t)

	t.Run("syn rate, status, detach", func(t *testing.T) {
		// One SYN per 10 s after a burst of 3: no refill during the test.
		p := tb.serve(t, tb.pinPath(t), "", "  syn_rate: 6/m\n  syn_burst: 3\n")
		if !strings.Contains(p.logs(), `msg="guard: mode=native" mode=native interfaces=`+tb.srvIf) {
			t.Errorf("no guard log line for native mode on %s:\n%s", tb.srvIf, p.logs())
		}
		for range 3 {
			tb.served(t, "10.78.0.3")
		}
		tb.dropped(t, "10.78.0.3")
		tb.served(t, "10.78.0.4")

		st := tb.status(t, p)
		if st.Mode != "native" || len(st.Interfaces) != 1 || st.Interfaces[0] != (engine.GuardInterface{Name: tb.srvIf, Mode: "native"}) {
			t.Errorf("status mode %q interfaces %+v, want native on %s", st.Mode, st.Interfaces, tb.srvIf)
		}
		if st.Counters.Dropped["syn_rate"] == 0 || st.Counters.DroppedTotal == 0 || st.Counters.Passed == 0 {
			t.Errorf("counters %+v: want syn_rate drops and passes", st.Counters)
		}
		if len(st.TopByDrops) == 0 || st.TopByDrops[0].Addr != "10.78.0.3" {
			t.Errorf("top by drops %+v, want 10.78.0.3 first", st.TopByDrops)
		}
		human := tb.run(t, p, "status")
		for _, want := range []string{"mode:", "native", "syn_rate", "10.78.0.3", tb.srvIf} {
			if !strings.Contains(human, want) {
				t.Errorf("guard status lacks %q:\n%s", want, human)
			}
		}

		// A clean shutdown detaches.
		p.stop(t)
		if tb.xdpAttached(t) {
			t.Error("XDP still attached after a clean shutdown")
		}
	})

	t.Run("conn cap", func(t *testing.T) {
		p := tb.serve(t, tb.pinPath(t), "", "  max_conns_per_ip: 3\n")
		var conns []net.Conn
		t.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		for i := range 3 {
			c, err := tb.dial("10.78.0.2")
			if err != nil {
				t.Fatalf("connection %d: %v", i+1, err)
			}
			conns = append(conns, c)
		}
		tb.waitConns(t, p, "10.78.0.2", 3)
		tb.dropped(t, "10.78.0.2")
		tb.served(t, "10.78.0.5")

		// One closes; once the kernel has counted it down the next is admitted.
		conns[0].Close()
		conns = conns[1:]
		tb.waitConns(t, p, "10.78.0.2", 2)
		tb.served(t, "10.78.0.2")
		if st := tb.status(t, p); st.Counters.Dropped["conn_cap"] == 0 {
			t.Errorf("counters %+v: want conn_cap drops", st.Counters)
		}
	})

	t.Run("deny and allow", func(t *testing.T) {
		p := tb.serve(t, tb.pinPath(t), "", "  deny: [10.78.0.5/32]\n")
		tb.dropped(t, "10.78.0.5")
		tb.served(t, "10.78.0.2")

		if out := tb.run(t, p, "deny", "10.78.0.4", "--for", "1m"); !strings.Contains(out, "denied 10.78.0.4/32 for 1m") {
			t.Errorf("guard deny printed %q", out)
		}
		tb.dropped(t, "10.78.0.4")
		st := tb.status(t, p)
		var deny []string
		for _, d := range st.Deny {
			deny = append(deny, d.CIDR)
			if d.CIDR == "10.78.0.4/32" && d.Expires == nil {
				t.Errorf("deny entry %+v: want an expiry", d)
			}
		}
		if !slices.Contains(deny, "10.78.0.4/32") || !slices.Contains(deny, "10.78.0.5/32") {
			t.Errorf("deny list %v", deny)
		}
		tb.run(t, p, "undeny", "10.78.0.4")
		tb.served(t, "10.78.0.4")

		// Allow wins over the configured deny.
		tb.run(t, p, "allow", "10.78.0.5")
		tb.served(t, "10.78.0.5")
		if st := tb.status(t, p); st.Counters.Dropped["deny"] < 2 || !slices.Contains(st.Allow, "10.78.0.5/32") {
			t.Errorf("counters %+v allow %v: want deny drops and 10.78.0.5/32 allowed", st.Counters, st.Allow)
		}
	})

	t.Run("escalation", func(t *testing.T) {
		p := tb.serve(t, tb.pinPath(t), "rate_limit: {rate: 1/s, burst: 2}\n",
			"  escalate: {threshold: 3, window: 10s, ban: 2s}\n")
		c, err := tb.dial("10.78.0.6")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// 2 pass, then 429s; after the 3rd 429 the source is denied in XDP
		// and its later requests on this connection get no answer. The
		// deny is applied off the request path (escalateLoop), so the
		// client leaves it 50 ms between 429s: on a loaded machine a
		// burst of requests can outrun it by a few.
		var codes []int
		for range 20 {
			code, err := guardGet(c, 500*time.Millisecond)
			if err != nil {
				break
			}
			codes = append(codes, code)
			if code == 429 {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if len(codes) < 5 || codes[0] != 200 || codes[2] != 429 || len(codes) == 20 {
			t.Fatalf("status codes %v: want 200, 200, then 429s until the connection is dropped", codes)
		}
		st := tb.status(t, p)
		var entry *engine.GuardDenyEntry
		for i := range st.Deny {
			if st.Deny[i].CIDR == "10.78.0.6/32" {
				entry = &st.Deny[i]
			}
		}
		if entry == nil || entry.Expires == nil || st.Escalations != 1 {
			t.Fatalf("deny list %+v escalations %d: want 10.78.0.6/32 with an expiry", st.Deny, st.Escalations)
		}
		if !strings.Contains(p.logs(), `msg="guard: escalated" client=10.78.0.6 deny=10.78.0.6/32 for=2s`) {
			t.Errorf("no escalation log line:\n%s", p.logs())
		}
		tb.dropped(t, "10.78.0.6")
		tb.served(t, "10.78.0.2")

		// The entry expires by itself in XDP.
		deadline := time.Now().Add(6 * time.Second)
		for err = tb.tryServed("10.78.0.6"); err != nil && time.Now().Before(deadline); err = tb.tryServed("10.78.0.6") {
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("10.78.0.6 still denied after its 2s ban: %v", err)
		}
		for _, d := range tb.status(t, p).Deny {
			if d.CIDR == "10.78.0.6/32" {
				t.Errorf("expired entry still listed: %+v", d)
			}
		}
	})

	t.Run("crash leaves nothing in the way", func(t *testing.T) {
		pin := tb.pinPath(t)
		p := tb.serve(t, pin, "", "  deny: [10.78.0.3/32]\n")
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.exited
		// The pinned link keeps guarding without a process.
		if !tb.xdpAttached(t) {
			t.Fatal("XDP detached by a crash; the pinned link should keep it")
		}
		tb.dropped(t, "10.78.0.3")

		p = tb.serve(t, pin, "", "")
		if st := tb.status(t, p); st.Mode != "native" {
			t.Errorf("restart after a crash: mode %q (%s)", st.Mode, st.Why)
		}
		tb.served(t, "10.78.0.2")
		p.stop(t)
		if tb.xdpAttached(t) {
			t.Error("XDP still attached after the restarted server's clean shutdown")
		}
	})
}

// TestGuardUserspace: without the kernel guard the lists and escalation
// hold at accept time, and status says why. Needs no privileges.
func TestGuardUserspace(t *testing.T) {
	cfg := writeFile(t, "guard.yaml", `
log: {access: false}
rate_limit: {rate: 1/s, burst: 2}
guard:
  mode: userspace
  escalate: {threshold: 3, window: 10s, ban: 1s}
`)
	p := start(t, "--config", cfg)
	code, out, errOut := runCLI(t, nil, "guard", "status", "--admin", p.admin)
	if code != 0 || !strings.Contains(out, "userspace (guard.mode is userspace)") {
		t.Fatalf("guard status: exit %d\n%s%s", code, out, errOut)
	}

	c, err := net.DialTimeout("tcp", p.addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var codes []int
	for range 8 {
		code, err := guardGet(c, 2*time.Second)
		if err != nil {
			break
		}
		codes = append(codes, code)
	}
	if len(codes) < 5 || codes[0] != 200 || codes[4] != 429 {
		t.Fatalf("status codes %v: want 200, 200, then 429s", codes)
	}
	// The escalation runs asynchronously; poll the status until it lands.
	var st engine.GuardStatus
	for range 100 {
		_, out, _ = runCLI(t, nil, "guard", "status", "--json", "--admin", p.admin)
		st = engine.GuardStatus{}
		_ = json.Unmarshal([]byte(out), &st)
		if st.Escalations > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Mode != "userspace" || st.Escalations != 1 || len(st.Deny) != 1 || st.Deny[0].CIDR != "127.0.0.1/32" {
		t.Fatalf("status %+v: want 127.0.0.1/32 denied by escalation", st)
	}
	// A new connection is reset at accept, before any request is read.
	if err := guardLoopbackServed(p.addr); err == nil {
		t.Fatal("denied client served")
	}
	deadline := time.Now().Add(5 * time.Second)
	for err = guardLoopbackServed(p.addr); err != nil && time.Now().Before(deadline); err = guardLoopbackServed(p.addr) {
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("still refused after the 1s ban: %v", err)
	}

	// By hand, through the CLI.
	if code, out, errOut := runCLI(t, nil, "guard", "deny", "127.0.0.0/8", "--for", "1m", "--admin", p.admin); code != 0 {
		t.Fatalf("guard deny: exit %d %s%s", code, out, errOut)
	}
	if err := guardLoopbackServed(p.addr); err == nil {
		t.Fatal("client in a denied prefix served")
	}
	if code, _, errOut := runCLI(t, nil, "guard", "undeny", "127.0.0.0/8", "--admin", p.admin); code != 0 {
		t.Fatalf("guard undeny: exit %d %s", code, errOut)
	}
	if err := guardLoopbackServed(p.addr); err != nil {
		t.Fatalf("after undeny: %v", err)
	}
	if code, _, errOut := runCLI(t, nil, "guard", "undeny", "127.0.0.0/8", "--admin", p.admin); code != 1 || !strings.Contains(errOut, "not listed") {
		t.Errorf("undeny of an absent entry: exit %d %q, want 1 and 'not listed'", code, errOut)
	}
}

// guardLoopbackServed reports whether a new connection to addr gets an
// HTTP answer (a 429 from the rate limit counts: the guard admitted it).
func guardLoopbackServed(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = guardGet(c, 2*time.Second)
	return err
}

// TestGuardAutoEphemeral: auto mode cannot guard a port the kernel has not
// picked yet, so it falls back to user space and says why.
func TestGuardAutoEphemeral(t *testing.T) {
	p := start(t)
	code, out, errOut := runCLI(t, nil, "guard", "status", "--json", "--admin", p.admin)
	if code != 0 {
		t.Fatalf("guard status: exit %d %s", code, errOut)
	}
	var st engine.GuardStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != "userspace" || st.Why == "" {
		t.Errorf("mode %q why %q: want userspace with a reason", st.Mode, st.Why)
	}
	if !strings.Contains(p.logs(), `msg="guard: mode=userspace"`) {
		t.Errorf("no guard log line:\n%s", p.logs())
	}
}

func TestGuardCLIErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"guard"}, 2, "missing command"},
		{[]string{"guard", "block"}, 2, "unknown command"},
		{[]string{"guard", "deny"}, 2, "want exactly one CIDR"},
		{[]string{"guard", "deny", "10.0.0.0/33"}, 2, "bad cidr"},
		{[]string{"guard", "deny", "10.0.0.1", "--for", "soon"}, 2, `bad "for"`},
		{[]string{"guard", "status", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"guard", "status", "--admin", "127.0.0.1:1"}, 1, "cannot reach edgeloop's admin API at 127.0.0.1:1"},
		{[]string{"guard", "allow", "10.0.0.1", "--admin", "127.0.0.1:1"}, 1, "cannot reach"},
	} {
		code, _, errOut := runCLI(t, nil, c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("edgeloop %v: exit %d %q, want %d and %q", c.args, code, errOut, c.code, c.msg)
		}
	}
	for _, cmd := range []string{"status", "deny", "undeny", "allow", "unallow"} {
		code, out, _ := runCLI(t, nil, "guard", cmd, "--help")
		if code != 0 || !strings.Contains(out, "Usage: edgeloop guard "+cmd) || !strings.Contains(out, "-admin") {
			t.Errorf("guard %s --help: exit %d\n%s", cmd, code, out)
		}
	}
}
