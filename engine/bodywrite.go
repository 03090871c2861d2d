package engine

import (
	"context"
	"net"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/network"
	"github.com/cloudwego/hertz/pkg/protocol"
	hresp "github.com/cloudwego/hertz/pkg/protocol/http1/resp"
)

// largeBody is the size from which a response body held in memory (a cache
// hit, a static file) is written with its header in one writev(2), on the
// standard transport. hertz writes a body of 4 KiB or more as a second
// write(2) after the header; the client then gets the header in a segment
// of its own and reads twice. Below this the two share hertz's buffer and
// go out in one write anyway.
const largeBody = 16 << 10

type connKey struct{}

// acceptContext is the standard transport's OnAccept: the connection's
// requests carry its *trackedConn in their context.
func acceptContext(c net.Conn) context.Context {
	ctx := context.Background()
	if tc, ok := c.(*trackedConn); ok {
		ctx = context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

// bodyWriter writes one response: header and body in one writev(2) on the
// client's socket. It is hertz's hijack writer for that response
// (Response.HijackWriter), which hertz calls Finalize on instead of writing
// the response itself. Each trackedConn has one, reused.
type bodyWriter struct {
	tc   *trackedConn
	resp *protocol.Response
	zw   network.Writer // hertz's buffered writer for the connection
	done bool
}

// Write is not used: the body is in resp when Finalize runs (hertz sends
// Response.AppendBody here once a hijack writer is set; edgeloop sets it
// after the handlers are done).
func (w *bodyWriter) Write(p []byte) (int, error) {
	w.resp.HijackWriter(nil)
	w.resp.AppendBody(p)
	w.resp.HijackWriter(w)
	return len(p), nil
}

func (w *bodyWriter) Flush() error { return nil }

// Finalize writes the response. It falls back to hertz's own writer when
// the response turned out not to need it (HEAD, a body no longer large).
func (w *bodyWriter) Finalize() error {
	if w.done {
		return nil
	}
	w.done = true
	resp, zw := w.resp, w.zw
	w.resp, w.zw = nil, nil
	body := resp.BodyBytes()
	if resp.MustSkipBody() || resp.IsBodyStream() || len(body) < largeBody {
		resp.HijackWriter(nil)
		return hresp.Write(resp, zw)
	}
	resp.Header.SetContentLength(len(body))
	header := resp.Header.Header()
	resp.Header.SetHeaderLength(len(header))
	// Anything hertz still holds for this connection goes first.
	if err := zw.Flush(); err != nil {
		return err
	}
	return w.tc.writeTwo(header, body)
}

// writeLargeBody makes hertz write c's response through the connection's
// bodyWriter when its body is large and in memory. Called last in front,
// once every handler and middleware is done with the response.
func writeLargeBody(ctx context.Context, c *app.RequestContext) {
	if c.Response.IsBodyStream() || c.Response.SkipBody || len(c.Response.Body()) < largeBody {
		return
	}
	tc, _ := ctx.Value(connKey{}).(*trackedConn)
	if tc == nil || tc.fw == nil {
		return
	}
	w := &tc.bw
	w.tc, w.resp, w.zw, w.done = tc, &c.Response, c.GetWriter(), false
	c.Response.HijackWriter(w)
}

// writeTwo writes a and b (a response's header and body) in one writev(2),
// with the write timeout, as Write does.
func (c *trackedConn) writeTwo(a, b []byte) error {
	c.armWriteTimeout()
	_, err := c.fw.WriteTwo(a, b)
	c.pending.Store(false)
	c.served.Store(true)
	return err
}
