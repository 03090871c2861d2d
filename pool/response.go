package pool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"syscall"
	"time"
)

// ErrStaleConn means a pooled connection was closed by the origin before it
// sent any byte of the response: the keep-alive race of RFC 9112 §9.3.1.
// A request without a streamed body may be retried on a fresh connection.
var ErrStaleConn = errors.New("pool: reused connection closed by upstream before responding")

// Header is one response header field. Key and Value alias the connection's
// buffer: they are valid until Response.Body is closed.
type Header struct{ Key, Value []byte }

// Response is the head of an upstream response and its streaming body.
// It belongs to its Conn and is reused by the next exchange on it.
type Response struct {
	StatusCode int
	Header     []Header
	// ContentLength is the declared length, or -1 when the body is chunked
	// or delimited by the connection closing. For HEAD it is the length the
	// origin declared although no body follows.
	ContentLength int64
	// Body streams the body. Close it exactly once.
	Body      *Body
	keepAlive bool
	sawLength bool       // a Content-Length field was present
	offsets   [][4]int32 // key and value bounds in Conn.head while parsing
}

// ReadResponse reads the response head, skipping interim 1xx responses
// other than 101 (RFC 9110 §15.2). timeout bounds the wait for the head and,
// afterwards, each read of the body that must wait on the network (with
// UpstreamConfig.ArrivalOrder, each read of the head too, like nginx's
// proxy_read_timeout); if zero, 30s is used. isHead tells that the request was HEAD, whose response has
// no body (RFC 9110 §9.3.2). A deadline hit matches os.ErrDeadlineExceeded.
func (c *Conn) ReadResponse(timeout time.Duration, isHead bool) (*Response, error) {
	if timeout <= 0 {
		timeout = defaultReadTimeout
	}
	c.readTimeout = timeout
	c.setReadTimeout(timeout)
	switch {
	case c.waitFirst && c.br.Buffered() == 0:
		// The read waits for the netpoller before it reads (when the
		// last read emptied the socket, as on every reused connection),
		// so neither the send's completion nor the other requests' turns
		// need waiting for here. A send still in the
		// ring's batch goes out with it; its result is collected by the
		// next write on the connection (a failed send shows here as the
		// origin's reset or close, and one that cannot finish as the read
		// timeout).
	case c.fw != nil && c.fw.Pending():
		// The request went to the ring's next batch: wait until it is
		// sent (the batch goes out after the other runnable requests had
		// their turn, which is what the yield below is for otherwise).
		if err := c.fw.Sync(); err != nil {
			return nil, err
		}
	case c.br.Buffered() == 0:
		// The request was just sent and its answer is almost never there
		// yet: reading now would cost a read(2) that fails with EAGAIN
		// before the wait for it. Let the other runnable requests go first;
		// when there are none this returns at once.
		runtime.Gosched()
	}
	r := &c.resp
	for {
		if err := c.readHead(r); err != nil {
			if len(c.head) == 0 && c.reused && isConnGone(err) {
				return nil, ErrStaleConn
			}
			return nil, err
		}
		if r.StatusCode >= 200 || r.StatusCode == 101 {
			break
		}
	}
	b := &c.body
	mode := b.mode
	*b = Body{c: c}
	r.Body = b
	switch {
	case isHead || r.StatusCode < 200 || r.StatusCode == 204 || r.StatusCode == 304:
		b.done = true
		if r.StatusCode == 101 {
			r.keepAlive = false
		}
	case mode == bodyChunked:
		b.mode = bodyChunked
		r.ContentLength = -1
		if r.sawLength {
			// Transfer-Encoding with Content-Length: close after (RFC 9112 §6.3).
			r.keepAlive = false
		}
	case mode == bodyUntilClose || r.ContentLength < 0:
		b.mode = bodyUntilClose
		r.ContentLength = -1
		r.keepAlive = false
	default:
		b.mode = bodyFixed
		b.remain = r.ContentLength
		b.done = r.ContentLength == 0
	}
	return r, nil
}

func isConnGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// readLine appends one line (without CRLF) to c.head and returns its bounds.
func (c *Conn) readLine() (int, int, error) {
	start := len(c.head)
	for {
		frag, err := c.br.ReadSlice('\n')
		c.head = append(c.head, frag...)
		if len(c.head) > maxHeaderBytes {
			return 0, 0, ErrHeaderTooLarge
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		end := len(c.head) - 1
		if end > start && c.head[end-1] == '\r' {
			end--
		}
		return start, end, nil
	}
}

// readHead parses a status line and header section (RFC 9112 §4, §5).
func (c *Conn) readHead(r *Response) error {
	c.head = c.head[:0]
	r.offsets = r.offsets[:0]
	r.Header = r.Header[:0]
	r.ContentLength = -1
	r.sawLength = false
	c.body.mode = bodyNone
	s, e, err := c.readLine()
	if err != nil {
		return err
	}
	line := c.head[s:e]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		line[9] < '0' || line[9] > '9' || line[10] < '0' || line[10] > '9' || line[11] < '0' || line[11] > '9' {
		return fmt.Errorf("%w: status line %q", ErrMalformedResponse, line)
	}
	r.StatusCode = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	r.keepAlive = line[7] == '1' // HTTP/1.0 connections are not reused
	for {
		s, e, err := c.readLine()
		if err != nil {
			return err
		}
		if s == e {
			break
		}
		line := c.head[s:e]
		colon := bytes.IndexByte(line, ':')
		// No obs-fold and no whitespace before the colon (RFC 9112 §5.1, §5.2).
		if colon <= 0 || !isToken(line[:colon]) {
			return fmt.Errorf("%w: header line %q", ErrMalformedResponse, line)
		}
		vs, ve := colon+1, len(line)
		for vs < ve && (line[vs] == ' ' || line[vs] == '\t') {
			vs++
		}
		for ve > vs && (line[ve-1] == ' ' || line[ve-1] == '\t') {
			ve--
		}
		if err := c.noteHeader(r, line[:colon], line[vs:ve]); err != nil {
			return err
		}
		r.offsets = append(r.offsets, [4]int32{int32(s), int32(s + colon), int32(s + vs), int32(s + ve)})
	}
	for _, o := range r.offsets {
		r.Header = append(r.Header, Header{Key: c.head[o[0]:o[1]:o[1]], Value: c.head[o[2]:o[3]:o[3]]})
	}
	return nil
}

// noteHeader records the framing and connection fields of a response.
func (c *Conn) noteHeader(r *Response, key, value []byte) error {
	switch {
	case asciiEqualFold(key, "Content-Length"):
		n, ok := parseDecimal(value)
		if !ok || (r.sawLength && r.ContentLength != n) {
			return fmt.Errorf("%w: content-length %q", ErrMalformedResponse, value)
		}
		r.sawLength = true
		r.ContentLength = n
	case asciiEqualFold(key, "Transfer-Encoding"):
		// Transfer-Encoding overrides Content-Length (RFC 9112 §6.3).
		if lastTokenIs(value, "chunked") {
			c.body.mode = bodyChunked
		} else {
			c.body.mode = bodyUntilClose
		}
	case asciiEqualFold(key, "Connection"):
		if HasToken(value, "close") {
			r.keepAlive = false
		}
	}
	return nil
}

// isToken reports whether b is a field name: one or more tchar (RFC 9110 §5.6.2).
func isToken(b []byte) bool {
	for _, ch := range b {
		if !tchar[ch] {
			return false
		}
	}
	return len(b) > 0
}

var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}
