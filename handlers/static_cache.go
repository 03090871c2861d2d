package handlers

import (
	"sync"
)

// staticCache keeps small Root files in memory with their precomputed
// headers, keyed by the request name relative to Root ("a/b.css", or
// "a/" for a directory's index). It is bounded both in total content
// bytes and in entries; when full, arbitrary entries are evicted (Go's
// randomized map order makes that a cheap random eviction, with no
// per-hit bookkeeping on the read path).
//
// A staticCache is safe for concurrent use.
type staticCache struct {
	maxBytes   int64
	maxEntries int

	mu      sync.RWMutex // guards entries and bytes
	entries map[string]*staticEntry
	bytes   int64
}

func newStaticCache(maxBytes int64, maxEntries int) *staticCache {
	return &staticCache{
		maxBytes:   maxBytes,
		maxEntries: maxEntries,
		entries:    make(map[string]*staticEntry),
	}
}

// get returns the entry for key, or nil. The string(key) conversion in the
// map index does not allocate.
func (c *staticCache) get(key []byte) *staticEntry {
	c.mu.RLock()
	e := c.entries[string(key)]
	c.mu.RUnlock()
	return e
}

// put stores e under key, replacing any previous entry and evicting others
// until the bounds hold. Entries bigger than the whole cache are not kept.
func (c *staticCache) put(key string, e *staticEntry) {
	n := int64(len(e.body))
	if n > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key]; ok {
		c.bytes -= int64(len(old.body))
		delete(c.entries, key)
	}
	for k, old := range c.entries {
		if c.bytes+n <= c.maxBytes && len(c.entries) < c.maxEntries {
			break
		}
		c.bytes -= int64(len(old.body))
		delete(c.entries, k)
	}
	c.entries[key] = e
	c.bytes += n
}

// remove drops key if it still maps to e, so a stale reader cannot evict
// the fresher entry another goroutine just stored.
func (c *staticCache) remove(key string, e *staticEntry) {
	c.mu.Lock()
	if c.entries[key] == e {
		delete(c.entries, key)
		c.bytes -= int64(len(e.body))
	}
	c.mu.Unlock()
}

// clear drops every entry.
func (c *staticCache) clear() {
	c.mu.Lock()
	clear(c.entries)
	c.bytes = 0
	c.mu.Unlock()
}

// stats reports the number of entries and content bytes held.
func (c *staticCache) stats() (entries int, bytes int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries), c.bytes
}

// fresh reports whether a cached entry may be served as is. An entry is
// trusted for the revalidation interval after its last stat; after that,
// one request (the one winning the CAS on checked) stats the file through
// Root while concurrent requests keep serving the entry. A changed mtime
// or size, a vanished file, or a name that now resolves outside Root
// makes the entry stale: it is dropped and the caller goes to disk.
func (s *Static) fresh(e *staticEntry) bool {
	now := s.now().UnixNano()
	last := e.checked.Load()
	if now-last < s.revalidate && now >= last {
		return true
	}
	if !e.checked.CompareAndSwap(last, now) {
		return true // another request is revalidating right now
	}
	fi, err := s.root.Stat(e.name)
	if err == nil && fi.Mode().IsRegular() && fi.Size() == e.size && fi.ModTime().Equal(e.modTime) {
		return true
	}
	s.cache.remove(e.key, e)
	return false
}
