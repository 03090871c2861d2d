package cache

import (
	"strings"
	"sync"

	"github.com/cloudwego/hertz/pkg/protocol"
	"github.com/coocood/freecache"
)

// Purge and invalidation.
//
// Exact-URL purge deletes the URL's variant index and every variant it
// lists (a later store starts a new generation, so unlisted variants of the
// old one are unreachable too). Prefix purge scans a bounded in-memory set
// of stored URLs (a map; purge is an admin operation, O(URLs) is fine and
// keeps the store path cheap); surrogate-key purge uses a map from key to
// URLs filled from Surrogate-Key (space-separated) and Cache-Tag
// (comma-separated) response fields. Both structures are bounded by
// Config.MaxURLs: when full, URLs whose index freecache already evicted are
// swept, and if it is still full the new URL is not stored (ErrIndexFull)
// rather than become unpurgeable. Tag references of a URL re-stored with
// other tags are kept until a purge touches them, so a tag purge may also
// drop such a URL — over-purging, never under-purging.
//
// Every purge bumps the cache's purge epoch; a fill whose Lookup came
// before a purge is not stored, so a response fetched before the purge
// cannot reappear after it.

type urlIndex struct {
	mu   sync.Mutex // guards urls and tags
	max  int
	urls map[string]struct{}
	tags map[string]map[string]struct{}
	refs int // total tag references
}

func newURLIndex(max int) *urlIndex {
	return &urlIndex{max: max, urls: make(map[string]struct{}), tags: make(map[string]map[string]struct{})}
}

func (ix *urlIndex) add(url string, tags []string, fc *freecache.Cache) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	_, known := ix.urls[url]
	if !known && len(ix.urls) >= ix.max || ix.refs+len(tags) > ix.max {
		ix.sweep(fc)
		if !known && len(ix.urls) >= ix.max || ix.refs+len(tags) > ix.max {
			return ErrIndexFull
		}
	}
	ix.urls[url] = struct{}{}
	for _, t := range tags {
		set := ix.tags[t]
		if set == nil {
			set = make(map[string]struct{})
			ix.tags[t] = set
		}
		if _, ok := set[url]; !ok {
			set[url] = struct{}{}
			ix.refs++
		}
	}
	return nil
}

// sweep drops URLs whose variant index freecache no longer holds.
func (ix *urlIndex) sweep(fc *freecache.Cache) {
	key := make([]byte, 0, 256)
	nop := func([]byte) error { return nil }
	for u := range ix.urls {
		key = append(append(key[:0], 'i'), u...)
		if fc.PeekFn(key, nop) != nil {
			ix.removeLocked(u)
		}
	}
}

func (ix *urlIndex) removeLocked(url string) {
	delete(ix.urls, url)
	for t, set := range ix.tags {
		if _, ok := set[url]; ok {
			delete(set, url)
			ix.refs--
			if len(set) == 0 {
				delete(ix.tags, t)
			}
		}
	}
}

// appendTags splits a Surrogate-Key or Cache-Tag value.
func appendTags(tags []string, v string, sep byte) []string {
	for _, t := range strings.Split(v, string(sep)) {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// purgeKey deletes every stored variant of one primary key and returns how
// many entries were deleted.
func (c *Cache) purgeKey(primary string) int {
	ikey := append([]byte{'i'}, primary...)
	v, err := c.fc.Get(ikey)
	if err != nil {
		return 0
	}
	c.fc.Del(ikey)
	var ix index
	if !decodeIndex(v, &ix, true) {
		return 0
	}
	n := 0
	for _, suffix := range ix.variants {
		vkey := appendEntryKey(nil, []byte(primary), ix.gen, suffix)
		var m meta
		ok := false
		_ = c.fc.GetFn(vkey, func(b []byte) error { ok = decodeMeta(b, &m); return nil })
		if c.fc.Del(vkey) {
			n++
		}
		if ok && m.chunked() {
			c.deleteChunks(m.chunkGen, numChunks(m.bodyLen, m.chunkSize))
		}
	}
	return n
}

// PurgeURL deletes all variants of an absolute URL. It returns the number
// of stored responses removed.
func (c *Cache) PurgeURL(rawURL string) (int, error) {
	key, err := NormalizeURL(rawURL)
	if err != nil {
		return 0, err
	}
	c.epoch.Add(1)
	c.urls.mu.Lock()
	c.urls.removeLocked(key)
	c.urls.mu.Unlock()
	n := c.purgeKey(key)
	countPurge("url", n)
	return n, nil
}

// PurgePrefix deletes every stored URL starting with prefix (scheme and
// host normalised, e.g. "https://example.com/static/"). It returns the
// number of stored responses removed.
func (c *Cache) PurgePrefix(prefix string) (int, error) {
	p, err := normalizePrefix(prefix)
	if err != nil {
		return 0, err
	}
	c.epoch.Add(1)
	c.urls.mu.Lock()
	var keys []string
	for u := range c.urls.urls {
		if strings.HasPrefix(u, p) {
			keys = append(keys, u)
		}
	}
	for _, u := range keys {
		c.urls.removeLocked(u)
	}
	c.urls.mu.Unlock()
	n := 0
	for _, u := range keys {
		n += c.purgeKey(u)
	}
	countPurge("prefix", n)
	return n, nil
}

// PurgeTag deletes every stored URL whose response carried the surrogate
// key tag (Surrogate-Key or Cache-Tag). It returns the number of stored
// responses removed.
func (c *Cache) PurgeTag(tag string) int {
	c.epoch.Add(1)
	c.urls.mu.Lock()
	var keys []string
	for u := range c.urls.tags[tag] {
		keys = append(keys, u)
	}
	for _, u := range keys {
		c.urls.removeLocked(u)
	}
	c.urls.mu.Unlock()
	n := 0
	for _, u := range keys {
		n += c.purgeKey(u)
	}
	countPurge("tag", n)
	return n
}

// Invalidate applies RFC 9111 §4.4: after an unsafe request (anything but
// GET, HEAD, OPTIONS, TRACE) whose response is 2xx or 3xx, the target URI
// and the same-origin Location and Content-Location targets are
// invalidated. It returns the number of stored responses removed.
func (c *Cache) Invalidate(req *protocol.Request, status int, h *protocol.ResponseHeader) int {
	m := req.Header.Method()
	if eqFold(m, "get") || eqFold(m, "head") || eqFold(m, "options") || eqFold(m, "trace") ||
		status < 200 || status > 399 {
		return 0
	}
	base := string(AppendKey(nil, req))
	c.epoch.Add(1)
	n := c.invalidateKey(base)
	origin := originOf(base)
	for _, name := range [...]string{"Location", "Content-Location"} {
		v := strings.TrimSpace(string(h.Peek(name)))
		if v == "" {
			continue
		}
		target := resolveRef(base, v)
		if target == "" {
			continue
		}
		key, err := NormalizeURL(target)
		if err != nil || originOf(key) != origin {
			continue // §4.4: only same-origin targets, to prevent denial of service
		}
		n += c.invalidateKey(key)
	}
	countPurge("invalidate", n)
	return n
}

func (c *Cache) invalidateKey(key string) int {
	c.urls.mu.Lock()
	c.urls.removeLocked(key)
	c.urls.mu.Unlock()
	return c.purgeKey(key)
}

// originOf returns "scheme://host" of a primary key.
func originOf(key string) string {
	i := strings.Index(key, "://")
	if i < 0 {
		return ""
	}
	if j := strings.IndexByte(key[i+3:], '/'); j >= 0 {
		return key[:i+3+j]
	}
	return key
}

// resolveRef resolves a Location value against the request's key: absolute
// URLs as they are, absolute paths against the origin, relative paths
// against the base path's directory. Scheme-relative "//host/x" takes the
// base scheme.
func resolveRef(base, ref string) string {
	switch {
	case strings.Contains(ref, "://"):
		return ref
	case strings.HasPrefix(ref, "//"):
		return base[:strings.Index(base, "://")+1] + ref
	case strings.HasPrefix(ref, "/"):
		return originOf(base) + ref
	}
	path := strings.TrimPrefix(base, originOf(base))
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		path = path[:i+1]
	}
	return originOf(base) + path + ref
}
