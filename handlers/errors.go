package handlers

import (
	"errors"
	"os"
	"syscall"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/edgeloop/edgeloop/pool"
)

// Errors returned by NewProxy.
var (
	ErrNoUpstreams    = errors.New("handlers: proxy route has no upstreams")
	ErrBadHostHeader  = errors.New(`handlers: host header mode must be "preserve" or "upstream"`)
	ErrBadProxyConfig = errors.New("handlers: bad proxy config")
)

// Short text reasons sent to clients with a 502 or 504 (RFC 9110 §15.6.3,
// §15.6.5). They name the failure without exposing upstream addresses.
const (
	reasonRefused     = "502 Bad Gateway: upstream connection refused\n"
	reasonDialTimeout = "502 Bad Gateway: upstream connect timed out\n"
	reasonUnreachable = "502 Bad Gateway: upstream unreachable\n"
	reasonWrite       = "502 Bad Gateway: upstream write failed\n"
	reasonClosed      = "502 Bad Gateway: upstream closed the connection\n"
	reasonMalformed   = "502 Bad Gateway: upstream sent a malformed response\n"
	reasonUpgrade     = "502 Bad Gateway: upstream switched protocols\n"
	reasonTimeout     = "504 Gateway Timeout: upstream response timed out\n"
	reasonPoolBusy    = "502 Bad Gateway: upstream connection pool exhausted\n"
)

// dialReason names a failed connect for the client.
func dialReason(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return reasonRefused
	case errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return reasonDialTimeout
	case errors.Is(err, pool.ErrDial):
		return reasonUnreachable
	}
	return reasonPoolBusy
}

// readReason names a failed exchange and its status: 504 for a timeout.
func readReason(err error) (reason string, status int) {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return reasonTimeout, 504
	case errors.Is(err, pool.ErrMalformedResponse), errors.Is(err, pool.ErrHeaderTooLarge):
		return reasonMalformed, 502
	case errors.Is(err, errWrite):
		return reasonWrite, 502
	}
	return reasonClosed, 502
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// writeError replaces whatever response was being built by status and a
// one-line text reason.
func writeError(c *app.RequestContext, status int, reason string) {
	c.Response.Reset()
	c.Response.SetStatusCode(status)
	c.Response.Header.SetContentTypeBytes(textPlain)
	c.Response.SetBodyString(reason)
}

var textPlain = []byte("text/plain; charset=utf-8")
