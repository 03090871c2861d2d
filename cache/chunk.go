package cache

import (
	"encoding/binary"

	"github.com/coocood/freecache"
)

// Chunked storage.
//
// freecache refuses entries larger than 1/1024 of its size (each of its 256
// segments is a ring buffer, and an entry may take at most a quarter of one).
// A body that does not fit inline next to its headers is stored as chunks
// under keys
//
//	'c' + chunk generation (u64) + chunk number (u32)
//
// with the entry (meta + headers) written last under the variant key and
// naming the generation. The generation is fresh for every fill, so a
// concurrent overwrite of the same URL writes other keys and a reader never
// mixes the chunks of two responses; the overwritten generation's chunks
// are deleted after the new entry is in place. A missing chunk (evicted)
// makes Serve fail with ErrNoEntry rather than send a truncated body.

const chunkKeyLen = 1 + 8 + 4

// entryOverhead is freecache's per-entry header (ENTRY_HDR_SIZE).
const entryOverhead = 24

// maxEntry returns the largest key+value freecache accepts for a cache of
// size bytes (mirrors freecache's segment.set check).
func maxEntry(size int) int {
	if size < 512*1024 {
		size = 512 * 1024
	}
	return (size/256)/4 - entryOverhead
}

func chunkKey(buf *[chunkKeyLen]byte, gen uint64, n uint32) []byte {
	buf[0] = 'c'
	binary.LittleEndian.PutUint64(buf[1:], gen)
	binary.LittleEndian.PutUint32(buf[9:], n)
	return buf[:]
}

// chunkSize is the body bytes per chunk for this cache.
func (c *Cache) chunkSize() int { return c.entryLimit - chunkKeyLen }

// numChunks returns how many chunks hold bodyLen bytes of size sz.
func numChunks(bodyLen int64, sz uint32) uint32 {
	if sz == 0 {
		return 0
	}
	return uint32((bodyLen + int64(sz) - 1) / int64(sz))
}

// putChunk stores chunk n of generation gen.
func (c *Cache) putChunk(gen uint64, n uint32, b []byte, ttl int) error {
	var kb [chunkKeyLen]byte
	return c.fc.Set(chunkKey(&kb, gen, n), b, ttl)
}

// deleteChunks removes chunks [0, n) of generation gen.
func (c *Cache) deleteChunks(gen uint64, n uint32) {
	var kb [chunkKeyLen]byte
	for i := uint32(0); i < n; i++ {
		c.fc.Del(chunkKey(&kb, gen, i))
	}
}

// touchChunks extends the freecache TTL of a chunked body after a refresh.
func (c *Cache) touchChunks(gen uint64, n uint32, ttl int) {
	var kb [chunkKeyLen]byte
	for i := uint32(0); i < n; i++ {
		_ = c.fc.Touch(chunkKey(&kb, gen, i), ttl)
	}
}

// readChunks calls res.appendFn for each chunk in order; the callback
// appends the bytes to the response being served. It fails with ErrNoEntry
// when a chunk is missing or has the wrong length.
func (c *Cache) readChunks(res *Result) error {
	m := &res.m
	n := numChunks(m.bodyLen, m.chunkSize)
	var kb [chunkKeyLen]byte
	remaining := m.bodyLen
	for i := uint32(0); i < n; i++ {
		want := int64(m.chunkSize)
		if remaining < want {
			want = remaining
		}
		res.chunkWant = int(want)
		if err := c.fc.GetFn(chunkKey(&kb, m.chunkGen, i), res.chunkFn); err != nil {
			if err == freecache.ErrNotFound || err == ErrCorrupt {
				return ErrNoEntry
			}
			return err
		}
		remaining -= want
	}
	return nil
}

// appendChunks appends the whole chunked body to dst (store paths only).
func (c *Cache) appendChunks(dst []byte, m *meta) ([]byte, error) {
	n := numChunks(m.bodyLen, m.chunkSize)
	var kb [chunkKeyLen]byte
	for i := uint32(0); i < n; i++ {
		v, err := c.fc.Get(chunkKey(&kb, m.chunkGen, i))
		if err != nil {
			return dst, ErrNoEntry
		}
		dst = append(dst, v...)
	}
	if int64(len(dst)) < m.bodyLen {
		return dst, ErrNoEntry
	}
	return dst, nil
}
