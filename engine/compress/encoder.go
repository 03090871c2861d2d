package compress

import (
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
)

// brotliWindowLog is the base-2 log of the brotli sliding window. The
// library's default is 22 (4 MiB); 19 (512 KiB) bounds the memory each
// pooled writer can hold on to, and web responses rarely repeat content more
// than 512 KiB apart, so the ratio barely moves.
const brotliWindowLog = 19

// maxPooledBuffer is the largest output buffer returned to the pool; bigger
// ones (from multi-megabyte in-memory bodies) are left to the GC so one large
// response does not pin its memory for the life of the process.
const maxPooledBuffer = 1 << 20

// encoder is what both klauspost/compress/gzip.Writer and
// andybalholm/brotli.Writer provide.
type encoder interface {
	io.Writer
	// Flush emits everything written so far as decodable output without
	// ending the stream.
	Flush() error
	// Close ends the stream (trailer included); it does not close the
	// underlying writer.
	Close() error
	// Reset discards all state and writes to w from now on.
	Reset(w io.Writer)
}

// encoderPools keeps reusable writers per coding at one level each: gzip and
// brotli writers cost tens to hundreds of KiB to set up, far more than the
// compression of a small body. Safe for concurrent use.
type encoderPools struct {
	pools [numEncodings]sync.Pool
}

func newEncoderPools(gzipLevel, brotliLevel int) *encoderPools {
	p := &encoderPools{}
	p.pools[Gzip].New = func() any {
		// The level was validated by New, so the error cannot happen.
		w, _ := gzip.NewWriterLevel(io.Discard, gzipLevel)
		return w
	}
	p.pools[Brotli].New = func() any {
		return brotli.NewWriterOptions(io.Discard, brotli.WriterOptions{
			Quality: brotliLevel,
			LGWin:   brotliWindowLog,
		})
	}
	return p
}

// get returns a writer for enc (Gzip or Brotli) that writes to dst.
func (p *encoderPools) get(enc Encoding, dst io.Writer) encoder {
	w := p.pools[enc].Get().(encoder)
	w.Reset(dst)
	return w
}

// put returns w to its pool. It points w at io.Discard first so the pool does
// not keep the last destination (a response's buffer) alive.
func (p *encoderPools) put(enc Encoding, w encoder) {
	w.Reset(io.Discard)
	p.pools[enc].Put(w)
}

// buffer is an append-only byte sink; pooled in bufferPool.
type buffer struct {
	b []byte
}

func (b *buffer) Write(p []byte) (int, error) {
	b.b = append(b.b, p...)
	return len(p), nil
}

var bufferPool = sync.Pool{New: func() any { return &buffer{b: make([]byte, 0, 4096)} }}

func getBuffer() *buffer {
	return bufferPool.Get().(*buffer)
}

func putBuffer(b *buffer) {
	if cap(b.b) > maxPooledBuffer {
		return
	}
	b.b = b.b[:0]
	bufferPool.Put(b)
}
