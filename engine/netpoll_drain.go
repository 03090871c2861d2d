package engine

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	np "github.com/cloudwego/netpoll"
)

// hertz v0.10.4 serves every netpoll connection on a goroutine that loops
// until the connection closes (its Serve closes the connection on return),
// so netpoll's own graceful close never sees a keep-alive connection as
// idle and waits out the drain timeout. Shutdown therefore tells idle
// connections apart itself: no request in a handler, no streamed body still
// being written, nothing buffered either way, and a moment since the last
// handler returned (hertz writes an in-memory response right after).

// npStateKey keys a connection's *npConnState in the request context.
type npStateKey struct{}

// npConnState is one netpoll connection's drain state.
type npConnState struct {
	npc     np.Connection
	busy    atomic.Int32 // requests in the chain, plus bodies still streaming
	lastEnd atomic.Int64 // UnixNano when the last request's chain returned
}

// npWriteGrace is how long after its handler returns a response still
// counts as being written.
const npWriteGrace = 50 * time.Millisecond

func (st *npConnState) idle() bool {
	return st.busy.Load() == 0 &&
		time.Now().UnixNano()-st.lastEnd.Load() > int64(npWriteGrace) &&
		st.npc.Reader().Len() == 0 && st.npc.Writer().MallocLen() == 0
}

// netpollTrack marks the request's connection busy until its response is
// written: at once for in-memory bodies, or when hertz closes a streamed
// body after writing it. It returns what front runs after the chain.
func netpollTrack(ctx context.Context, c *app.RequestContext) func() {
	st, _ := ctx.Value(npStateKey{}).(*npConnState)
	if st == nil {
		return func() {}
	}
	st.busy.Add(1)
	return func() {
		if c.Response.IsBodyStream() {
			size := c.Response.Header.ContentLength()
			body := c.Response.BodyStream()
			if lr, ok := body.(*io.LimitedReader); ok && size < 0 {
				size = int(lr.N)
			}
			// NoReset: SetBodyStream would close the stream being wrapped.
			c.Response.SetBodyStreamNoReset(&npTrackedBody{Reader: body, st: st}, size)
			return
		}
		st.lastEnd.Store(time.Now().UnixNano())
		st.busy.Add(-1)
	}
}

// Close closes the connection (connSet's drain calls it).
func (st *npConnState) Close() error { return st.npc.Close() }

// npTrackedBody releases its connection's busy mark when hertz closes it.
type npTrackedBody struct {
	io.Reader
	st   *npConnState
	once sync.Once
}

func (b *npTrackedBody) Close() error {
	var err error
	if c, ok := b.Reader.(io.Closer); ok {
		err = c.Close()
	}
	b.once.Do(func() {
		b.st.lastEnd.Store(time.Now().UnixNano())
		b.st.busy.Add(-1)
	})
	return err
}
