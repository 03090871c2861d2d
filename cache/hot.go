package cache

import "sync"

// hotBodies keeps the bodies of large stored responses that were served,
// as immutable Go slices keyed by entry id, so that a hit hands hertz the
// bytes to write (Response.SetBodyRaw) instead of copying them out of
// freecache first: one copy of the body per hit fewer, 64 KiB and up.
// An entry id names one stored version (a new store or refresh gets a new
// id), so a body found here is always the one the entry holds; ids that
// are no longer stored just age out. The memory is bounded (oldest first
// out) and counted apart from freecache's. Safe for concurrent use.
type hotBodies struct {
	mu    sync.Mutex
	m     map[uint64][]byte
	order []uint64 // insertion order, oldest first, for eviction
	bytes int
	max   int
}

const (
	// hotMinBody is the smallest body kept: below it the copy costs less
	// than the bookkeeping.
	hotMinBody = 16 << 10
	// hotShare is the share of the cache size the hot bodies may use, on
	// top of it (1/16: 16 MiB for the default 256 MiB).
	hotShare = 16
)

func newHotBodies(cacheSize int) *hotBodies {
	max := cacheSize / hotShare
	if max < 8*hotMinBody {
		return nil
	}
	return &hotBodies{m: make(map[uint64][]byte), max: max}
}

// get returns the body of entry id, or nil.
func (h *hotBodies) get(id uint64) []byte {
	h.mu.Lock()
	b := h.m[id]
	h.mu.Unlock()
	return b
}

// put keeps b, which must not be modified afterwards, as entry id's body
// when it is no more than an eighth of the bound.
func (h *hotBodies) put(id uint64, b []byte) {
	if len(b) > h.max/8 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.m[id]; ok {
		return
	}
	for h.bytes+len(b) > h.max && len(h.order) > 0 {
		old := h.order[0]
		h.order = h.order[1:]
		h.bytes -= len(h.m[old])
		delete(h.m, old)
	}
	h.m[id] = b
	h.order = append(h.order, id)
	h.bytes += len(b)
}

// hotBody returns the kept body of entry id, or nil.
func (c *Cache) hotBody(id uint64) []byte {
	if c.hot == nil {
		return nil
	}
	return c.hot.get(id)
}

// clear drops every body.
func (h *hotBodies) clear() {
	h.mu.Lock()
	h.m, h.order, h.bytes = make(map[uint64][]byte), nil, 0
	h.mu.Unlock()
}
