package cache

import (
	"encoding/binary"
	"time"
)

// Stored entry layout (little-endian), under the variant key:
//
//	0  version u8          1  flags u8        2  status u16
//	4  coding u8           5  reserved u8     6  etag length u16
//	8  id u64              16 response time i64 (unix ns)
//	24 initial age i64     32 lifetime i64    40 swr i64     48 sie i64 (ns)
//	56 last-modified i64 (unix s, 0 none)     64 body length i64
//	72 chunk generation u64                   80 chunk size u32
//	84 header block length u32                88 etag, header block, [body]
//
// The header block is a sequence of (u16 name length, name, u32 value
// length, value) in the order received. The body follows only when the
// entry is not chunked.

const (
	entryVersion = 1
	metaFixed    = 88
)

const (
	fChunked uint8 = 1 << iota
	fNoCache
	fNoStale
)

// meta is the decoded fixed part of an entry.
type meta struct {
	flags     uint8
	coding    uint8
	status    uint16
	etagLen   uint16
	hdrLen    uint32
	id        uint64
	fresh     freshness
	lastMod   int64
	bodyLen   int64
	chunkGen  uint64
	chunkSize uint32
}

func (m *meta) chunked() bool { return m.flags&fChunked != 0 }

// bodyOffset is where an inline body starts in the entry value.
func (m *meta) bodyOffset() int { return metaFixed + int(m.etagLen) + int(m.hdrLen) }

// decodeMeta decodes the fixed part of v into m.
func decodeMeta(v []byte, m *meta) bool {
	if len(v) < metaFixed || v[0] != entryVersion {
		return false
	}
	m.flags = v[1]
	m.status = binary.LittleEndian.Uint16(v[2:])
	m.coding = v[4]
	m.etagLen = binary.LittleEndian.Uint16(v[6:])
	m.id = binary.LittleEndian.Uint64(v[8:])
	m.fresh.respTime = int64(binary.LittleEndian.Uint64(v[16:]))
	m.fresh.initialAge = int64(binary.LittleEndian.Uint64(v[24:]))
	m.fresh.lifetime = int64(binary.LittleEndian.Uint64(v[32:]))
	m.fresh.swr = int64(binary.LittleEndian.Uint64(v[40:]))
	m.fresh.sie = int64(binary.LittleEndian.Uint64(v[48:]))
	m.lastMod = int64(binary.LittleEndian.Uint64(v[56:]))
	m.bodyLen = int64(binary.LittleEndian.Uint64(v[64:]))
	m.chunkGen = binary.LittleEndian.Uint64(v[72:])
	m.chunkSize = binary.LittleEndian.Uint32(v[80:])
	m.hdrLen = binary.LittleEndian.Uint32(v[84:])
	m.fresh.noCache = m.flags&fNoCache != 0
	m.fresh.noStale = m.flags&fNoStale != 0
	if m.bodyOffset() > len(v) {
		return false
	}
	if !m.chunked() && int64(len(v)-m.bodyOffset()) != m.bodyLen {
		return false
	}
	return true
}

// encodeEntry builds an entry value: meta, etag, header block, inline body.
func encodeEntry(m *meta, etag, hdrs, body []byte) []byte {
	m.etagLen = uint16(len(etag))
	m.hdrLen = uint32(len(hdrs))
	m.flags &^= fNoCache | fNoStale
	if m.fresh.noCache {
		m.flags |= fNoCache
	}
	if m.fresh.noStale {
		m.flags |= fNoStale
	}
	v := make([]byte, metaFixed, metaFixed+len(etag)+len(hdrs)+len(body))
	v[0] = entryVersion
	v[1] = m.flags
	binary.LittleEndian.PutUint16(v[2:], m.status)
	v[4] = m.coding
	binary.LittleEndian.PutUint16(v[6:], m.etagLen)
	binary.LittleEndian.PutUint64(v[8:], m.id)
	binary.LittleEndian.PutUint64(v[16:], uint64(m.fresh.respTime))
	binary.LittleEndian.PutUint64(v[24:], uint64(m.fresh.initialAge))
	binary.LittleEndian.PutUint64(v[32:], uint64(m.fresh.lifetime))
	binary.LittleEndian.PutUint64(v[40:], uint64(m.fresh.swr))
	binary.LittleEndian.PutUint64(v[48:], uint64(m.fresh.sie))
	binary.LittleEndian.PutUint64(v[56:], uint64(m.lastMod))
	binary.LittleEndian.PutUint64(v[64:], uint64(m.bodyLen))
	binary.LittleEndian.PutUint64(v[72:], m.chunkGen)
	binary.LittleEndian.PutUint32(v[80:], m.chunkSize)
	binary.LittleEndian.PutUint32(v[84:], m.hdrLen)
	v = append(v, etag...)
	v = append(v, hdrs...)
	return append(v, body...)
}

// field is one stored header line.
type field struct{ k, v []byte }

func encodeHeaders(fs []field) []byte {
	var b []byte
	for _, f := range fs {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(f.k)))
		b = append(b, f.k...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f.v)))
		b = append(b, f.v...)
	}
	return b
}

// nextHeader splits the first header off a header block.
func nextHeader(b []byte) (k, v, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, nil, false
	}
	kl := int(binary.LittleEndian.Uint16(b))
	if 2+kl+4 > len(b) {
		return nil, nil, nil, false
	}
	k = b[2 : 2+kl]
	vl := int(binary.LittleEndian.Uint32(b[2+kl:]))
	if 6+kl+vl > len(b) {
		return nil, nil, nil, false
	}
	return k, b[6+kl : 6+kl+vl], b[6+kl+vl:], true
}

func decodeHeaders(b []byte) []field {
	var fs []field
	for len(b) > 0 {
		k, v, rest, ok := nextHeader(b)
		if !ok {
			break
		}
		fs = append(fs, field{k, v})
		b = rest
	}
	return fs
}

// ttlSeconds is the freecache expiry for an entry: its lifetime plus the
// longest time it may still be served stale or revalidated.
func ttlSeconds(f *freshness, hasValidator bool, grace, retain time.Duration) int {
	keep := grace
	if d := time.Duration(f.swr); d > keep {
		keep = d
	}
	if d := time.Duration(f.sie); d > keep {
		keep = d
	}
	if hasValidator && retain > keep {
		keep = retain
	}
	left := time.Duration(f.lifetime-f.initialAge) + keep
	s := int(left / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
