package pool

import (
	"fmt"
	"io"
)

const (
	bodyNone uint8 = iota
	bodyFixed
	bodyChunked
	bodyUntilClose
)

// Body streams an upstream response body straight from the connection's
// read buffer: nothing beyond that buffer is held, whatever the body size.
// It is not safe for concurrent use. Close returns the connection to the
// pool when the body was read to its end on a keep-alive connection, and
// closes the connection otherwise (a client that went away mid-download
// costs one connection, never a drain of the rest of the body).
type Body struct {
	c      *Conn
	mode   uint8
	remain int64 // bytes left: of the body (fixed) or of the current chunk
	crlf   bool  // a chunk's data was read; its CRLF is next
	done   bool  // the body was read to its end
	closed bool
	err    error
}

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.mode == bodyChunked && b.remain == 0 {
		if err := b.nextChunk(); err != nil {
			b.err = err
			return 0, err
		}
		if b.done {
			return 0, io.EOF
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.mode != bodyUntilClose && int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	c := b.c
	if c.br.Buffered() == 0 {
		// An origin that stalls mid-body must not hold the client forever.
		c.setReadTimeout(c.readTimeout)
	}
	n, err := c.br.Read(p)
	switch b.mode {
	case bodyUntilClose:
		if err == io.EOF {
			b.done = true
		}
	default:
		b.remain -= int64(n)
		if b.remain == 0 {
			if b.mode == bodyFixed {
				b.done = true
			} else {
				b.crlf = true
			}
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// nextChunk reads the CRLF after the previous chunk and the next chunk-size
// line (RFC 9112 §7.1); at the last chunk it reads and drops the trailer
// section, which a proxy must not merge into the header (RFC 9110 §6.5.1).
func (b *Body) nextChunk() error {
	br := b.c.br
	if b.c.br.Buffered() == 0 {
		b.c.setReadTimeout(b.c.readTimeout)
	}
	if b.crlf {
		line, err := br.ReadSlice('\n')
		if err != nil || (len(line) != 2 && len(line) != 1) {
			return fmt.Errorf("%w: chunk not followed by CRLF", ErrMalformedResponse)
		}
		b.crlf = false
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("%w: chunk size: %v", ErrMalformedResponse, err)
	}
	var size int64
	digits := 0
	for _, ch := range line {
		var d byte
		switch {
		case ch >= '0' && ch <= '9':
			d = ch - '0'
		case ch >= 'a' && ch <= 'f':
			d = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			d = ch - 'A' + 10
		default:
			d = 0xff
		}
		if d == 0xff {
			break
		}
		if digits++; digits > 15 {
			return fmt.Errorf("%w: chunk size too large", ErrMalformedResponse)
		}
		size = size<<4 | int64(d)
	}
	if digits == 0 {
		return fmt.Errorf("%w: chunk size %q", ErrMalformedResponse, line)
	}
	if size > 0 {
		b.remain = size
		return nil
	}
	for { // trailer section, ended by an empty line
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("%w: trailer: %v", ErrMalformedResponse, err)
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			b.done = true
			return nil
		}
	}
}

// Close ends the exchange; see Body. It is idempotent.
func (b *Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	c := b.c
	if b.done && c.resp.keepAlive {
		c.up.put(c)
	} else {
		c.up.discard(c)
	}
	return nil
}

// Done reports whether the body was read to its end.
func (b *Body) Done() bool { return b.done }
