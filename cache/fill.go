package cache

import (
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"
)

// Fill stores a response while the proxy streams it to the client: the
// proxy copies each piece of the upstream body to the client and to
// Fill.Write. The fill keeps at most one freecache entry's worth of body in
// memory: small bodies are kept for an inline entry, larger ones are written
// out chunk by chunk as they arrive. A body that grows past
// Config.MaxObjectSize abandons the fill (counted); Write keeps returning
// success so the client copy is unaffected.
//
// A Fill is used by one goroutine. Commit or Abort must be called.
type Fill struct {
	c         *Cache
	primary   []byte
	names     []byte // encoded Vary names
	suffix    []byte // coding + Vary values
	tags      []string
	m         meta
	etag      []byte
	hdrs      []byte
	ttl       int
	epoch     uint64
	expectLen int64 // Content-Length, -1 unknown
	inlineCap int
	buf       []byte
	total     int64
	nchunks   uint32
	done      bool
	register  bool // add the URL to the purge index on commit
}

// BeginFill checks that the response to req (looked up as res) may be
// stored and prepares a Fill. The route and key come from res. reqTime
// and respTime are when the origin request was sent and the response
// headers arrived (RFC 9111 §4.2.3).
func (c *Cache) BeginFill(res *Result, req *protocol.Request, h *protocol.ResponseHeader, reqTime, respTime time.Time) (*Fill, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if !eqFold(req.Header.Method(), "get") {
		refusedNotStorable.Inc()
		return nil, ErrNotStorable
	}
	status := h.StatusCode()
	fs := fieldsOf(h)
	p := policyOf(fs, status, reqTime, respTime, res.route.defaultTTL(c.cfg.DefaultTTL))
	var rd Directives
	rd.Reset()
	for _, l := range req.Header.PeekAll("Cache-Control") {
		rd.Parse(l)
	}
	auth := len(req.Header.Peek("Authorization")) > 0
	if ok, _ := p.storable(status, &rd, auth); !ok {
		refusedNotStorable.Inc()
		return nil, ErrNotStorable
	}
	if p.contentLn > c.cfg.MaxObjectSize {
		tooBig.Inc()
		return nil, ErrTooBig
	}
	names, _ := varyNames(p.vary)
	enc := encodeNames(names)
	suffix := append([]byte{p.coding}, appendVaryValues(nil, &req.Header, enc)...)
	f := &Fill{
		c: c, primary: append([]byte(nil), res.primary...), names: enc, suffix: suffix,
		tags: p.tags, etag: p.etag, hdrs: encodeHeaders(storedFields(fs)),
		epoch: res.epoch, expectLen: p.contentLn, register: true,
	}
	if status == 204 || status == 304 {
		f.expectLen = 0
	}
	f.m = meta{status: uint16(status), coding: p.coding, fresh: p.freshnessOf(reqTime, respTime)}
	if !p.times.lastModified.IsZero() {
		f.m.lastMod = p.times.lastModified.Unix()
	}
	f.ttl = ttlSeconds(&f.m.fresh, len(p.etag) > 0 || f.m.lastMod != 0, c.grace(res.route), c.cfg.Retain)
	if err := f.init(); err != nil {
		return nil, err
	}
	return f, nil
}

// init computes the inline capacity; headers that cannot fit one entry
// make the object too big for this cache.
func (f *Fill) init() error {
	keyLen := 1 + len(f.primary) + 1 + 8 + len(f.suffix)
	f.inlineCap = f.c.entryLimit - keyLen - metaFixed - len(f.etag) - len(f.hdrs)
	if f.inlineCap < 0 || keyLen > 65535 || len(f.etag) > 65535 {
		tooBig.Inc()
		return ErrTooBig
	}
	return nil
}

// Write adds body bytes. It always reports len(p), nil.
func (f *Fill) Write(p []byte) (int, error) {
	n := len(p)
	if f.done {
		return n, nil
	}
	f.total += int64(n)
	if f.total > f.c.cfg.MaxObjectSize || (f.expectLen >= 0 && f.total > f.expectLen) {
		if f.total > f.c.cfg.MaxObjectSize {
			tooBig.Inc()
		}
		f.abandon()
		return n, nil
	}
	if !f.m.chunked() {
		if len(f.buf)+len(p) <= f.inlineCap {
			f.buf = append(f.buf, p...)
			return n, nil
		}
		f.m.flags |= fChunked
		f.m.chunkGen = f.c.newID()
		f.m.chunkSize = uint32(f.c.chunkSize())
	}
	cs := int(f.m.chunkSize)
	if cap(f.buf) < cs {
		nb := make([]byte, len(f.buf), cs)
		copy(nb, f.buf)
		f.buf = nb
	}
	for len(p) > 0 {
		take := min(cs-len(f.buf), len(p))
		f.buf = append(f.buf, p[:take]...)
		p = p[take:]
		if len(f.buf) == cs && !f.flush() {
			return n, nil
		}
	}
	return n, nil
}

// flush writes the buffered chunk.
func (f *Fill) flush() bool {
	if err := f.c.putChunk(f.m.chunkGen, f.nchunks, f.buf, f.ttl); err != nil {
		f.abandon()
		return false
	}
	f.nchunks++
	f.buf = f.buf[:0]
	return true
}

// Abort drops the fill (e.g. the upstream body broke off).
func (f *Fill) Abort() {
	if !f.done {
		f.abandon()
	}
}

func (f *Fill) abandon() {
	f.done = true
	fillsAbandoned.Inc()
	if f.m.chunked() {
		f.c.deleteChunks(f.m.chunkGen, f.nchunks)
	}
	f.buf = nil
}

// Commit stores the response. It fails with ErrAbandoned when the fill
// was abandoned, the body was shorter than Content-Length, or a purge ran
// since the Lookup that started it (the fetched response may predate the
// purge); with ErrIndexFull when the URL could not be indexed for purge.
func (f *Fill) Commit() error {
	if f.done {
		return ErrAbandoned
	}
	if f.expectLen >= 0 && f.total != f.expectLen {
		f.abandon()
		return ErrAbandoned
	}
	if f.m.chunked() && len(f.buf) > 0 && !f.flush() {
		return ErrAbandoned
	}
	c := f.c
	if c.epoch.Load() != f.epoch {
		f.abandon()
		return ErrAbandoned
	}
	if f.register {
		if err := c.urls.add(string(f.primary), f.tags, c.fc); err != nil {
			indexFull.Inc()
			f.abandon()
			return err
		}
	}
	f.done = true
	gen := c.updateIndex(f.primary, f.names, f.suffix, f.m.coding, f.ttl)
	vkey := appendEntryKey(make([]byte, 0, 1+len(f.primary)+9+len(f.suffix)), f.primary, gen, f.suffix)
	f.m.id = c.newID()
	f.m.bodyLen = f.total
	var body []byte
	if !f.m.chunked() {
		body = f.buf
	}
	value := encodeEntry(&f.m, f.etag, f.hdrs, body)
	if err := c.setEntry(vkey, value, f.ttl, f.m.chunkGen); err != nil {
		if f.m.chunked() {
			c.deleteChunks(f.m.chunkGen, f.nchunks)
		}
		return err
	}
	stores.Inc()
	storedBytes.Add(float64(len(value)) + float64(f.total-int64(len(body))))
	return nil
}

// updateIndex adds a variant to the URL's index and returns the generation.
func (c *Cache) updateIndex(primary, names, suffix []byte, coding uint8, ttl int) uint64 {
	ikey := append([]byte{'i'}, primary...)
	var gen uint64
	_, _, _ = c.fc.Update(ikey, func(old []byte, found bool) ([]byte, bool, int) {
		var nv []byte
		nv, gen = addVariant(old, found, names, suffix, coding, c.newID)
		return nv, true, ttl
	})
	return gen
}
