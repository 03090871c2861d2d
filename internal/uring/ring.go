// Package uring batches socket sends into io_uring submissions, so that the
// responses and upstream requests a server writes in one round of its
// event loop cost one system call instead of one each.
//
// On the VMs edgeloop is measured on, entering and leaving the kernel is
// dear: a 1.2 KB loopback write(2) cost 9.5 µs against 7.0 µs per send
// submitted to io_uring in batches of 16 (the same TCP work, fewer
// crossings; a throwaway liburing loop, see docs/bench.md). A proxied request makes two sends, one to the origin and
// one to the client.
//
// One Ring serves the process. A connection's Send queues its bytes (a
// copy) and returns at once; a submitter goroutine, which runs after the
// goroutines that were runnable when the batch began, hands the whole batch
// to the kernel with one io_uring_enter(2). A send into a socket with room
// completes during that call; one that has to wait for room is finished
// by the kernel later, announced on an eventfd that Go's netpoller watches,
// and cancelled by a watchdog if it outlives its timeout. Only sends go
// through the ring: a receive submitted before its data is there costs
// more in the kernel (a poll armed per receive, and the wake-up racing the
// sender for the socket lock) than the failed read(2) it would save.
//
// A queued send names its socket by descriptor number, so a connection
// must not close its socket while a send of its is queued and not yet
// submitted: the number could be reused by then. Close on the Send submits
// it first. Once submitted, the kernel holds the socket itself; closing the
// descriptor then only lets the socket go when the send is done.
package uring

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/edgeloop/edgeloop/internal/stagetime"
)

// io_uring ABI (include/uapi/linux/io_uring.h).
const (
	sysSetup    = 425
	sysEnter    = 426
	sysRegister = 427

	opSend        = 26
	opAsyncCancel = 14

	offSQRing = 0
	offSQEs   = 0x10000000

	featSingleMmap = 1 << 0
	featNoDrop     = 1 << 1

	setupCQSize      = 1 << 3
	setupCoopTaskrun = 1 << 8

	enterGetEvents = 1 << 0

	sqCQOverflow        = 1 << 1 // sq_flags
	cqEventfdDisabled   = 1 << 0 // cq_flags
	registerEventfd     = 4
	msgNoSignal         = 0x4000
	msgWaitAll          = 0x100
	cancelTag           = ^uint64(0)
	maxSendClass        = 64 << 10
	defaultSQEntries    = 4096
	defaultCQEntries    = 16384
	watchdogGranularity = 50 * time.Millisecond
)

// sendFlags are the sends' flags; tests drop MSG_WAITALL to get the short
// sends of kernels that ignore it.
var sendFlags uint32 = msgNoSignal | msgWaitAll

// maxBatch is the most sends a batch collects before the writer that
// queues the last one submits it: beyond ~16 a larger batch saves little
// (6.7 against 7.0 µs per send at 64 and 16), and a long round of requests
// would otherwise send their answers, and their origins get their requests,
// all at the round's end.
const maxBatch = 16

type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	resv2                                                           uint64
}

type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	resv2                                                           uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFDIn  int32
	addr3       uint64
	pad         uint64
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// MaxSend is the largest send that goes through the ring; larger writes
// are few per response and gain little from batching.
const MaxSend = maxSendClass

// ErrUnavailable reports that the kernel refuses io_uring (too old,
// disabled by kernel.io_uring_disabled, or filtered by seccomp).
var ErrUnavailable = errors.New("uring: io_uring not available")

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("uring: send on a closed connection")

// errTimeout is the error of a send the watchdog cancelled.
type errTimeout struct{}

func (errTimeout) Error() string   { return "i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }
func (errTimeout) Is(err error) bool {
	return err == os.ErrDeadlineExceeded
}

// Send states.
const (
	idle     uint32 = iota
	queued          // in the submission queue, not handed to the kernel yet
	inflight        // submitted, not completed
	complete        // completed; the result waits for Wait
)

// Ring is a process's io_uring instance for sends. Safe for concurrent use.
type Ring struct {
	fd int

	mu          sync.Mutex
	sqHead      *uint32
	sqTail      *uint32
	sqFlags     *uint32
	sqMask      uint32
	sqEntries   uint32
	sqArray     []uint32
	sqes        []sqe
	cqHead      *uint32
	cqTail      *uint32
	cqFlags     *uint32
	cqMask      uint32
	cqes        []cqe
	tail        uint32 // the SQ tail as written so far
	unsubmitted uint32

	ops   []*Send  // by slot (user_data): sends queued or in flight
	free  []uint64 // free slots
	batch []*Send  // queued since the last submission
	again []*Send  // the rest of partially completed sends, for the next batch
	armed []armedSend
	woken []*Send

	kick     chan struct{}
	kicked   bool
	watch    chan struct{}
	watching bool
	efd      *os.File

	stats Stats
}

type armedSend struct {
	s   *Send
	gen uint32
}

// Stats counts a ring's work.
type Stats struct {
	Sends       uint64 // sends submitted
	Submissions uint64 // io_uring_enter(2) calls that submitted
	Waited      uint64 // sends that had to wait for room in the socket
	TimedOut    uint64 // sends the watchdog cancelled
}

// New sets up a ring, or returns ErrUnavailable.
func New() (*Ring, error) {
	p := params{flags: setupCQSize | setupCoopTaskrun, cqEntries: defaultCQEntries}
	fd, _, errno := syscall.Syscall(sysSetup, defaultSQEntries, uintptr(unsafe.Pointer(&p)), 0)
	if errno == syscall.EINVAL {
		// Kernels before 5.19 know no COOP_TASKRUN.
		p = params{flags: setupCQSize, cqEntries: defaultCQEntries}
		fd, _, errno = syscall.Syscall(sysSetup, defaultSQEntries, uintptr(unsafe.Pointer(&p)), 0)
	}
	if errno != 0 {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrUnavailable, errno)
	}
	r := &Ring{fd: int(fd)}
	fail := func(what string, err error) (*Ring, error) {
		syscall.Close(r.fd)
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
	if p.features&featSingleMmap == 0 || p.features&featNoDrop == 0 {
		return fail("features", fmt.Errorf("%#x lacks single mmap or no-drop", p.features))
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	ring, err := syscall.Mmap(r.fd, offSQRing, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return fail("mmap", err)
	}
	sqesMem, err := syscall.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		_ = syscall.Munmap(ring)
		return fail("mmap", err)
	}
	base := unsafe.Pointer(&ring[0])
	r.sqHead = (*uint32)(unsafe.Add(base, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(base, p.sqOff.tail))
	r.sqFlags = (*uint32)(unsafe.Add(base, p.sqOff.flags))
	r.sqMask = *(*uint32)(unsafe.Add(base, p.sqOff.ringMask))
	r.sqEntries = p.sqEntries
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Add(base, p.sqOff.array)), p.sqEntries)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&sqesMem[0])), p.sqEntries)
	r.cqHead = (*uint32)(unsafe.Add(base, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cqOff.tail))
	r.cqFlags = (*uint32)(unsafe.Add(base, p.cqOff.flags))
	r.cqMask = *(*uint32)(unsafe.Add(base, p.cqOff.ringMask))
	r.cqes = unsafe.Slice((*cqe)(unsafe.Add(base, p.cqOff.cqes)), p.cqEntries)
	r.tail = atomic.LoadUint32(r.sqTail)

	efd, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		return fail("eventfd", errno)
	}
	efdv := int32(efd)
	if _, _, errno := syscall.Syscall6(sysRegister, uintptr(r.fd), registerEventfd, uintptr(unsafe.Pointer(&efdv)), 1, 0, 0); errno != 0 {
		syscall.Close(int(efd))
		return fail("register eventfd", errno)
	}
	r.efd = os.NewFile(efd, "uring-eventfd")
	rc, err := r.efd.SyscallConn()
	if err != nil {
		r.efd.Close()
		return fail("eventfd", err)
	}
	r.kick = make(chan struct{}, 1)
	r.watch = make(chan struct{}, 1)
	startAbsorber()
	go r.submitter()
	go r.reaper(rc)
	go r.watchdog()
	return r, nil
}

// Stats returns the ring's counters.
func (r *Ring) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Send is one connection's send path through a Ring: at most one send in
// flight at a time. Start and Wait belong to the connection's writer;
// Close may come from any goroutine.
type Send struct {
	r     *Ring
	fd    int
	keep  any // the connection, reachable while the ring holds the send
	state atomic.Uint32

	// Under r.mu.
	buf      *[]byte // pooled; the kernel's until the send completes
	n        int
	sent     int // bytes of an earlier, partial completion
	slot     uint64
	gen      uint32
	res      int32
	timeout  time.Duration
	deadline int64 // unix ns, 0: none
	canceled bool
	closed   bool
	waiting  bool
	done     chan struct{}

	// Stage timing (-tags stagetime): when the send was queued, and when
	// the request it answers arrived (0: not an answer to a client).
	queuedAt, Arrived int64
}

// NewSend returns the send path of the socket fd. keep (the connection
// owning fd) stays reachable while a send is queued or in flight, so that
// no finalizer closes the descriptor meanwhile.
func (r *Ring) NewSend(fd int, keep any) *Send {
	return &Send{r: r, fd: fd, keep: keep, done: make(chan struct{}, 1)}
}

// Busy reports whether a send is queued, in flight, or has a result that
// Wait has not collected.
func (s *Send) Busy() bool { return s.state.Load() != idle }

// Start queues a copy of a followed by b (at most MaxSend bytes together)
// and returns without waiting. timeout bounds how long the send may wait
// for room in the socket once submitted (0: no bound), deadline (zero:
// none) when it must be done; past either it is cancelled and Wait reports
// a timeout. The previous send must have been collected by Wait.
func (s *Send) Start(a, b []byte, timeout time.Duration, deadline time.Time) error {
	n := len(a) + len(b)
	if n == 0 || n > MaxSend || s.state.Load() != idle {
		s.r.mu.Lock()
		closed := s.closed
		s.r.mu.Unlock()
		if closed {
			return ErrClosed
		}
		return fmt.Errorf("uring: bad send of %d bytes (busy %v)", n, s.Busy())
	}
	bp := getBuf(n)
	buf := *bp
	copy(buf[copy(buf, a):], b)
	r := s.r
	r.mu.Lock()
	if s.closed {
		r.mu.Unlock()
		putBuf(bp)
		return ErrClosed
	}
	s.buf, s.n, s.sent, s.timeout, s.canceled, s.res = bp, n, 0, timeout, false, 0
	s.deadline = 0
	if !deadline.IsZero() {
		s.deadline = deadline.UnixNano()
	}
	s.gen++
	if stagetime.Enabled {
		s.queuedAt = stagetime.Now()
	}
	r.queueLocked(s)
	r.wakeAndUnlock()
	return nil
}

// Wait waits for the send in flight, if any, and reports how it ended.
func (s *Send) Wait() error {
	if s.state.Load() == idle {
		return nil
	}
	r := s.r
	r.mu.Lock()
	if s.state.Load() != complete {
		s.waiting = true
		r.mu.Unlock()
		<-s.done
		r.mu.Lock()
	}
	res, n, canceled := s.res, s.n, s.canceled
	s.state.Store(idle)
	r.mu.Unlock()
	switch {
	case res < 0 && canceled: // ECANCELED, or EINTR from a send cut short
		return errTimeout{}
	case res < 0:
		return syscall.Errno(-res)
	case canceled && int(res) < n:
		return errTimeout{}
	case int(res) < n:
		return io.ErrShortWrite
	}
	return nil
}

// Close stops further sends and, if a send is still queued, submits it so
// that the socket's descriptor may be closed right after. A send in flight
// finishes (or times out) on its own.
func (s *Send) Close() {
	r := s.r
	r.mu.Lock()
	s.closed = true
	if s.state.Load() == queued {
		r.submitLocked()
	}
	r.wakeAndUnlock()
}

// queueLocked puts s in the submission queue and makes sure the submitter
// will run.
func (r *Ring) queueLocked(s *Send) {
	if n := len(r.free); n > 0 {
		s.slot = r.free[n-1]
		r.free = r.free[:n-1]
		r.ops[s.slot] = s
	} else {
		s.slot = uint64(len(r.ops))
		r.ops = append(r.ops, s)
	}
	r.sendSQE(s)
	r.batch = append(r.batch, s)
	if len(r.batch) >= maxBatch {
		r.submitLocked()
		return
	}
	r.kickLocked()
}

// sendSQE queues the entry sending what s has not sent yet.
func (r *Ring) sendSQE(s *Send) {
	e := r.nextSQE()
	*e = sqe{opcode: opSend, fd: int32(s.fd), addr: uint64(uintptr(unsafe.Pointer(&(*s.buf)[s.sent]))),
		len: uint32(s.n - s.sent), opFlags: sendFlags, userData: s.slot}
	s.state.Store(queued)
}

// kickLocked makes sure the submitter will run.
func (r *Ring) kickLocked() {
	if !r.kicked {
		r.kicked = true
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// nextSQE returns the next free submission entry, submitting the queue
// first if it is full.
func (r *Ring) nextSQE() *sqe {
	if r.tail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		r.submitLocked()
	}
	i := r.tail & r.sqMask
	r.sqArray[i] = i
	r.tail++
	r.unsubmitted++
	return &r.sqes[i]
}

// submitLocked hands the queued entries to the kernel, then collects the
// completions. Sends that did not complete during the call wait for room
// in their socket: the watchdog keeps an eye on them.
func (r *Ring) submitLocked() {
	if r.unsubmitted == 0 {
		return
	}
	atomic.StoreUint32(r.sqTail, r.tail)
	for i, s := range r.again {
		if s.state.Load() == queued { // not already resubmitted and done
			r.batch = append(r.batch, s)
		}
		r.again[i] = nil
	}
	r.again = r.again[:0]
	for _, s := range r.batch {
		if s.state.Load() == queued {
			s.state.Store(inflight)
		}
	}
	if stagetime.Enabled {
		r.timeStages()
	}
	// Completions during the call are collected below: the eventfd need
	// not wake the reaper for them.
	atomic.StoreUint32(r.cqFlags, atomic.LoadUint32(r.cqFlags)|cqEventfdDisabled)
	for tries := 0; r.unsubmitted > 0; tries++ {
		n, _, errno := syscall.RawSyscall6(sysEnter, uintptr(r.fd), uintptr(r.unsubmitted), 0, 0, 0, 0)
		switch {
		case errno == 0:
			r.unsubmitted -= uint32(n)
			r.stats.Submissions++
		case errno == syscall.EINTR:
		case (errno == syscall.EBUSY || errno == syscall.EAGAIN) && tries < 100:
			// The completion queue is full (the kernel keeps the overflow)
			// or the kernel is short of memory: make room, try again.
			r.reapLocked()
		default:
			// The ring refuses the entries: fail their sends with the
			// error, as write(2) would have, rather than wait forever.
			r.failUnsubmittedLocked(errno)
		}
	}
	atomic.StoreUint32(r.cqFlags, atomic.LoadUint32(r.cqFlags)&^cqEventfdDisabled)
	r.reapLocked()
	var now int64
	for i, s := range r.batch {
		if s.state.Load() == inflight && s.slot < uint64(len(r.ops)) && r.ops[s.slot] == s {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			r.stats.Waited++
			r.armed = append(r.armed, armedSend{s, s.gen})
			r.noteExpiry(s, now)
		}
		r.batch[i] = nil
	}
	r.stats.Sends += uint64(len(r.batch))
	r.batch = r.batch[:0]
	if len(r.armed) > 0 && !r.watching {
		r.watching = true
		select {
		case r.watch <- struct{}{}:
		default:
		}
	}
}

// failUnsubmittedLocked takes back the entries the kernel has not consumed
// and completes their sends with errno.
func (r *Ring) failUnsubmittedLocked(errno syscall.Errno) {
	head := atomic.LoadUint32(r.sqHead)
	for i := head; i != r.tail; i++ {
		ud := r.sqes[r.sqArray[i&r.sqMask]].userData
		if ud == cancelTag {
			continue
		}
		s := r.ops[ud]
		r.ops[ud] = nil
		r.free = append(r.free, ud)
		r.completeLocked(s, -int32(errno))
	}
	r.tail = head
	atomic.StoreUint32(r.sqTail, r.tail)
	r.unsubmitted = 0
}

// completeLocked records the result of s's send and releases its buffer.
func (r *Ring) completeLocked(s *Send, res int32) {
	s.res = res
	putBuf(s.buf)
	s.buf = nil
	s.state.Store(complete)
	if s.waiting {
		s.waiting = false
		r.woken = append(r.woken, s)
	}
}

// noteExpiry turns s's timeout into a deadline from now, the moment it
// started to wait.
func (r *Ring) noteExpiry(s *Send, now int64) {
	if s.timeout > 0 {
		if d := now + int64(s.timeout); s.deadline == 0 || d < s.deadline {
			s.deadline = d
		}
	}
}

// reapLocked collects completions; the senders waiting for them are added
// to r.woken.
func (r *Ring) reapLocked() {
	for {
		head := atomic.LoadUint32(r.cqHead)
		tail := atomic.LoadUint32(r.cqTail)
		for ; head != tail; head++ {
			c := &r.cqes[head&r.cqMask]
			if c.userData == cancelTag {
				continue
			}
			s := r.ops[c.userData]
			if c.res > 0 && int(c.res) < s.n-s.sent && !s.canceled {
				// A short send (kernels that ignore MSG_WAITALL on
				// sends): send the rest, in the next batch, as write(2)'s
				// caller would.
				s.sent += int(c.res)
				r.sendSQE(s)
				r.again = append(r.again, s)
				r.kickLocked()
				continue
			}
			r.ops[c.userData] = nil
			r.free = append(r.free, c.userData)
			res := c.res
			if res >= 0 {
				res += int32(s.sent)
			}
			r.completeLocked(s, res)
		}
		atomic.StoreUint32(r.cqHead, head)
		if atomic.LoadUint32(r.sqFlags)&sqCQOverflow == 0 {
			return
		}
		// Completions the full queue could not take wait in the kernel:
		// have it move them in.
		_, _, _ = syscall.RawSyscall6(sysEnter, uintptr(r.fd), 0, 0, enterGetEvents, 0, 0)
	}
}

// wakeAndUnlock releases r.mu and wakes the senders whose sends completed,
// in completion order.
func (r *Ring) wakeAndUnlock() {
	if len(r.woken) == 0 {
		r.mu.Unlock()
		return
	}
	w := r.woken
	r.woken = nil
	r.mu.Unlock()
	for i, s := range w {
		s.done <- struct{}{}
		w[i] = nil
	}
	absorbWakes()
	r.mu.Lock()
	if r.woken == nil {
		r.woken = w[:0]
	}
	r.mu.Unlock()
}

// submitter submits each batch once the goroutines that were runnable when
// its first send was queued have had their turn: a yield puts it behind
// them, so their sends join the batch.
func (r *Ring) submitter() {
	for range r.kick {
		runtime.Gosched()
		r.mu.Lock()
		r.kicked = false
		r.submitLocked()
		r.wakeAndUnlock()
	}
}

// reaper collects the completions of sends that had to wait for room, which
// the kernel announces on the eventfd.
func (r *Ring) reaper(rc syscall.RawConn) {
	var buf [8]byte
	read := func(fd uintptr) bool {
		_, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), 8)
		return errno != syscall.EAGAIN
	}
	for {
		if err := rc.Read(read); err != nil {
			return
		}
		r.mu.Lock()
		r.reapLocked()
		r.wakeAndUnlock()
	}
}

// watchdog cancels sends that waited for room in their socket past their
// timeout, checking every watchdogGranularity while any waits.
func (r *Ring) watchdog() {
	for range r.watch {
		for {
			time.Sleep(watchdogGranularity)
			r.mu.Lock()
			now := time.Now().UnixNano()
			kept := r.armed[:0]
			cancels := 0
			for _, a := range r.armed {
				s := a.s
				if s.gen != a.gen || s.state.Load() != inflight {
					continue
				}
				if s.deadline == 0 || now < s.deadline {
					kept = append(kept, a)
					continue
				}
				s.canceled = true
				r.stats.TimedOut++
				e := r.nextSQE()
				*e = sqe{opcode: opAsyncCancel, fd: -1, addr: s.slot, userData: cancelTag}
				cancels++
			}
			for i := len(kept); i < len(r.armed); i++ {
				r.armed[i] = armedSend{}
			}
			r.armed = kept
			if cancels > 0 {
				r.submitLocked()
			}
			done := len(r.armed) == 0
			if done {
				r.watching = false
			}
			r.wakeAndUnlock()
			if done {
				break
			}
		}
	}
}

// Buffers by size class: 4, 16 and 64 KiB.
var bufPools = [3]sync.Pool{
	{New: func() any { b := make([]byte, 4<<10); return &b }},
	{New: func() any { b := make([]byte, 16<<10); return &b }},
	{New: func() any { b := make([]byte, 64<<10); return &b }},
}

func bufClass(n int) int {
	switch {
	case n <= 4<<10:
		return 0
	case n <= 16<<10:
		return 1
	}
	return 2
}

func getBuf(n int) *[]byte {
	return bufPools[bufClass(n)].Get().(*[]byte)
}

func putBuf(p *[]byte) {
	if p != nil {
		bufPools[bufClass(cap(*p))].Put(p)
	}
}

// Stage timing (-tags stagetime).
var (
	stSubmit   = stagetime.New("7 send queued->submitted")
	stInServer = stagetime.New("8 in server (ring)")
	stBatch    = stagetime.New("9 sends per submit (x5us)")
)

// timeStages records, for the batch about to be submitted, each send's
// wait in the queue and, for answers to clients, the time since their
// request arrived.
func (r *Ring) timeStages() {
	now := stagetime.Now()
	for _, s := range r.batch {
		if s.queuedAt != 0 {
			stSubmit.Rec(now - s.queuedAt)
			s.queuedAt = 0
		}
		if s.Arrived != 0 {
			stInServer.Rec(now - s.Arrived)
			s.Arrived = 0
		}
	}
	stBatch.Rec(int64(len(r.batch)) * 5000)
}
