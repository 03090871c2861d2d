package compress

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/common/ut"
	"github.com/klauspost/compress/gzip"
)

// prose returns n bytes of deterministic text-like data: words drawn from a
// small vocabulary, so it compresses like real text rather than like a
// repeated string.
func prose(n int) []byte {
	words := []string{"edge", "cache", "origin", "stream", "brotli", "gzip", "header", "vary",
		"client", "request", "response", "proxy", "kernel", "socket", "latency", "the", "a", "of"}
	r := rand.New(rand.NewPCG(7, 9))
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, words[r.IntN(len(words))]...)
		if r.IntN(12) == 0 {
			b = append(b, ".\n"...)
		} else {
			b = append(b, ' ')
		}
	}
	return b[:n]
}

// shortReader returns at most max bytes per Read, like a socket under a slow
// origin.
type shortReader struct {
	r   io.Reader
	max int
}

func (s *shortReader) Read(p []byte) (int, error) {
	if len(p) > s.max {
		p = p[:s.max]
	}
	return s.r.Read(p)
}

func streamHandler(ct string, body []byte, size int, wrap func(io.Reader) io.Reader) app.HandlerFunc {
	return func(_ context.Context, rc *app.RequestContext) {
		rc.SetContentType(ct)
		var r io.Reader = bytes.NewReader(body)
		if wrap != nil {
			r = wrap(r)
		}
		rc.SetBodyStream(r, size)
	}
}

func TestStreamedBody(t *testing.T) {
	big := prose(5 << 20)
	short := func(r io.Reader) io.Reader { return &shortReader{r: r, max: 3000} }
	for _, tt := range []struct {
		name   string
		accept string
		size   int
		wrap   func(io.Reader) io.Reader
	}{
		{"gzip known length", "gzip", len(big), nil},
		{"br known length", "br", len(big), nil},
		{"gzip unknown length", "gzip", -1, nil},
		{"br short reads", "br", -1, short},
		{"gzip short reads", "gzip", len(big), short},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, Config{}, streamHandler("text/plain", big, tt.size, tt.wrap))
			w := ut.PerformRequest(e, "GET", "/x", nil, ae(tt.accept)...)
			h := w.Header()
			if ce := string(h.ContentEncoding()); ce != tt.accept {
				t.Fatalf("Content-Encoding %q, want %q", ce, tt.accept)
			}
			if cl := h.Peek("Content-Length"); len(cl) != 0 {
				t.Errorf("Content-Length %q on a coded stream", cl)
			}
			if te := h.Peek("Transfer-Encoding"); string(te) != "chunked" {
				t.Errorf("Transfer-Encoding %q, want chunked", te)
			}
			coded := w.Body.Bytes()
			if len(coded) >= len(big)/2 {
				t.Errorf("coded %d bytes from %d: not compressed", len(coded), len(big))
			}
			if got := decode(t, tt.accept, coded); !bytes.Equal(got, big) {
				t.Fatalf("decoded %d bytes, want the original %d", len(got), len(big))
			}
		})
	}
}

func TestStreamNotEligible(t *testing.T) {
	body := prose(4000)
	for _, tt := range []struct {
		name, ct string
		size     int
	}{
		{"declared too small", "text/plain", 100},
		{"image", "image/jpeg", len(body)},
	} {
		e := newEngine(t, Config{}, streamHandler(tt.ct, body[:max(tt.size, 0)], tt.size, nil))
		w := ut.PerformRequest(e, "GET", "/x", nil, ae("br, gzip")...)
		if ce := w.Header().ContentEncoding(); len(ce) != 0 {
			t.Errorf("%s: Content-Encoding %q, want none", tt.name, ce)
		}
		if !bytes.Equal(w.Body.Bytes(), body[:tt.size]) {
			t.Errorf("%s: body changed", tt.name)
		}
	}
}

// chanReader hands out one message per Read and blocks until the next one,
// like an event stream.
type chanReader struct {
	ch     chan []byte
	closed bool
}

func (c *chanReader) Read(p []byte) (int, error) {
	msg, ok := <-c.ch
	if !ok {
		return 0, io.EOF
	}
	return copy(p, msg), nil
}

func (c *chanReader) Close() error {
	c.closed = true
	return nil
}

// TestStreamFlushesShortReads checks that what a slow source has produced so
// far reaches the client decodable, without waiting for a full chunk or the
// end of the stream.
func TestStreamFlushesShortReads(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	src := &chanReader{ch: make(chan []byte, 1)}
	s := newStreamReader(c.encoders, Gzip, src)
	event := []byte("data: {\"price\": 42}\n\n")
	src.ch <- event

	var got []byte
	buf := make([]byte, 8)
	for len(got) == 0 || s.off < len(s.out.b) { // drain what the first event produced
		n, err := s.Read(buf)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		got = append(got, buf[:n]...)
	}
	zr, err := gzip.NewReader(bytes.NewReader(got))
	if err != nil {
		t.Fatalf("gzip header: %v", err)
	}
	plain := make([]byte, len(event))
	if _, err := io.ReadFull(zr, plain); err != nil || !bytes.Equal(plain, event) {
		t.Fatalf("decoded %q (%v) before the stream ended, want %q", plain, err, event)
	}

	close(src.ch)
	rest, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if got := decode(t, "gzip", append(got, rest...)); !bytes.Equal(got, event) {
		t.Fatalf("whole stream decodes to %q", got)
	}
	if err := s.Close(); err != nil || !src.closed {
		t.Fatalf("Close: %v, source closed %v", err, src.closed)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Read(buf); !errors.Is(err, errStreamClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

// TestStreamMemoryBounded codes 8 MiB and checks the reader never holds
// more than a bounded amount of output at a time.
func TestStreamMemoryBounded(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range []Encoding{Gzip, Brotli} {
		s := newStreamReader(c.encoders, enc, bytes.NewReader(prose(8<<20)))
		// The output buffer comes from a pool shared with whole-body
		// compression and the other encoder, so it may start larger
		// than this stream needs; what must not happen is growth past
		// the bound.
		startCap := cap(s.out.b)
		buf := make([]byte, 4096)
		maxCap := 0
		for {
			_, err := s.Read(buf)
			maxCap = max(maxCap, cap(s.out.b))
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%v: Read: %v", enc, err)
			}
		}
		// gzip emits about what it is fed; brotli emits whole meta-blocks,
		// which its window bounds.
		limit := 4 * streamChunk
		if enc == Brotli {
			limit = 1<<brotliWindowLog + streamChunk
		}
		if maxCap > max(limit, startCap) {
			t.Errorf("%v: output buffer grew to %d bytes from %d, want <= %d", enc, maxCap, startCap, limit)
		}
		t.Logf("%v: largest output buffer %d bytes (pooled buffer started at %d)", enc, maxCap, startCap)
		s.Close()
	}
}

type errReader struct{ n int }

var errOrigin = errors.New("origin reset")

func (e *errReader) Read(p []byte) (int, error) {
	if e.n == 0 {
		return 0, errOrigin
	}
	n := min(len(p), e.n)
	for i := range p[:n] {
		p[i] = 'a'
	}
	e.n -= n
	return n, nil
}

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

func TestStreamSourceFailures(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := newStreamReader(c.encoders, Brotli, &errReader{n: 100 << 10})
	if _, err := io.ReadAll(s); !errors.Is(err, errOrigin) {
		t.Errorf("source error: got %v, want %v", err, errOrigin)
	}
	s.Close()

	s = newStreamReader(c.encoders, Gzip, stuckReader{})
	if _, err := io.ReadAll(s); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("stuck source: got %v, want io.ErrNoProgress", err)
	}
	s.Close()
}
