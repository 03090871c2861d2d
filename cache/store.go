package cache

import (
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"
	"github.com/coocood/freecache"
)

// Storing responses (RFC 9111 §3).
//
// A response is stored when all of these hold (§3, shared cache):
//   - the request method is GET (HEAD is answered from the stored GET);
//   - the status is final and not 206 (ranges are not stored) or 304;
//   - neither request nor response says no-store, the response is not
//     private (§5.2.2.7: a shared cache never stores it);
//   - a request with Authorization only with public, s-maxage or
//     must-revalidate (§3.5);
//   - no Set-Cookie: RFC 9111 allows storing it, but edgeloop follows nginx,
//     which does not cache such responses, because serving one user's
//     cookie to another is the classic CDN leak;
//   - not Vary: *, and a Content-Encoding the cache knows;
//   - explicit freshness, or a heuristically cacheable status, or public;
//   - a positive freshness lifetime or a validator (ETag/Last-Modified):
//     an entry that is stale at birth and cannot be revalidated is useless.

// hop-by-hop and other fields never stored (§3.1) or recomputed on serve.
var skipStore = [...]string{
	"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "trailer",
	"upgrade", "proxy-authenticate", "proxy-authorization", "age", "content-length",
	"edgeloop-cache-control", "set-cookie",
	// Surrogate keys are for the cache and its purge API, not for clients:
	// stored for purge (policyOf reads them first), never served, as Fastly
	// strips Surrogate-Key and Cloudflare Cache-Tag.
	"surrogate-key", "cache-tag",
}

func skipField(k []byte, connTokens [][]byte) bool {
	for _, s := range skipStore {
		if eqFold(k, s) {
			return true
		}
	}
	for _, t := range connTokens {
		if eqFoldBytes(k, t) {
			return true
		}
	}
	return false
}

func eqFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// policy is what the response headers say about caching.
type policy struct {
	dirs      Directives
	targeted  bool
	times     respTimes
	explicit  bool // max-age, s-maxage or Expires present
	etag      []byte
	lastMod   []byte
	vary      [][]byte
	setCookie bool
	coding    uint8
	tags      []string
	contentLn int64 // -1 when absent
	lifetime  time.Duration
	src       lifetimeSource
}

// policyOf reads the caching policy from stored-form fields.
func policyOf(fs []field, status int, reqTime, respTime time.Time, defaultTTL time.Duration) *policy {
	p := &policy{contentLn: -1, coding: codingIdentity}
	var cc, cdn, own [][]byte
	for _, f := range fs {
		k, v := f.k, f.v
		switch {
		case eqFold(k, "cache-control"):
			cc = append(cc, v)
		case eqFold(k, "cdn-cache-control"):
			cdn = append(cdn, v)
		case eqFold(k, "edgeloop-cache-control"):
			own = append(own, v)
		case eqFold(k, "expires"):
			if !p.times.expiresPresent {
				p.times.expiresPresent = true
				p.times.expires = parseHTTPDate(trimOWS(v))
			}
		case eqFold(k, "date"):
			p.times.date = parseHTTPDate(trimOWS(v))
		case eqFold(k, "age"):
			if n, ok := parseDelta(trimOWS(v)); ok {
				p.times.ageValue = time.Duration(n) * time.Second
			}
		case eqFold(k, "last-modified"):
			p.lastMod = trimOWS(v)
			p.times.lastModified = parseHTTPDate(p.lastMod)
		case eqFold(k, "etag"):
			p.etag = trimOWS(v)
		case eqFold(k, "vary"):
			p.vary = append(p.vary, v)
		case eqFold(k, "set-cookie"):
			p.setCookie = true
		case eqFold(k, "content-encoding"):
			p.coding = codingOf(v)
		case eqFold(k, "content-length"):
			if n, ok := parseDelta(trimOWS(v)); ok {
				p.contentLn = n
			}
		case eqFold(k, "surrogate-key"):
			p.tags = appendTags(p.tags, string(v), ' ')
		case eqFold(k, "cache-tag"):
			p.tags = appendTags(p.tags, string(v), ',')
		}
	}
	// RFC 9213 §2.1: the first valid targeted field in our list wins and
	// Cache-Control and Expires are then ignored.
	for _, lines := range [][][]byte{own, cdn} {
		if len(lines) == 0 {
			continue
		}
		p.dirs.Reset()
		for _, l := range lines {
			p.dirs.Parse(l)
		}
		if !p.dirs.Has(FlagInvalid) {
			p.targeted = true
			break
		}
	}
	if !p.targeted {
		p.dirs.Reset()
		for _, l := range cc {
			p.dirs.Parse(l)
		}
	}
	p.explicit = p.dirs.SMaxAge >= 0 || p.dirs.MaxAge >= 0 || (p.times.expiresPresent && !p.targeted)
	p.lifetime, p.src = freshnessLifetime(&p.dirs, p.targeted, &p.times, status, respTime, defaultTTL)
	return p
}

// freshnessOf turns a policy into the stored freshness record.
func (p *policy) freshnessOf(reqTime, respTime time.Time) freshness {
	f := freshness{
		respTime:   respTime.UnixNano(),
		initialAge: int64(initialAge(&p.times, reqTime, respTime)),
		lifetime:   int64(p.lifetime),
		swr:        -1,
		sie:        -1,
		noCache:    p.dirs.Has(FlagNoCache),
		noStale:    p.dirs.Has(FlagMustRevalidate) || p.dirs.Has(FlagProxyRevalidate) || p.dirs.SMaxAge >= 0,
	}
	if p.dirs.StaleWhileRevalidate >= 0 {
		f.swr = p.dirs.StaleWhileRevalidate * int64(time.Second)
	}
	if p.dirs.StaleIfError >= 0 {
		f.sie = p.dirs.StaleIfError * int64(time.Second)
	}
	return f
}

// storable applies the list at the top of this file. reqCC is the
// request's Cache-Control; auth whether it carried Authorization.
func (p *policy) storable(status int, reqDirs *Directives, auth bool) (bool, string) {
	switch {
	case status < 200 || status == 206 || status == 304:
		return false, "status"
	case reqDirs.Has(FlagNoStore) || p.dirs.Has(FlagNoStore):
		return false, "no-store"
	case p.dirs.Has(FlagPrivate):
		return false, "private"
	case auth && !(p.dirs.Has(FlagPublic) || p.dirs.SMaxAge >= 0 || p.dirs.Has(FlagMustRevalidate)):
		return false, "authorization"
	case p.setCookie:
		return false, "set-cookie"
	case p.coding == codingUnknown:
		return false, "content-encoding"
	case !(p.explicit || heuristicStatus(status) || p.dirs.Has(FlagPublic)):
		return false, "status"
	case p.lifetime <= 0 && len(p.etag) == 0 && len(p.lastMod) == 0:
		return false, "no-freshness"
	}
	if _, star := varyNames(p.vary); star {
		return false, "vary-star"
	}
	return true, ""
}

// fieldsOf copies the response header into stored-form fields.
func fieldsOf(h *protocol.ResponseHeader) []field {
	var fs []field
	h.VisitAll(func(k, v []byte) {
		fs = append(fs, field{append([]byte(nil), k...), append([]byte(nil), v...)})
	})
	return fs
}

// storedFields filters out the fields that are not stored (§3.1),
// including those named by Connection.
func storedFields(fs []field) []field {
	var conn [][]byte
	for _, f := range fs {
		if eqFold(f.k, "connection") {
			for _, t := range splitList(f.v, ',') {
				conn = append(conn, t)
			}
		}
	}
	out := make([]field, 0, len(fs))
	for _, f := range fs {
		if !skipField(f.k, conn) {
			out = append(out, f)
		}
	}
	return out
}

func splitList(v []byte, sep byte) [][]byte {
	var out [][]byte
	for len(v) > 0 {
		i := indexByte(v, sep)
		if i < 0 {
			i = len(v)
		}
		if t := trimOWS(v[:i]); len(t) > 0 {
			out = append(out, t)
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return out
}

// Store stores a complete response fetched for the request res was looked
// up for. It is BeginFill + Write + Commit; use a Fill to store while
// streaming. Errors say why nothing was stored; the response is still
// fine to send.
func (c *Cache) Store(res *Result, req *protocol.Request, resp *protocol.Response, reqTime, respTime time.Time) error {
	f, err := c.BeginFill(res, req, &resp.Header, reqTime, respTime)
	if err != nil {
		return err
	}
	_, _ = f.Write(resp.Body())
	return f.Commit()
}

// newID returns a process-unique, never-zero generation number.
func (c *Cache) newID() uint64 { return c.gen.Add(1) }

// setEntry writes an entry, freeing the chunks of the one it replaces
// (unless they are generation keepGen, still used by the new entry).
func (c *Cache) setEntry(vkey, value []byte, ttl int, keepGen uint64) error {
	var old meta
	oldOK := false
	_ = c.fc.GetFn(vkey, func(v []byte) error {
		oldOK = decodeMeta(v, &old)
		return nil
	})
	if err := c.fc.Set(vkey, value, ttl); err != nil {
		if err == freecache.ErrLargeEntry {
			return ErrTooBig
		}
		return err
	}
	if oldOK && old.chunked() && old.chunkGen != keepGen {
		c.deleteChunks(old.chunkGen, numChunks(old.bodyLen, old.chunkSize))
	}
	return nil
}
