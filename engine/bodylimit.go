package engine

import (
	"errors"
	"io"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/protocol/consts"
)

// errBodyTooLarge is what a handler reading a chunked body sees past the limit.
var errBodyTooLarge = errors.New("request body too large")

// limitBody enforces limits.max_body_size. hertz checks the limit itself only
// for bodies it reads whole; edgeloop streams request bodies, so a declared
// Content-Length over the limit is refused here before any handler runs, and
// a chunked body is wrapped so that reading past the limit fails. It reports
// whether the request may go on.
func (s *Server) limitBody(c *app.RequestContext) bool {
	max := int64(s.cfg.Limits.MaxBodySize)
	n := c.Request.Header.ContentLength()
	if int64(n) > max {
		c.SetConnectionClose()
		writeError(c, consts.StatusRequestEntityTooLarge, "request body too large")
		return false
	}
	if n == -1 && c.Request.IsBodyStream() { // chunked
		c.Request.SetBodyStream(&limitedBody{r: c.Request.BodyStream(), left: max}, -1)
	}
	return true
}

// limitedBody fails a read that goes past the body limit.
type limitedBody struct {
	r       io.Reader
	left    int64
	tripped bool
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.tripped = true
		return n, errBodyTooLarge
	}
	return n, err
}
