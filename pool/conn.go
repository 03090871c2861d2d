package pool

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/edgeloop/edgeloop/internal/fairpoll"
)

// Body framing values for (*Conn).EndHead.
const (
	// NoBody sends no framing header and no body (GET, HEAD, ...).
	NoBody int64 = -2
	// Chunked sends the body with Transfer-Encoding: chunked (RFC 9112 §7.1).
	Chunked int64 = -1
)

// Conn is one upstream connection, lent out by Acquire for one request and
// response. It is not safe for concurrent use. The caller writes the request
// head with WriteRequestLine, WriteHeader and EndHead, sends the body with
// SendBody, reads the response with ReadResponse, then either closes
// Response.Body (which returns the connection to the pool when the body was
// read to its end, or closes it otherwise) or calls Release on an error.
type Conn struct {
	up *Upstream
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	// fr and fw read and write nc in arrival order (UpstreamConfig.ArrivalOrder);
	// nil otherwise. Deadlines then go through them (setReadDeadline).
	fr       *fairpoll.Reader
	fw       *fairpoll.Writer
	rto, wto time.Duration // the call timeouts fr and fw have (-1: none set yet)
	// waitFirst: fr waits for the netpoller before reading when the last
	// read emptied the socket (fairpoll.Reader.WaitFirst).
	waitFirst bool
	lastUsed  time.Time
	reused    bool // taken from the idle pool: it may have been closed by the origin

	readTimeout time.Duration
	resp        Response
	body        Body
	head        []byte // response status line and header bytes, reused
	limited     io.LimitedReader
	chunkBuf    []byte // lazily allocated for chunked uploads
}

// setReadTimeout bounds the waits of the connection's next reads by d
// (none if d <= 0). Through the fairpoll reader, when there is one, each
// read that has to wait fails after waiting d, like nginx's
// proxy_read_timeout, set once and read no clock unless a read waits
// (fairpoll.Slack); otherwise the deadline is now+d.
func (c *Conn) setReadTimeout(d time.Duration) {
	if c.fr != nil {
		if d != c.rto {
			c.fr.SetCallTimeout(d)
			c.rto = d
		}
		return
	}
	_ = c.nc.SetReadDeadline(deadlineIn(d))
}

// setWriteTimeout is setReadTimeout for writes.
func (c *Conn) setWriteTimeout(d time.Duration) {
	if c.fw != nil {
		if d != c.wto {
			c.fw.SetCallTimeout(d)
			c.wto = d
		}
		return
	}
	_ = c.nc.SetWriteDeadline(deadlineIn(d))
}

// deadlineIn returns the deadline d from now, or none if d <= 0.
func deadlineIn(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// Reused reports whether the connection came from the idle pool.
func (c *Conn) Reused() bool { return c.reused }

// Release gives back a connection whose exchange failed or was abandoned:
// it is closed, since its stream position is unknown.
func (c *Conn) Release() { c.up.discard(c) }

// WriteRequestLine writes "METHOD target HTTP/1.1". target must be in
// origin-form (path and query, RFC 9112 §3.2.1).
func (c *Conn) WriteRequestLine(method, target []byte) {
	c.bw.Write(method)
	c.bw.WriteByte(' ')
	if len(target) == 0 {
		c.bw.WriteByte('/')
	} else {
		c.bw.Write(target)
	}
	c.bw.WriteString(" HTTP/1.1\r\n")
}

// WriteHeader writes one header field. The caller has already removed
// framing and hop-by-hop fields.
func (c *Conn) WriteHeader(key, value []byte) {
	c.bw.Write(key)
	c.bw.WriteString(": ")
	c.bw.Write(value)
	c.bw.WriteString("\r\n")
}

// WriteHeaderString is WriteHeader for constant names and values.
func (c *Conn) WriteHeaderString(key, value string) {
	c.bw.WriteString(key)
	c.bw.WriteString(": ")
	c.bw.WriteString(value)
	c.bw.WriteString("\r\n")
}

// HeadWriter returns the buffered writer of the request head, for fields
// built in place with the AvailableBuffer idiom (no scratch allocation).
func (c *Conn) HeadWriter() *bufio.Writer { return c.bw }

// EndHead writes the framing header for a body of n bytes (or NoBody,
// Chunked) and the blank line ending the head.
func (c *Conn) EndHead(n int64) {
	switch {
	case n >= 0:
		c.bw.WriteString("Content-Length: ")
		c.bw.Write(strconv.AppendInt(c.bw.AvailableBuffer(), n, 10))
		c.bw.WriteString("\r\n\r\n")
	case n == Chunked:
		c.bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	default:
		c.bw.WriteString("\r\n")
	}
}

// SendBody streams body (n bytes, or Chunked until EOF, or NoBody) and
// flushes. The body is copied through the connection's write buffer, never
// held whole. writeTimeout, when positive, bounds the send from when it
// first has to wait for the socket.
func (c *Conn) SendBody(body io.Reader, n int64, writeTimeout time.Duration) error {
	c.setWriteTimeout(writeTimeout)
	switch {
	case n > 0:
		c.limited = io.LimitedReader{R: body, N: n}
		m, err := c.bw.ReadFrom(&c.limited)
		c.limited.R = nil
		if err != nil {
			return err
		}
		if m < n {
			return ErrBodyLength
		}
	case n == Chunked && body != nil:
		if err := c.sendChunked(body); err != nil {
			return err
		}
	}
	return c.bw.Flush()
}

// SendBodyBytes sends an in-memory body of exactly len(p) bytes and flushes.
func (c *Conn) SendBodyBytes(p []byte, writeTimeout time.Duration) error {
	c.setWriteTimeout(writeTimeout)
	c.bw.Write(p)
	return c.bw.Flush()
}

// sendChunked writes body as HTTP/1.1 chunks (RFC 9112 §7.1), one per read
// into the write buffer's free space.
func (c *Conn) sendChunked(body io.Reader) error {
	if c.chunkBuf == nil {
		c.chunkBuf = make([]byte, writeBufSize-32)
	}
	buf := c.chunkBuf
	for {
		n, err := body.Read(buf)
		if n > 0 {
			c.bw.Write(strconv.AppendInt(c.bw.AvailableBuffer(), int64(n), 16))
			c.bw.WriteString("\r\n")
			c.bw.Write(buf[:n])
			if _, werr := c.bw.WriteString("\r\n"); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			_, werr := c.bw.WriteString("0\r\n\r\n")
			return werr
		}
		if err != nil {
			return err
		}
	}
}
