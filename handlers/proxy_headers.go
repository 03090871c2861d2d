package handlers

import (
	"net"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/protocol"
	"github.com/edgeloop/edgeloop/pool"
)

// viaValue is appended to Via in both directions (RFC 9110 §7.6.3).
const viaValue = "1.1 edgeloop"

// isHopByHop reports whether key is a connection-specific field that a
// proxy must not forward (RFC 9110 §7.6.1), or a framing field the proxy
// regenerates for the next hop (Content-Length, Transfer-Encoding:
// RFC 9112 §6). Upgrade is dropped: WebSockets are served by another route.
func isHopByHop(key []byte) bool {
	if len(key) < 2 {
		return false
	}
	switch key[0] | 0x20 {
	case 'c':
		return pool.EqualFold(key, "Connection") || pool.EqualFold(key, "Content-Length")
	case 'k':
		return pool.EqualFold(key, "Keep-Alive")
	case 'p':
		return pool.EqualFold(key, "Proxy-Connection") || pool.EqualFold(key, "Proxy-Authenticate") ||
			pool.EqualFold(key, "Proxy-Authorization")
	case 't':
		return pool.EqualFold(key, "TE") || pool.EqualFold(key, "Transfer-Encoding") || pool.EqualFold(key, "Trailer")
	case 'u':
		return pool.EqualFold(key, "Upgrade")
	}
	return false
}

// dropHeader reports whether a field must not be forwarded: hop-by-hop, or
// named by the message's Connection field (connList).
func dropHeader(key, connList []byte) bool {
	return isHopByHop(key) || (len(connList) > 0 && pool.HasToken(connList, key))
}

// requestHeadWriter writes the upstream request head. It lives in the
// Proxy's per-request state so the VisitAll callbacks are method values
// bound once, not closures allocated per request.
type requestHeadWriter struct {
	cc       *pool.Conn
	connList []byte
	xffSeen  bool
}

func (w *requestHeadWriter) field(key, value []byte) {
	switch {
	case dropHeader(key, w.connList),
		pool.EqualFold(key, "Host"),
		pool.EqualFold(key, "X-Forwarded-For"),
		pool.EqualFold(key, "X-Forwarded-Proto"),
		pool.EqualFold(key, "X-Forwarded-Host"):
		return
	}
	w.cc.WriteHeader(key, value)
}

// xff writes one incoming X-Forwarded-For value into the combined field.
func (w *requestHeadWriter) xff(key, value []byte) {
	if !pool.EqualFold(key, "X-Forwarded-For") || len(value) == 0 {
		return
	}
	bw := w.cc.HeadWriter()
	if !w.xffSeen {
		bw.WriteString("X-Forwarded-For: ")
		w.xffSeen = true
	} else {
		bw.WriteString(", ")
	}
	bw.Write(value)
}

// writeRequestHead writes the request line and fields for the upstream.
// Only path and query are sent (origin-form, RFC 9112 §3.2.1): an
// absolute-form target or a Host field never chooses where the request
// goes, only which Host the origin sees. host is the Host to send.
func (w *requestHeadWriter) writeRequestHead(c *app.RequestContext, host []byte, bodyLen int64) {
	req := &c.Request
	w.connList = req.Header.Peek("Connection")
	w.xffSeen = false
	w.cc.WriteRequestLine(req.Header.Method(), req.URI().RequestURI())
	w.cc.WriteHeader(hostKey, host)
	req.Header.VisitAll(w.field)

	// X-Forwarded-For: the incoming list plus the peer address.
	req.Header.VisitAll(w.xff)
	bw := w.cc.HeadWriter()
	if w.xffSeen {
		bw.WriteString(", ")
	} else {
		bw.WriteString("X-Forwarded-For: ")
	}
	bw.Write(appendClientIP(bw.AvailableBuffer(), c))
	bw.WriteString("\r\n")

	if string(req.URI().Scheme()) == "https" {
		w.cc.WriteHeaderString("X-Forwarded-Proto", "https")
	} else {
		w.cc.WriteHeaderString("X-Forwarded-Proto", "http")
	}
	if h := req.Header.Host(); len(h) > 0 {
		w.cc.WriteHeader(xfhKey, h)
	}
	// Existing Via fields were forwarded in order; ours comes last, which
	// is the same list as one combined field (RFC 9110 §5.3).
	w.cc.WriteHeaderString("Via", viaValue)
	w.cc.EndHead(bodyLen)
}

var (
	hostKey = []byte("Host")
	xfhKey  = []byte("X-Forwarded-Host")
)

// appendClientIP appends the address of the TCP peer (not any header).
func appendClientIP(dst []byte, c *app.RequestContext) []byte {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap().AppendTo(dst)
	case nil:
		return append(dst, "unknown"...)
	default:
		s := a.String()
		if host, _, err := net.SplitHostPort(s); err == nil {
			s = host
		}
		return append(dst, s...)
	}
}

// copyResponseHead copies the upstream status and end-to-end fields into
// the client response, appending our Via.
func copyResponseHead(dst *protocol.ResponseHeader, resp *pool.Response) {
	dst.SetStatusCode(resp.StatusCode)
	var connList []byte
	for i := range resp.Header {
		if pool.EqualFold(resp.Header[i].Key, "Connection") {
			connList = resp.Header[i].Value
			break
		}
	}
	for i := range resp.Header {
		k, v := resp.Header[i].Key, resp.Header[i].Value
		if dropHeader(k, connList) {
			continue
		}
		switch {
		case pool.EqualFold(k, "Date"):
			// Keep the origin's Date (RFC 9110 §6.6.1) instead of hertz's.
			dst.SetNoDefaultDate(true)
			dst.AddArgBytes(k, v, protocol.ArgsHasValue)
		case pool.EqualFold(k, "Content-Type"), pool.EqualFold(k, "Content-Encoding"),
			pool.EqualFold(k, "Server"), pool.EqualFold(k, "Set-Cookie"):
			dst.SetCanonical(k, v) // fields hertz keeps outside its generic list
		default:
			dst.AddArgBytes(k, v, protocol.ArgsHasValue)
		}
	}
	dst.AddArgBytes(viaKey, viaBytes, protocol.ArgsHasValue)
}

var (
	viaKey   = []byte("Via")
	viaBytes = []byte(viaValue)
)
