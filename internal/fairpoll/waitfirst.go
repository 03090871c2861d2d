package fairpoll

import (
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Waiting before reading.
//
// A server reads a keep-alive connection's next request right after it
// has written the previous answer, and the client has not had the time
// to send one: the read(2) fails with EAGAIN, and only then does the
// goroutine wait for the netpoller. That failed read is a third of the
// reads a proxied request makes. net.Conn has no way to wait first: each
// read clears the readiness the netpoller recorded and so must try the
// socket before it may wait. A Reader with WaitFirst set waits on the
// connection's poll descriptor directly when its last read emptied the
// socket, and reads only once the netpoller has seen data (or a close,
// an error or the deadline) arrive. Nothing is lost: data that arrived
// after that last read raised an edge-triggered event the netpoller
// records on the descriptor, and only a read clears it. A wait that the
// netpoller ends for data already read costs one read that finds nothing
// and falls back to the usual path.
//
// The descriptor is Go's own (internal/poll's pollDesc, reached through
// the connection's syscall.RawConn) and the wait is the runtime's
// (internal/poll.runtime_pollWait, which the runtime exports by linkname).
// The layout is checked by field names and types when the first Reader is
// made, and against the descriptor number on every wait; if either ever
// differs, WaitFirst does nothing (and TestWaitFirstSkipsFailedRead fails,
// so the change is seen). Should a Go release stop allowing the linkname,
// the build fails here: drop this file and the WaitFirst call in
// engine/listen.go, and reads go back to trying first.

//go:linkname runtimePollWait internal/poll.runtime_pollWait
func runtimePollWait(ctx uintptr, mode int) int

// pollLayout is where a *net.rawConn keeps its poll descriptor.
type pollLayout struct {
	typ   reflect.Type // *net.rawConn
	fd    uintptr      // rawConn.fd (*netFD)
	sysfd uintptr      // netFD.pfd.Sysfd (int)
	ctx   uintptr      // netFD.pfd.pd.runtimeCtx (uintptr)
}

var (
	layoutOnce sync.Once
	layout     *pollLayout // nil: not found
	layoutBad  atomic.Bool // a wait saw another descriptor: stop waiting first
)

// field returns t's field name if it has kind k.
func field(t reflect.Type, name string, k reflect.Kind) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	f, ok := t.FieldByName(name)
	if !ok || len(f.Index) != 1 || f.Type.Kind() != k {
		return reflect.StructField{}, false
	}
	return f, true
}

// findLayout finds the fields of rc's type on the path to its poll
// descriptor, or returns nil.
func findLayout(rc syscall.RawConn) *pollLayout {
	t := reflect.TypeOf(rc)
	if t.Kind() != reflect.Pointer || t.Elem().Name() != "rawConn" || t.Elem().PkgPath() != "net" {
		return nil
	}
	fd, ok := field(t.Elem(), "fd", reflect.Pointer)
	if !ok || fd.Type.Elem().Name() != "netFD" {
		return nil
	}
	pfd, ok := field(fd.Type.Elem(), "pfd", reflect.Struct)
	if !ok || pfd.Type.Name() != "FD" || pfd.Type.PkgPath() != "internal/poll" {
		return nil
	}
	sysfd, ok := field(pfd.Type, "Sysfd", reflect.Int)
	if !ok {
		return nil
	}
	pd, ok := field(pfd.Type, "pd", reflect.Struct)
	if !ok || pd.Type.Name() != "pollDesc" {
		return nil
	}
	ctx, ok := field(pd.Type, "runtimeCtx", reflect.Uintptr)
	if !ok {
		return nil
	}
	return &pollLayout{typ: t, fd: fd.Offset, sysfd: pfd.Offset + sysfd.Offset, ctx: pfd.Offset + pd.Offset + ctx.Offset}
}

// netFD returns the *net.netFD behind rc, or nil.
func netFD(rc syscall.RawConn) unsafe.Pointer {
	layoutOnce.Do(func() { layout = findLayout(rc) })
	if layout == nil || reflect.TypeOf(rc) != layout.typ {
		return nil
	}
	p := (*[2]unsafe.Pointer)(unsafe.Pointer(&rc))[1] // the *net.rawConn
	if p == nil {
		return nil
	}
	return *(*unsafe.Pointer)(unsafe.Add(p, layout.fd))
}

// WaitFirst makes a Read whose previous read emptied the socket wait for
// the netpoller before it reads, instead of reading first and waiting on
// EAGAIN (see the comment above). For connections that are read when the
// peer has usually not answered yet: a server's keep-alive clients.
// Reports whether it is in force.
func (r *Reader) WaitFirst(on bool) bool {
	if !on {
		r.nfd = nil
		return false
	}
	if r.nfd = netFD(r.rc); r.nfd == nil {
		return false
	}
	if r.waitFn == nil {
		r.waitFn = r.waitFD
	}
	return true
}

// waitFD is the RawConn.Control callback: it waits until the netpoller
// reports the socket readable (or closed, or past its deadline). Control
// holds a reference on the descriptor, so it is not closed and its poll
// descriptor not freed meanwhile; a close wakes the wait.
func (r *Reader) waitFD(fd uintptr) {
	if layoutBad.Load() {
		return
	}
	if *(*int)(unsafe.Add(r.nfd, layout.sysfd)) != int(fd) {
		layoutBad.Store(true)
		return
	}
	ctx := *(*uintptr)(unsafe.Add(r.nfd, layout.ctx))
	if ctx == 0 {
		return
	}
	r.waited = runtimePollWait(ctx, 'r') == 0
}
