package fairpoll

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/edgeloop/edgeloop/internal/uring"
)

// Batched sends. A Writer that BatchSends hands each write of up to
// uring.MaxSend bytes to the process's io_uring ring and returns at once;
// the ring submits the writes of one scheduler round together, one system
// call for the lot (see package uring). The write's outcome is reported by
// the next Write, Sync or, for a write that had to wait for room in the
// socket longer than the write timeout, as a timeout there. Writes stay in
// order: a Writer has at most one send in flight, and a write waits for
// the one before it.

var (
	ringMu   sync.Mutex
	ring     *uring.Ring
	ringErr  error
	ringOn   atomic.Bool
	ringOnce sync.Once
)

// EnableBatchSends sets whether Writers created from now on may batch
// their sends (BatchSends). It sets up the process's ring on first use and
// returns uring.ErrUnavailable (wrapped) when the kernel refuses io_uring;
// writes then stay write(2) calls.
func EnableBatchSends(on bool) error {
	if !on {
		ringOn.Store(false)
		return nil
	}
	ringOnce.Do(func() {
		r, err := uring.New()
		ringMu.Lock()
		ring, ringErr = r, err
		ringMu.Unlock()
	})
	ringMu.Lock()
	defer ringMu.Unlock()
	if ringErr != nil {
		return ringErr
	}
	ringOn.Store(true)
	return nil
}

// BatchSendStats returns the process ring's counters (zero without one).
func BatchSendStats() uring.Stats {
	ringMu.Lock()
	r := ring
	ringMu.Unlock()
	if r == nil {
		return uring.Stats{}
	}
	return r.Stats()
}

// BatchSends makes w batch its sends when EnableBatchSends is on, and
// reports whether it does. Call it before the first write. Its deadlines
// must then be set through SetDeadline or SetCallTimeout, not on the
// connection, and Close must be called before the connection is closed.
func (w *Writer) BatchSends() bool {
	if w.send != nil {
		return true
	}
	if !ringOn.Load() {
		return false
	}
	ringMu.Lock()
	r := ring
	ringMu.Unlock()
	if r == nil {
		return false
	}
	fd := -1
	if err := w.rc.Control(func(f uintptr) { fd = int(f) }); err != nil || fd < 0 {
		return false
	}
	w.send = r.NewSend(fd, w.conn)
	return true
}

// Pending reports whether a batched write's outcome is still to be
// collected by Sync (or the next write).
func (w *Writer) Pending() bool { return w.send != nil && w.send.Busy() }

// Sync waits until the batched write in flight, if any, is done, and
// returns its error: what a write(2) of it would have returned, or a
// timeout (os.ErrDeadlineExceeded) if it waited for room in the socket
// longer than the write timeout. A reader expecting an answer to what was
// just written calls it first.
func (w *Writer) Sync() error {
	if w.send == nil || !w.send.Busy() {
		return nil
	}
	err := w.send.Wait()
	if err == nil {
		return nil
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = os.NewSyscallError("write", errno)
	}
	return w.opError(err)
}

// Close makes sure no batched write still names the socket's descriptor,
// which may be closed (and its number reused) right after. A write already
// handed to the kernel finishes, or times out, on its own; the socket is
// released then. Safe to call from any goroutine, more than once.
func (w *Writer) Close() {
	if w.send != nil {
		w.send.Close()
	}
}
