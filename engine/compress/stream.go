package compress

import (
	"errors"
	"io"
	"sync"
)

// streamChunk is how much of a streamed body is read and coded at a time. A
// stream holds one input chunk, the encoder's state and the output not yet
// read: about one chunk for gzip, at most one brotli meta-block (bounded by
// the 512 KiB window, ~230 KiB seen on text) for brotli.
const streamChunk = 32 << 10

// maxEmptyReads bounds how many (0, nil) reads from a source are tolerated
// in a row before giving up with io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

var errStreamClosed = errors.New("compress: read from closed stream")

var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, streamChunk)
	return &b
}}

// streamReader codes a streamed response body on the fly. hertz pulls from
// it (Read) as it writes the response, so the body is compressed chunk by
// chunk in the caller's goroutine: no pipe, no goroutine per response, no
// buffering of the whole body.
//
// When a source read comes back short (the source had nothing more ready,
// as with server-sent events or a slow origin) the encoder is flushed so the
// client gets what exists now instead of waiting for a full chunk; a bulk
// transfer fills its chunks and is coded at full ratio.
//
// Like any hertz body stream it is used by one goroutine at a time: Read and
// Close must not run concurrently.
type streamReader struct {
	pools *encoderPools
	enc   Encoding
	src   io.Reader

	w   encoder // nil once returned to the pool
	in  *[]byte // pooled input chunk; nil after Close
	out *buffer // pooled; out.b[off:] is coded output not yet read
	off int
	err error // sticky: io.EOF once the trailer has been read, or the failure

	nIn, nOut int
}

func newStreamReader(pools *encoderPools, enc Encoding, src io.Reader) *streamReader {
	s := &streamReader{
		pools: pools,
		enc:   enc,
		src:   src,
		in:    chunkPool.Get().(*[]byte),
		out:   getBuffer(),
	}
	s.w = pools.get(enc, s.out)
	return s
}

// Read returns coded bytes. It never returns 0, nil for a non-empty p (hertz
// treats that as a bug).
func (s *streamReader) Read(p []byte) (int, error) {
	if s.out == nil {
		return 0, errStreamClosed
	}
	for s.off == len(s.out.b) {
		if s.err != nil {
			return 0, s.err
		}
		s.out.b, s.off = s.out.b[:0], 0
		s.err = s.fill()
		s.nOut += len(s.out.b)
		if s.err == io.EOF {
			countCompressed(s.enc, s.nIn, s.nOut)
		}
	}
	n := copy(p, s.out.b[s.off:])
	s.off += n
	return n, nil
}

// fill reads one chunk from the source and codes it into s.out.
func (s *streamReader) fill() error {
	buf := *s.in
	var n int
	var err error
	for empty := 0; n == 0 && err == nil; empty++ {
		if empty == maxEmptyReads {
			return io.ErrNoProgress
		}
		n, err = s.src.Read(buf)
	}
	s.nIn += n
	if _, werr := s.w.Write(buf[:n]); werr != nil {
		return werr
	}
	switch {
	case err == io.EOF:
		if cerr := s.w.Close(); cerr != nil {
			return cerr
		}
		s.releaseEncoder()
		return io.EOF
	case err != nil:
		return err
	case n < len(buf):
		return s.w.Flush()
	}
	return nil
}

func (s *streamReader) releaseEncoder() {
	if s.w != nil {
		s.pools.put(s.enc, s.w)
		s.w = nil
	}
}

// Close returns the pooled encoder and buffers and closes the source if it
// is an io.Closer (hertz closes body streams once written or abandoned, and
// the proxy's upstream body must go back to its connection pool). Close is
// idempotent.
func (s *streamReader) Close() error {
	if s.out == nil {
		return nil
	}
	s.releaseEncoder()
	chunkPool.Put(s.in)
	putBuffer(s.out)
	s.in, s.out = nil, nil
	if c, ok := s.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
