package cache

import (
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"
)

// Refresh applies a 304 Not Modified from the origin to the stored
// response res was looked up for (RFC 9111 §4.3.3, §4.3.4): the stored
// header fields are replaced by those in the 304 (except Content-Length and
// the fields the stored body depends on, §3.2), freshness is recomputed
// from the merged fields and the new request/response times, and res is
// updated so Serve sends the refreshed response with the stored body.
//
// If the 304 carries an ETag that does not match the stored one,
// ErrValidatorMismatch is returned and nothing changes: fetch again without
// conditionals. If the merged fields no longer allow storing (e.g. the 304
// says no-store), the entry is kept for this response only, marked stale and
// no-cache.
func (c *Cache) Refresh(res *Result, h *protocol.ResponseHeader, reqTime, respTime time.Time) error {
	if !res.found {
		return ErrNoEntry
	}
	v, err := c.fc.Get(res.vkey)
	if err != nil {
		return ErrNoEntry
	}
	var m meta
	if !decodeMeta(v, &m) || m.id != res.m.id {
		return ErrNoEntry
	}
	etag := v[metaFixed : metaFixed+int(m.etagLen)]
	newFs := fieldsOf(h)
	for _, f := range newFs {
		if eqFold(f.k, "etag") && string(weakless(trimOWS(f.v))) != string(weakless(etag)) {
			return ErrValidatorMismatch
		}
	}
	merged := mergeFields(decodeHeaders(v[metaFixed+int(m.etagLen):m.bodyOffset()]), storedFields(newFs))
	p := policyOf(merged, int(m.status), reqTime, respTime, res.route.defaultTTL(c.cfg.DefaultTTL))
	var none Directives
	none.Reset()
	m.fresh = p.freshnessOf(reqTime, respTime)
	if ok, _ := p.storable(int(m.status), &none, false); !ok {
		m.fresh.lifetime, m.fresh.noCache = 0, true
	}
	if !p.times.lastModified.IsZero() {
		m.lastMod = p.times.lastModified.Unix()
	}
	if len(p.etag) > 0 {
		etag = p.etag
	}
	m.id = c.newID()
	var body []byte
	if !m.chunked() {
		body = v[m.bodyOffset():]
	}
	value := encodeEntry(&m, etag, encodeHeaders(merged), body)
	ttl := ttlSeconds(&m.fresh, len(etag) > 0 || m.lastMod != 0, c.grace(res.route), c.cfg.Retain)
	if len(res.vkey)+len(value) > c.entryLimit {
		c.fc.Del(res.vkey)
		return ErrTooBig
	}
	if err := c.setEntry(res.vkey, value, ttl, m.chunkGen); err != nil {
		return err
	}
	if m.chunked() {
		c.touchChunks(m.chunkGen, numChunks(m.bodyLen, m.chunkSize), ttl)
	}
	refreshes.Inc()
	if !res.onMetaOK(value) {
		return ErrCorrupt
	}
	res.dec = decide(&res.m.fresh, &none, false, c.now(), c.grace(res.route))
	res.status.TTL, res.status.HasTTL = int64(res.dec.ttl/time.Second), true
	return nil
}

func (r *Result) onMetaOK(v []byte) bool { return r.onMeta(v) == nil }

// mergeFields replaces stored fields by same-named new ones (§3.2).
func mergeFields(stored, fresh []field) []field {
	keep := func(k []byte) bool {
		return !eqFold(k, "content-encoding") && !eqFold(k, "content-range") && !eqFold(k, "content-type")
	}
	out := make([]field, 0, len(stored)+len(fresh))
	for _, s := range stored {
		replaced := false
		for _, f := range fresh {
			if keep(f.k) && eqFoldBytes(s.k, f.k) {
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, s)
		}
	}
	for _, f := range fresh {
		if keep(f.k) {
			out = append(out, f)
		}
	}
	return out
}

// StoreEncoded stores body, the stored identity response of res encoded
// with coding ("br", "gzip", "zstd", "deflate"), as another variant of the
// same URL, so later clients accepting that coding are served without
// compression CPU. The variant shares the identity response's freshness
// (it ages with it), carries Content-Encoding and Vary: Accept-Encoding,
// and a weakened ETag (the bytes differ, RFC 9110 §8.8.3).
func (c *Cache) StoreEncoded(res *Result, coding string, body []byte) error {
	cd := codingByName(coding)
	if !res.found || res.m.coding != codingIdentity || cd == codingUnknown || cd == codingIdentity {
		return ErrNotStorable
	}
	v, err := c.fc.Get(res.vkey)
	if err != nil {
		return ErrNoEntry
	}
	var m meta
	if !decodeMeta(v, &m) || m.id != res.m.id {
		return ErrNoEntry
	}
	if int64(len(body)) > c.cfg.MaxObjectSize {
		tooBig.Inc()
		return ErrTooBig
	}
	fs := decodeHeaders(v[metaFixed+int(m.etagLen) : m.bodyOffset()])
	out := make([]field, 0, len(fs)+2)
	hasVaryAE := false
	for _, f := range fs {
		switch {
		case eqFold(f.k, "content-encoding"), eqFold(f.k, "content-length"):
			continue
		case eqFold(f.k, "etag"):
			f.v = weakETag(f.v)
		case eqFold(f.k, "vary"):
			hasVaryAE = hasVaryAE || hasToken(f.v, "accept-encoding")
		}
		out = append(out, f)
	}
	out = append(out, field{[]byte("Content-Encoding"), []byte(codingNames[cd])})
	if !hasVaryAE {
		out = append(out, field{[]byte("Vary"), []byte("Accept-Encoding")})
	}
	etag := v[metaFixed : metaFixed+int(m.etagLen)]
	if len(etag) > 0 {
		etag = weakETag(etag)
	}
	suffix := append([]byte{cd}, res.vkey[1+len(res.primary)+1+8+1:]...)
	f := &Fill{
		c: c, primary: append([]byte(nil), res.primary...), names: append([]byte(nil), res.names...),
		suffix: suffix, etag: etag, hdrs: encodeHeaders(out), epoch: res.epoch, expectLen: int64(len(body)),
	}
	f.m = meta{status: m.status, coding: cd, fresh: m.fresh, lastMod: m.lastMod}
	f.ttl = ttlSeconds(&f.m.fresh, len(etag) > 0 || m.lastMod != 0, c.grace(res.route), c.cfg.Retain)
	if err := f.init(); err != nil {
		return err
	}
	_, _ = f.Write(body)
	if err := f.Commit(); err != nil {
		return err
	}
	encodedStores.Inc()
	return nil
}

func weakETag(t []byte) []byte {
	t = trimOWS(t)
	if len(t) > 2 && t[0] == 'W' && t[1] == '/' {
		return append([]byte(nil), t...)
	}
	return append([]byte("W/"), t...)
}
