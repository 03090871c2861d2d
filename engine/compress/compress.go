// Package compress is edgeloop's response compression middleware for hertz:
// it negotiates a content coding with the client (RFC 9110 §12.5.3), and
// compresses eligible responses with brotli or gzip, in memory for buffered
// bodies and chunk by chunk for streamed ones (the reverse proxy's).
package compress

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/protocol"
	"github.com/cloudwego/hertz/pkg/protocol/consts"
	"github.com/klauspost/compress/gzip"
)

// Errors returned by New.
var (
	ErrUnknownEncoding   = errors.New("compress: unknown content coding")
	ErrDuplicateEncoding = errors.New("compress: content coding listed twice")
	ErrBadLevel          = errors.New("compress: compression level out of range")
	ErrBadMinLength      = errors.New("compress: negative minimum length")
	ErrBadType           = errors.New("compress: malformed media type")
)

// Defaults for the zero Config.
//
// Levels were picked with BenchmarkCoding in compress_bench_test.go: the first
// 1 KiB and 64 KiB of $GOROOT/doc/go_spec.html, go1.26, on this 2-core VM
// while other builds ran (load average 8-12), so times are the minimum of
// 4-6 runs and only their ratios mean much; sizes are exact.
//
//	             1 KiB            64 KiB
//	level      µs   out B      ms   out B
//	gzip 1      8     631     0.23  22770
//	gzip 4     11     616     0.60  20666
//	gzip 5     11     615     0.85  19790
//	gzip 6     12     613     0.92  19562
//	gzip 9     39     608     7.9   18791
//	br 1       35     649     1.1   22264
//	br 3       28     635     3.4   20104
//	br 4       48     547     2.9   19491
//	br 5       43     512     5.9   18305
//	br 6       48     512     4.5   18160
//	br 9      109     511    22.9   17979
//
// gzip 5: levels 5 and 6 are within noise of each other in time and within
// 1.2% in size; 9 costs about 8x the CPU of 5 for 5% fewer bytes; 1 is 3-4x
// faster but 15% bigger at 64 KiB. brotli 5: the lowest quality whose output
// is clearly smaller than gzip 5's (-7.5% at 64 KiB, -17% at 1 KiB); brotli 4
// is only 1.5% smaller than gzip 5 at 64 KiB, so it would spend brotli's CPU
// for nothing, and 6 and 9 add under 2% more. Note that this brotli (pure Go)
// costs 3-7x the CPU of gzip 5 per byte at these sizes: list "gzip" first in
// Config.Encodings where CPU matters more than bytes on the wire.
const (
	defaultMinLength   = 512
	defaultGzipLevel   = 5
	defaultBrotliLevel = 5
)

// defaultEncodings is the server's preference when the client weighs
// several codings equally: brotli is smaller at the same CPU.
var defaultEncodings = []string{"br", "gzip"}

// Config configures a Compressor. The zero value is usable: every zero field
// takes the documented default.
type Config struct {
	// MinLength is the smallest body, in bytes, worth compressing; smaller
	// bodies are sent as they are, since coding overhead (headers, trailer,
	// the Vary-split cache entry) eats the gain. Bodies of unknown length
	// (streams without Content-Length) are always compressed. If zero, 512
	// is used; negative is an error.
	MinLength int
	// GzipLevel is the gzip level, 1 (fastest) to 9 (smallest). If zero, 5.
	GzipLevel int
	// BrotliLevel is the brotli quality, 1 to 11. If zero, 5. (Quality 0
	// cannot be chosen: 1 is nearly as fast.)
	BrotliLevel int
	// Types lists compressible media types, exact ("application/json") or a
	// whole top-level type ("text/*"), case-insensitive. Content-Type
	// parameters are ignored when matching. If empty, defaultTypes.
	Types []string
	// Encodings is the server's preference order among "br" and "gzip",
	// used to break ties between equally weighted codings. If empty,
	// ["br", "gzip"].
	Encodings []string
}

// Compressor is the compression middleware. It is safe for concurrent use;
// its configuration is read-only after New.
type Compressor struct {
	minLength int
	types     typeSet
	prefer    []Encoding
	encoders  *encoderPools
}

// New validates cfg, fills in defaults and returns a Compressor.
func New(cfg Config) (*Compressor, error) {
	if cfg.MinLength < 0 {
		return nil, fmt.Errorf("%w: %d", ErrBadMinLength, cfg.MinLength)
	}
	if cfg.MinLength == 0 {
		cfg.MinLength = defaultMinLength
	}
	if cfg.GzipLevel == 0 {
		cfg.GzipLevel = defaultGzipLevel
	}
	if cfg.GzipLevel < gzip.BestSpeed || cfg.GzipLevel > gzip.BestCompression {
		return nil, fmt.Errorf("%w: gzip level %d (want 1..9)", ErrBadLevel, cfg.GzipLevel)
	}
	if cfg.BrotliLevel == 0 {
		cfg.BrotliLevel = defaultBrotliLevel
	}
	if cfg.BrotliLevel < 1 || cfg.BrotliLevel > 11 {
		return nil, fmt.Errorf("%w: brotli level %d (want 1..11)", ErrBadLevel, cfg.BrotliLevel)
	}
	if len(cfg.Types) == 0 {
		cfg.Types = defaultTypes
	}
	types, err := newTypeSet(cfg.Types)
	if err != nil {
		return nil, err
	}
	if len(cfg.Encodings) == 0 {
		cfg.Encodings = defaultEncodings
	}
	prefer, err := parseEncodings(cfg.Encodings)
	if err != nil {
		return nil, err
	}
	return &Compressor{
		minLength: cfg.MinLength,
		types:     types,
		prefer:    prefer,
		encoders:  newEncoderPools(cfg.GzipLevel, cfg.BrotliLevel),
	}, nil
}

func parseEncodings(names []string) ([]Encoding, error) {
	var seen [numEncodings]bool
	prefer := make([]Encoding, 0, len(names))
	for _, name := range names {
		e, err := ParseEncoding(name)
		if err == nil && e == Identity {
			err = fmt.Errorf("%w: %q (identity is always allowed, not listed)", ErrUnknownEncoding, name)
		}
		if err != nil {
			return nil, err
		}
		if seen[e] {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateEncoding, name)
		}
		seen[e] = true
		prefer = append(prefer, e)
	}
	return prefer, nil
}

// Handler returns the hertz middleware. It runs the rest of the chain
// (ctx.Next) and then, for an eligible response:
//
//   - adds "Vary: Accept-Encoding" whenever the response itself qualifies,
//     even if this client gets identity, because the representation varies
//     with the request's Accept-Encoding (RFC 9110 §12.5.5);
//   - compresses with the negotiated coding, sets Content-Encoding, drops or
//     recomputes Content-Length, weakens a strong ETag and removes
//     Accept-Ranges (ranges of the coded bytes are not offered).
//
// A response qualifies when: nothing has been written through a hijacked
// writer yet; its status carries content (not 1xx, 204, 304) and is not 206;
// it has no Content-Encoding (never code twice) and no Content-Range; no
// "Cache-Control: no-transform" (RFC 9111 §5.2.2.6); its Content-Type is in
// Config.Types; its length, when known, is at least Config.MinLength. A
// request's own "Cache-Control: no-transform" (RFC 9111 §5.2.1.6) gets the
// identity coding.
//
// HEAD gets the header fields a GET would get (RFC 9110 §9.3.2) — the same
// Content-Encoding, Vary, weak ETag and no Accept-Ranges — with the
// Content-Length omitted, since it is known only by compressing, which a HEAD
// does not pay for. nginx differs: its gzip filter skips header-only
// responses, so HEAD and GET disagree there.
func (c *Compressor) Handler() app.HandlerFunc {
	return func(ctx context.Context, rc *app.RequestContext) {
		rc.Next(ctx)
		c.apply(rc)
	}
}

// apply compresses rc's response in place when it is eligible.
func (c *Compressor) apply(rc *app.RequestContext) {
	resp := &rc.Response
	head := rc.IsHead()
	if !c.qualifies(resp, head) {
		return
	}
	addVary(&resp.Header)
	enc := c.negotiate(&rc.Request.Header)
	if enc == Identity {
		countIdentity()
		return
	}
	switch {
	case head:
		resp.ResetBody()
		resp.Header.Del(hdrContentLength)
		resp.SkipBody = true
		setCodedHeaders(&resp.Header, enc)
		countHead(enc)
	case resp.IsBodyStream():
		resp.SetBodyStreamNoReset(newStreamReader(c.encoders, enc, resp.BodyStream()), -1)
		setCodedHeaders(&resp.Header, enc)
	default:
		if c.compressBody(resp, enc) {
			setCodedHeaders(&resp.Header, enc)
		}
	}
}

// qualifies applies the response-side eligibility rules (see Handler).
func (c *Compressor) qualifies(resp *protocol.Response, head bool) bool {
	h := &resp.Header
	status := h.StatusCode()
	switch {
	case resp.GetHijackWriter() != nil,
		h.MustSkipContentLength(), // 1xx, 204, 304: no content (RFC 9110 §6.4.1)
		status == consts.StatusPartialContent,
		len(h.ContentEncoding()) != 0,
		len(h.Peek(hdrContentRange)) != 0,
		!c.types.match(h.ContentType()),
		respHasToken(h, hdrCacheControl, "no-transform"):
		return false
	}
	n := -1
	switch {
	case resp.IsBodyStream():
		n = h.ContentLength() // -1: chunked or unknown
	case len(resp.BodyBytes()) > 0:
		n = len(resp.BodyBytes())
	case head:
		n = contentLengthKnown(h)
	default:
		n = 0
	}
	return n < 0 || n >= c.minLength
}

// negotiate picks the coding for this request across every Accept-Encoding
// line. Without allocating.
func (c *Compressor) negotiate(h *protocol.RequestHeader) Encoding {
	if reqHasToken(h, hdrCacheControl, "no-transform") {
		return Identity
	}
	var a acceptSet
	a.reset()
	for _, v := range h.PeekAll(hdrAcceptEnc) {
		a.parse(v)
	}
	return a.pick(c.prefer)
}

// setCodedHeaders marks the response as coded with enc.
func setCodedHeaders(h *protocol.ResponseHeader, enc Encoding) {
	h.SetContentEncoding(enc.String())
	weakenETag(h)
	h.Del(hdrAcceptRanges)
}

// compressBody codes an in-memory body into a pooled buffer and copies the
// result into the response. It reports false, leaving the body as it was,
// when coding fails or does not make the body smaller (mislabelled,
// already-compressed content).
func (c *Compressor) compressBody(resp *protocol.Response, enc Encoding) bool {
	body := resp.BodyBytes()
	buf := getBuffer()
	defer putBuffer(buf)
	w := c.encoders.get(enc, buf)
	_, err := w.Write(body)
	if err == nil {
		err = w.Close()
	}
	c.encoders.put(enc, w)
	if err != nil || len(buf.b) >= len(body) {
		countIncompressible()
		return false
	}
	countCompressed(enc, len(body), len(buf.b))
	resp.SetBody(buf.b)
	resp.Header.SetContentLength(len(buf.b))
	return true
}
