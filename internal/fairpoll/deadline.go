package fairpoll

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Slack is how far the deadline set on a socket may be from the one asked
// for before a Reader or Writer sets it again.
//
// A server sets a read deadline before every request and a write deadline
// before every response, and a proxy two more on the upstream connection.
// Each costs clock reads, a lock and a timer-heap change in the runtime:
// about 4% of the CPU a proxied 1 KiB request takes on one core. Yet a
// deadline only matters to a call that waits, and most reads and nearly all
// writes do not. So SetDeadline only notes the deadline asked for; when a
// call is about to wait, the socket's deadline is set if the one it has is
// more than Slack away from it. A connection serving a request every few
// milliseconds then sets it a few times a second instead of per request.
// A deadline set earlier that expires without being asked for any more
// fails the call with a timeout; the call sees that the deadline it was
// asked for has not passed, sets it, and goes on. A deadline therefore
// fires at most Slack late and never early. nginx keeps its timers the
// same way (NGX_TIMER_LAZY_DELAY, 300 ms).
const Slack = 50 * time.Millisecond

// base is the origin of the deadlines kept as integers: nanoseconds on the
// monotonic clock since base, 0 for none.
var base = time.Now()

func encode(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if d := int64(t.Sub(base)); d != 0 {
		return d
	}
	return 1
}

func decode(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return base.Add(time.Duration(v))
}

func near(a, b int64) bool {
	if a == 0 || b == 0 {
		return a == b
	}
	d := a - b
	return d >= -int64(Slack) && d <= int64(Slack)
}

// deadline is one direction's lazily set deadline. Set may be called from
// any goroutine; beforeWait, done and stale by the one making the call.
type deadline struct {
	want    atomic.Int64 // asked for by Set
	each    atomic.Int64 // SetCallTimeout's timeout: want becomes now+each at a call's first wait
	fixed   bool         // the current call has set want from each (the calling goroutine's)
	armed   atomic.Int64 // set on the socket
	waiting atomic.Bool  // a call waits, or is about to, on the netpoller
	mu      sync.Mutex   // serialises arm, so armed is what the socket has
	set     func(time.Time) error
}

// Set records t as the deadline. A call waiting now must see it at once
// if it is earlier than the one the socket has: it is set on the socket
// then (waking the call if t has passed). Otherwise the call sets it when
// it is about to wait.
func (d *deadline) Set(t time.Time) error {
	w := encode(t)
	if d.each.Load() != 0 {
		d.each.Store(0)
	}
	d.want.Store(w)
	// The waiter stores waiting before it loads want; this stores want
	// before it loads waiting: one of the two sees the other.
	if d.waiting.Load() && !near(d.armed.Load(), w) {
		return d.arm()
	}
	return nil
}

// SetCallTimeout makes each call that has to wait fail after waiting t
// (from its first wait; none if t <= 0), until the next Set or
// SetCallTimeout: a call that does not wait reads no clock, and the
// timeout costs nothing per call. Only the goroutine making the calls may
// use it.
func (d *deadline) SetCallTimeout(t time.Duration) {
	if t <= 0 {
		_ = d.Set(time.Time{})
		return
	}
	d.each.Store(int64(t))
}

// begin is called at the start of each call.
func (d *deadline) begin() { d.fixed = false }

// fix sets want from SetCallTimeout's timeout at the call's first wait.
func (d *deadline) fix() {
	if e := d.each.Load(); e != 0 && !d.fixed {
		d.want.Store(int64(time.Since(base)) + e)
		d.fixed = true
	}
}

// beforeWait is called when the call is about to wait on the netpoller.
func (d *deadline) beforeWait() {
	d.fix()
	d.waiting.Store(true)
	if !near(d.armed.Load(), d.want.Load()) {
		_ = d.arm()
	}
}

// done is called when the call has returned from waiting.
func (d *deadline) done() { d.waiting.Store(false) }

// arm sets the deadline asked for on the socket.
func (d *deadline) arm() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		w := d.want.Load()
		err := d.set(decode(w))
		d.armed.Store(w)
		if err != nil || d.want.Load() == w {
			return err
		}
	}
}

// stale reports whether err is a timeout from a deadline set for an
// earlier call, one that is not (or no longer) asked for; it then sets the
// one asked for, and the call is to be made again. A timeout from a
// deadline set on the socket directly, with none ever set through Set, is
// the caller's and is not stale.
func (d *deadline) stale(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) || d.armed.Load() == 0 {
		return false
	}
	d.fix()
	if w := d.want.Load(); w != 0 && w <= int64(time.Since(base)) {
		return false
	}
	return d.arm() == nil
}
