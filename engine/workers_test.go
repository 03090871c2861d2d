package engine

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeloop/edgeloop/tune"
)

func TestRestartDelay(t *testing.T) {
	steps := []struct {
		prev, uptime, want time.Duration
	}{
		{0, 0, minRestartDelay},                                  // first death
		{minRestartDelay, time.Second, 2 * minRestartDelay},      // crash loop doubles
		{400 * time.Millisecond, 0, 800 * time.Millisecond},      //
		{8 * time.Second, time.Second, maxRestartDelay},          // capped
		{maxRestartDelay, 0, maxRestartDelay},                    //
		{maxRestartDelay, stableUptime, minRestartDelay},         // ran long enough: reset
		{time.Second, stableUptime + time.Hour, minRestartDelay}, //
	}
	for _, s := range steps {
		if got := restartDelay(s.prev, s.uptime); got != s.want {
			t.Errorf("restartDelay(%v, %v) = %v, want %v", s.prev, s.uptime, got, s.want)
		}
	}
}

func TestWorkerCPUs(t *testing.T) {
	f := func(n int, allowed, want []int) {
		t.Helper()
		if got := workerCPUs(n, allowed); !slices.Equal(got, want) {
			t.Errorf("workerCPUs(%d, %v) = %v, want %v", n, allowed, got, want)
		}
	}
	f(2, []int{0, 1}, []int{0, 1})
	f(2, []int{2, 5, 7}, []int{2, 5})
	f(3, []int{0, 1}, []int{0, 1, 0}) // more workers than CPUs wrap around
	f(2, nil, []int{-1, -1})          // unknown: not pinned
}

func TestChildEnv(t *testing.T) {
	in := []string{"PATH=/bin", envInherit + "=[]", envReadyFD + "=5", envWorker + "={}", "GOMAXPROCS=2"}
	if got, want := childEnv(in), []string{"PATH=/bin", "GOMAXPROCS=2"}; !slices.Equal(got, want) {
		t.Errorf("childEnv = %v, want %v", got, want)
	}
}

func TestSteerProgramShape(t *testing.T) {
	prog := steerProgram([]int{3, 5})
	// ld cpu; jeq 3; ret 0; jeq 5; ret 1; ret past-the-group.
	if len(prog) != 6 || prog[0].K != skfAdOff+skfAdCPU || prog[1].K != 3 || prog[2].K != 0 ||
		prog[3].K != 5 || prog[4].K != 1 || prog[5].K != 0xffffffff {
		t.Fatalf("steerProgram = %+v", prog)
	}
}

// TestListenerSetOutlivesListener: a Server's listener is a dup of the held
// socket, so closing it (a drained Server) leaves the socket accepting for
// the next one, and port 0 stays the same port.
func TestListenerSetOutlivesListener(t *testing.T) {
	set := newListenerSet(slog.Default())
	defer set.closeAll()
	ctx := context.Background()
	a, err := set.listener(ctx, kindPublic, "127.0.0.1:0", tune.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := set.listener(ctx, kindPublic, "127.0.0.1:0", tune.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Addr().String() != b.Addr().String() {
		t.Fatalf("same key, different sockets: %v and %v", a.Addr(), b.Addr())
	}
	// A client queued before the old listener closes is accepted by the new.
	conn, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	a.Close()
	b.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := b.Accept()
	if err != nil {
		t.Fatalf("accept after the first listener closed: %v", err)
	}
	c.Close()
}

// TestListenerSetHandOver passes held sockets through files and adopt, as
// a worker or an upgraded process gets them (here within one process, on
// duplicated descriptors).
func TestListenerSetHandOver(t *testing.T) {
	ctx := context.Background()
	parent := newListenerSet(slog.Default())
	defer parent.closeAll()
	sc := tune.SocketConfig{ReusePort: true}
	for slot := range 2 {
		if _, err := parent.socket(ctx, sockKey{Kind: kindPublic, Addr: "127.0.0.1:0", Slot: slot}, sc); err != nil {
			t.Fatal(err)
		}
	}
	files, list := parent.files(func(k sockKey) bool { return true })
	if len(list) != 2 || list[0].Slot != 0 || list[1].Slot != 1 || list[0].FD != 3 {
		t.Fatalf("files() list = %+v", list)
	}
	port := parent.bound(kindPublic, "127.0.0.1:0").(*net.TCPAddr).Port
	for i := range list {
		fd, err := unix.Dup(int(files[i].Fd()))
		if err != nil {
			t.Fatal(err)
		}
		list[i].FD = fd
	}
	child := newListenerSet(slog.Default())
	child.inheritOnly = true
	defer child.closeAll()
	if err := child.adopt(list); err != nil {
		t.Fatal(err)
	}
	for slot := range 2 {
		hs, err := child.socket(ctx, sockKey{Kind: kindPublic, Addr: "127.0.0.1:0", Slot: slot}, sc)
		if err != nil {
			t.Fatal(err)
		}
		if hs.bound.(*net.TCPAddr).Port != port {
			t.Errorf("slot %d bound %v, want port %d", slot, hs.bound, port)
		}
	}
	// A worker never binds a public address of its own.
	if _, err := child.listener(ctx, kindPublic, "127.0.0.1:1", sc); err == nil {
		t.Error("inherit-only set opened a new public socket")
	}
}

// TestSteerToCPU attaches the steering program to a real two-socket
// reuseport group: a connection made from a thread pinned to a CPU lands in
// the accept queue of the socket for that CPU.
func TestSteerToCPU(t *testing.T) {
	allowed, err := tune.AllowedCPUs()
	if err != nil || len(allowed) < 2 {
		t.Skipf("needs 2 usable CPUs (have %v)", allowed)
	}
	cpus := allowed[:2]
	ctx := context.Background()
	set := newListenerSet(slog.Default())
	defer set.closeAll()
	sc := tune.SocketConfig{ReusePort: true}
	lns := make([]*net.TCPListener, 2)
	for slot := range 2 {
		hs, err := set.socket(ctx, sockKey{Kind: kindPublic, Addr: "127.0.0.1:0", Slot: slot}, sc)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.FileListener(hs.file)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		lns[slot] = ln.(*net.TCPListener)
	}
	if err := attachSteering(set.group("127.0.0.1:0")[0], cpus); err != nil {
		t.Fatalf("attach: %v", err)
	}
	addr := lns[0].Addr().String()
	for want, cpu := range cpus {
		for range 3 {
			conn := dialFromCPU(t, cpu, addr)
			lns[want].SetDeadline(time.Now().Add(2 * time.Second))
			c, err := lns[want].Accept()
			if err != nil {
				t.Fatalf("connection from cpu %d not in slot %d's queue: %v", cpu, want, err)
			}
			c.Close()
			conn.Close()
		}
	}
	if err := attachSteering(set.group("127.0.0.1:0")[0], nil); err != nil {
		t.Errorf("detach: %v", err)
	}
}

func dialFromCPU(t *testing.T, cpu int, addr string) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with its affinity
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			res <- result{err: err}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		res <- result{c, err}
	}()
	r := <-res
	if r.err != nil {
		t.Fatalf("dial from cpu %d: %v", cpu, r.err)
	}
	return r.c
}

// TestTrackedConnIdle: drain closes only connections waiting for a new
// request, never one with a request read or still in the kernel's queue.
func TestTrackedConnIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	set := newConnSet[*trackedConn]()
	tc := &trackedConn{Conn: raw, set: set}
	set.add(tc)
	defer tc.Close()

	// A request that arrived but was not read yet is not idle.
	io.WriteString(client, "GET / HTTP/1.1\r\n\r\n")
	waitFor(t, func() bool { return unreadBytes(raw) > 0 }, "request bytes in the receive queue")
	tc.reading.Store(true) // as if blocked in Read
	if tc.idle() {
		t.Fatal("idle with an unread request in the receive queue")
	}
	tc.reading.Store(false)
	buf := make([]byte, 64)
	if _, err := tc.Read(buf); err != nil {
		t.Fatal(err)
	}
	if tc.idle() || !tc.pending.Load() {
		t.Fatal("idle after reading a request")
	}
	if _, err := tc.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Blocked reading the next request with nothing pending: idle.
	done := make(chan error, 1)
	go func() {
		_, err := tc.Read(buf)
		done <- err
	}()
	waitFor(t, tc.idle, "idle while waiting for the next request")
	set.closeAll()
	if err := <-done; err == nil {
		t.Fatal("read on a closed idle connection succeeded")
	}
	if set.len() != 0 {
		t.Fatalf("%d connections left after closeAll", set.len())
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for range 400 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
