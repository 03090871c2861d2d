// Package fairpoll serves connections in the order their data arrived.
//
// Go's netpoller hands the goroutines it finds ready to the scheduler in the
// reverse of the order epoll reported them (runtime.netpoll pushes each one
// onto the head of a list, and the scheduler runs the list head first). A
// server with one scheduler slot (GOMAXPROCS=1) that is busy therefore
// answers the connection whose request arrived last first, and the one whose
// request arrived first last; the next round reverses again. Under a steady
// load of N connections every request waits anywhere between nothing and two
// rounds instead of one round each, so the 99th percentile latency is about
// twice what an event loop like nginx's, which serves in arrival order, shows
// at the same throughput. Measured on a 2-CPU VM (server on one CPU, wrk with
// 64 connections on the other, plain Go server answering 1 KiB): p99 2.2–2.3
// ms in runtime order, 1.2–1.5 ms with this package, and ~4% more requests/s.
//
// A Reader restores arrival order. It reads with syscall.RawConn so it can
// tell a read that found data at once from one that had to wait for the
// netpoller. Readers that waited join a batch: the first to run (the last to
// arrive) leads it, yields so that the rest of the same netpoll round can
// join, then wakes them in arrival order and takes its own turn last. A
// read that finds data at once does not join, and a lone reader only yields
// twice. The batch is process-wide; ordering is best with one scheduler slot,
// which is what Enabled reports by default.
//
// Readers and Writers also make their read(2) and write(2) calls on the
// non-blocking socket without telling the scheduler (RawSyscall): a call
// the scheduler knows about lets the runtime's monitor hand the only slot
// to another OS thread when it runs over 20 µs, which a loopback write does
// (it runs the receiver's side of TCP too), and a process pinned to one CPU
// then has two threads taking turns on it under the kernel's scheduler.
package fairpoll

import (
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/edgeloop/edgeloop/internal/stagetime"
	"github.com/edgeloop/edgeloop/internal/uring"
)

// batch gathers the readers woken by one netpoll round. Safe for
// concurrent use.
type batch struct {
	mu      sync.Mutex
	waiting []*Reader // in the order they joined: the reverse of arrival
	spare   []*Reader // a drained waiting slice, reused
	leading bool      // a leader is collecting waiting
}

var (
	round batch
	// absorb is a goroutine parked on a channel: readying it last puts it
	// in the scheduler's run-next slot, so the readers woken before it keep
	// their order in the run queue (see lead).
	absorb     = make(chan struct{}, 1)
	absorbOnce sync.Once
)

// Reader reads one TCP connection. Read is not safe for concurrent use (a
// net.Conn's reads are serialised by its user anyway).
type Reader struct {
	rc   syscall.RawConn
	conn net.Conn // for the addresses in errors
	fn   func(fd uintptr) bool

	// State of the read in progress, used by fn.
	p     []byte
	n     int
	errno error
	calls int
	empty uint64 // reads that found nothing (EAGAIN), see EmptyReads

	st *stage // stage timing (-tags stagetime), see TimeStages

	turn chan struct{} // a leader's go-ahead
	then *Reader       // whom to wake after taking the turn (the leader)

	dl deadline

	// WaitFirst's state.
	nfd     unsafe.Pointer // the *net.netFD; nil: read first
	waitFn  func(fd uintptr)
	drained bool // the last read emptied the socket
	waited  bool // waitFD saw the descriptor readable
}

// NewReader returns a Reader for c, which must be a *net.TCPConn (or
// another connection with a pollable socket), or nil if c has none.
func NewReader(c net.Conn) *Reader {
	rc := rawConn(c)
	if rc == nil {
		return nil
	}
	absorbOnce.Do(func() {
		go func() {
			for range absorb { //nolint:revive // parks between wake-ups on purpose
			}
		}()
	})
	r := &Reader{rc: rc, conn: c, turn: make(chan struct{}, 1)}
	r.fn = r.readFD
	r.dl.set = c.SetReadDeadline
	return r
}

// rawConn returns c's socket for RawConn calls, or nil if it has none.
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// readFD is the RawConn callback: one read(2). It reports false (wait for
// the netpoller) on EAGAIN.
func (r *Reader) readFD(fd uintptr) bool {
	r.calls++
	for {
		var n int
		var errno syscall.Errno
		if stagetime.Enabled && r.st != nil {
			n, errno = r.st.recv(int(fd), r.p)
		} else {
			n, errno = rawRead(int(fd), r.p)
		}
		switch errno {
		case 0:
			r.n, r.errno = n, nil
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			r.empty++
			r.dl.beforeWait()
			return false
		default:
			r.n, r.errno = 0, errno
			return true
		}
	}
}

// rawRead is read(2) on a non-blocking socket without telling the
// scheduler (RawSyscall), see rawWrite.
func rawRead(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// rawWrite is write(2) on a non-blocking socket without telling the
// scheduler. A syscall the scheduler knows about (syscall.Write) lets the
// runtime's monitor hand the only scheduler slot to another OS thread when
// the call takes over 20 µs — on loopback a write runs the receiver's side
// of TCP too — and with the process pinned to one CPU the two threads then
// share it under the kernel's scheduler, which stalls requests for
// milliseconds. A non-blocking socket call never blocks, so it may as well
// keep the slot.
func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// SetDeadline sets the read deadline like net.Conn's SetReadDeadline, but
// on the socket only when a read is about to wait (see Slack). Once it has
// been used, set read deadlines through it, not on the connection.
func (r *Reader) SetDeadline(t time.Time) error { return r.dl.Set(t) }

// SetCallTimeout makes each Read that has to wait fail after waiting d
// (none if d <= 0), until the next SetDeadline or SetCallTimeout, like
// nginx's proxy_read_timeout: a Read that finds data at once reads no
// clock. Unlike SetDeadline it must be called by the goroutine that reads.
func (r *Reader) SetCallTimeout(d time.Duration) { r.dl.SetCallTimeout(d) }

// EmptyReads returns how many read(2) calls found no data (EAGAIN) and so
// had to wait: with WaitFirst in force, only the first read, those after
// a read that filled the buffer, and those after a wait the netpoller
// ended for data an earlier read had already taken. Not safe for
// concurrent use with Read.
func (r *Reader) EmptyReads() uint64 { return r.empty }

// Read reads into p like net.Conn's Read: io.EOF at the end of the stream,
// a *net.OpError otherwise, deadlines honoured.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p, r.calls = p, 0
	r.dl.begin()
	r.waited = false
	if r.drained && r.nfd != nil {
		r.dl.beforeWait()
		_ = r.rc.Control(r.waitFn)
	}
	err := r.rc.Read(r.fn)
	for err != nil && r.dl.stale(err) {
		err = r.rc.Read(r.fn)
	}
	if r.dl.waiting.Load() {
		r.dl.done()
	}
	r.p = nil
	r.drained = false
	if err != nil { // deadline, closed: already a *net.OpError
		return 0, err
	}
	if r.errno != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: r.conn.LocalAddr(),
			Addr: r.conn.RemoteAddr(), Err: os.NewSyscallError("read", r.errno)}
	}
	if r.n == 0 {
		return 0, io.EOF
	}
	r.drained = r.n < len(p)
	if stagetime.Enabled && r.st != nil {
		r.st.afterRead()
	}
	if r.calls > 1 || r.waited { // waited for the netpoller: take a turn in arrival order
		r.join()
	}
	if stagetime.Enabled && r.st != nil {
		r.st.afterTurn()
	}
	return r.n, nil
}

// join enters the current batch and returns when it is this reader's turn.
func (r *Reader) join() {
	round.mu.Lock()
	round.waiting = append(round.waiting, r)
	lead := !round.leading
	round.leading = true
	round.mu.Unlock()
	if lead {
		r.lead()
		return
	}
	<-r.turn
	if l := r.then; l != nil {
		// Last of the batch but the leader: the leader becomes the
		// run-next goroutine and takes its turn once this one blocks.
		r.then = nil
		l.turn <- struct{}{}
	}
}

// lead runs a batch: the leader was the first of a netpoll round to run, so
// its data arrived last. It yields (to the global run queue, which the
// scheduler takes from once the local queue, where the rest of the round
// is, has run) until no one else joins, then wakes the others from first
// arrived to last and takes its turn after them.
func (r *Reader) lead() {
	var w []*Reader
	for n, quiet := 1, 0; ; {
		runtime.Gosched()
		round.mu.Lock()
		if len(round.waiting) != n {
			n, quiet = len(round.waiting), 0
		} else if quiet++; quiet == 2 {
			// Two yields in a row without a newcomer: the round is in.
			// (One is not enough: every 61st turn the scheduler takes
			// from the global queue first, which can be this leader
			// before the rest of the round has run.)
			w = round.waiting
			round.waiting, round.spare = round.spare, nil
			round.leading = false
			round.mu.Unlock()
			break
		}
		round.mu.Unlock()
	}
	if len(w) > 1 {
		// w[0] is r. Waking a goroutine puts it in the run-next slot and
		// moves the one there to the tail of the run queue: wake w[n-1]
		// (first arrived) to w[1], then the absorber, and the queue runs
		// them in arrival order. w[1] wakes r when its turn comes.
		w[1].then = r
		for i := len(w) - 1; i >= 1; i-- {
			w[i].turn <- struct{}{}
		}
		select {
		case absorb <- struct{}{}:
		default:
		}
	}
	clear(w)
	round.mu.Lock()
	if round.spare == nil {
		round.spare = w[:0]
	}
	round.mu.Unlock()
	if len(w) > 1 {
		<-r.turn
	}
}

// Writer writes one TCP connection without handing the scheduler slot away
// during the write (see rawWrite). Write is not safe for concurrent use.
type Writer struct {
	rc   syscall.RawConn
	conn net.Conn
	fn   func(fd uintptr) bool

	p     []byte
	tail  []byte // written after p in the same writev(2) (WriteTwo)
	n     int
	errno error
	iov   [2]syscall.Iovec

	dl deadline

	send *uring.Send // batched sends (BatchSends); nil: write(2)

	st *stage // stage timing (-tags stagetime), see TimeStages
}

// NewWriter returns a Writer for c, or nil if c has no pollable socket.
func NewWriter(c net.Conn) *Writer {
	rc := rawConn(c)
	if rc == nil {
		return nil
	}
	w := &Writer{rc: rc, conn: c}
	w.fn = w.writeFD
	w.dl.set = c.SetWriteDeadline
	return w
}

func (w *Writer) writeFD(fd uintptr) bool {
	for w.n < len(w.p)+len(w.tail) {
		var n int
		var errno syscall.Errno
		if w.n < len(w.p) && len(w.tail) > 0 {
			n, errno = w.rawWritev(int(fd), w.p[w.n:], w.tail)
		} else if w.n < len(w.p) {
			n, errno = rawWrite(int(fd), w.p[w.n:])
		} else {
			n, errno = rawWrite(int(fd), w.tail[w.n-len(w.p):])
		}
		switch errno {
		case 0:
			w.n += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			w.dl.beforeWait()
			return false
		default:
			w.errno = errno
			return true
		}
	}
	return true
}

// rawWritev is writev(2) of a then b, see rawWrite.
func (w *Writer) rawWritev(fd int, a, b []byte) (int, syscall.Errno) {
	w.iov[0].Base = &a[0]
	w.iov[0].SetLen(len(a))
	w.iov[1].Base = &b[0]
	w.iov[1].SetLen(len(b))
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&w.iov[0])), 2)
	w.iov[0].Base, w.iov[1].Base = nil, nil
	return int(n), e
}

// SetDeadline sets the write deadline like net.Conn's SetWriteDeadline,
// but on the socket only when a write is about to wait (see Slack). Once it
// has been used, set write deadlines through it, not on the connection.
func (w *Writer) SetDeadline(t time.Time) error { return w.dl.Set(t) }

// SetCallTimeout is Reader.SetCallTimeout for writes: each Write that has
// to wait fails after waiting d.
func (w *Writer) SetCallTimeout(d time.Duration) { w.dl.SetCallTimeout(d) }

// CallTimeout returns the timeout SetCallTimeout set, or 0 if none is in
// force (never set, or replaced by SetDeadline).
func (w *Writer) CallTimeout() time.Duration { return time.Duration(w.dl.each.Load()) }

// Write writes all of p like net.Conn's Write: a *net.OpError on failure,
// deadlines honoured.
func (w *Writer) Write(p []byte) (int, error) {
	return w.WriteTwo(p, nil)
}

// WriteTwo writes a and then b with one writev(2) where the socket takes
// both (a response's header and its body, say): the peer gets them in the
// same segments, not the header alone first.
func (w *Writer) WriteTwo(a, b []byte) (int, error) {
	if len(a)+len(b) == 0 {
		return 0, nil
	}
	if len(a) == 0 {
		a, b = b, nil
	}
	var arrived int64 // stage timing: when the request this answers arrived
	if stagetime.Enabled && w.st != nil {
		arrived = w.st.beforeWrite()
	}
	if w.send != nil {
		if err := w.Sync(); err != nil {
			return 0, err
		}
		if n := len(a) + len(b); n <= uring.MaxSend {
			if stagetime.Enabled {
				w.send.Arrived = arrived
			}
			var timeout time.Duration
			var deadline time.Time
			if e := w.dl.each.Load(); e != 0 {
				timeout = time.Duration(e)
			} else {
				deadline = decode(w.dl.want.Load())
			}
			if err := w.send.Start(a, b, timeout, deadline); err != nil {
				return 0, w.opError(err)
			}
			return n, nil
		}
	}
	if stagetime.Enabled && arrived != 0 {
		stInServer.Rec(stagetime.Now() - arrived)
	}
	w.p, w.tail, w.n, w.errno = a, b, 0, nil
	w.dl.begin()
	err := w.rc.Write(w.fn)
	for err != nil && w.dl.stale(err) {
		err = w.rc.Write(w.fn)
	}
	if w.dl.waiting.Load() {
		w.dl.done()
	}
	n := w.n
	w.p, w.tail = nil, nil
	if err != nil {
		return n, err
	}
	if w.errno != nil {
		return n, w.opError(os.NewSyscallError("write", w.errno))
	}
	return n, nil
}

func (w *Writer) opError(err error) error {
	return &net.OpError{Op: "write", Net: "tcp", Source: w.conn.LocalAddr(), Addr: w.conn.RemoteAddr(), Err: err}
}

// Enabled reports whether readers should restore arrival order by default:
// with one scheduler slot, where the order is the runtime's alone.
func Enabled() bool { return runtime.GOMAXPROCS(0) == 1 }
