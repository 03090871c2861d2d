package limit

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync"
)

// The client table is a fixed-capacity, sharded, set-associative cache: a
// client's key hashes to one shard (one mutex) and, inside it, to one set of
// maxWays slots. Lookup scans those slots; a new client takes a free slot or
// evicts one from its set. Nothing is allocated after newTable, so memory is
// the same whether ten or ten million addresses pass through, and the hot path
// never allocates. Eviction is per set, the way CPU caches bound their cost:
// no global list to keep in order, no lock held across shards.
const (
	maxWays   = 8   // slots per set: one or two cache lines of keys to scan
	maxShards = 256 // mutexes; enough that 2–64 cores rarely meet on one
	minSets   = 4   // sets per shard before adding shards, so small tables still spread
)

// key identifies a client: an IPv4 address in its IPv4-mapped IPv6 form, or
// an IPv6 address masked to the configured prefix, as two 64-bit halves.
type key struct{ hi, lo uint64 }

// invalidKey is where addresses that are not valid (the zero netip.Addr) are
// counted. ffff:…:ffff is a multicast address (ff00::/8), which can never be
// the source of a TCP connection (RFC 4291 section 2.7), so no real client
// shares it.
var invalidKey = key{hi: ^uint64(0), lo: ^uint64(0)}

// keyMask masks IPv6 addresses to a prefix of 1..128 bits.
type keyMask struct{ hi, lo uint64 }

func newKeyMask(prefix int) keyMask {
	switch {
	case prefix >= 128:
		return keyMask{^uint64(0), ^uint64(0)}
	case prefix > 64:
		return keyMask{^uint64(0), ^uint64(0) << (128 - prefix)}
	default:
		return keyMask{^uint64(0) << (64 - prefix), 0}
	}
}

// keyOf returns the table key of ip. IPv4-mapped IPv6 addresses count as
// IPv4; the zone is ignored.
func (m keyMask) keyOf(ip netip.Addr) key {
	if !ip.IsValid() {
		return invalidKey
	}
	ip = ip.Unmap()
	if ip.Is4() {
		a := ip.As4()
		return key{lo: 0xffff<<32 | uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])}
	}
	a := ip.As16()
	hi := uint64(a[0])<<56 | uint64(a[1])<<48 | uint64(a[2])<<40 | uint64(a[3])<<32 |
		uint64(a[4])<<24 | uint64(a[5])<<16 | uint64(a[6])<<8 | uint64(a[7])
	lo := uint64(a[8])<<56 | uint64(a[9])<<48 | uint64(a[10])<<40 | uint64(a[11])<<32 |
		uint64(a[12])<<24 | uint64(a[13])<<16 | uint64(a[14])<<8 | uint64(a[15])
	return key{hi: hi & m.hi, lo: lo & m.lo}
}

// entry is one client's state: a GCRA token bucket (see rate.go) and its
// offender window. 40 bytes.
type entry struct {
	key      key
	tat      int64 // theoretical arrival time, unix ns; the bucket is full when tat <= now
	winStart int64 // start of the current offender window, unix ns
	strikes  int32 // rejections since winStart
	used     bool  // the slot holds a client
	reported bool  // OnOffender was called in this window
}

// shard is one lock's worth of the table.
type shard struct {
	mu      sync.Mutex // guards entries and n
	entries []entry    // sets*ways slots; set i is entries[i*ways : (i+1)*ways]
	n       int        // slots in use
	_       [64]byte   // keep the next shard's mutex off this cache line
}

// table is the bounded client table. Its methods other than lookup are safe
// for concurrent use; lookup requires the shard's mutex.
type table struct {
	shards []shard
	shift  uint   // shard index is hash >> shift
	sets   uint64 // sets per shard
	ways   int    // slots per set
	seed   uint64 // per-table random hash seed: clients cannot aim at one set
}

// newTable returns a table of at most capacity slots (at least one). The
// capacity is rounded down to shards×sets×ways; for capacity ≥ 8192 (and the
// default, 65536) that rounding loses nothing or under 1/8.
func newTable(capacity int) *table {
	if capacity < 1 {
		capacity = 1
	}
	ways := min(maxWays, capacity)
	nshards := 1
	for nshards*2 <= maxShards && nshards*2*ways*minSets <= capacity {
		nshards *= 2
	}
	sets := capacity / (nshards * ways)
	t := &table{
		shards: make([]shard, nshards),
		shift:  uint(64 - bits.TrailingZeros(uint(nshards))),
		sets:   uint64(sets),
		ways:   ways,
		seed:   rand.Uint64() | 1,
	}
	for i := range t.shards {
		t.shards[i].entries = make([]entry, sets*ways)
	}
	return t
}

// capacity is the number of slots.
func (t *table) capacity() int { return len(t.shards) * int(t.sets) * t.ways }

// len counts the slots in use.
func (t *table) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// hash mixes a key with the table's seed (the splitmix64 finaliser, applied
// twice so both halves reach every output bit).
func (t *table) hash(k key) uint64 {
	h := mix64(k.hi ^ t.seed)
	return mix64(h ^ k.lo ^ bits.RotateLeft64(t.seed, 32))
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// shardOf returns the shard of a hash. With one shard, shift is 64 and the
// shift yields 0, as Go defines for shifts not less than the width.
func (t *table) shardOf(h uint64) *shard { return &t.shards[h>>t.shift] }

// setOf maps the low 32 bits of a hash onto [0, sets) without a division
// (Lemire's multiply-shift range reduction).
func (t *table) setOf(h uint64) int { return int((h & 0xffffffff) * t.sets >> 32) }

// Results of lookup besides a hit.
const (
	lookupHit = iota
	lookupNew
	lookupEvictedIdle
	lookupEvictedActive
)

// lookup returns k's slot in shard s, claiming one if k is absent: a free
// slot, else the slot whose bucket owes the least (smallest tat). A full
// bucket (tat <= now) owes nothing, so evicting it is invisible to that
// client: it would start over with a full bucket anyway. Among buckets that
// still owe tokens the one nearest to full loses the least, so a flood of
// fresh addresses (each a single request in debt) evicts itself before it
// evicts a client that is being limited. A new slot's tat is now, a full
// bucket. The caller holds s.mu.
func (t *table) lookup(s *shard, k key, h uint64, now int64) (*entry, int) {
	set := s.entries[t.setOf(h)*t.ways:][:t.ways]
	var free, victim *entry
	for i := range set {
		e := &set[i]
		if !e.used {
			if free == nil {
				free = e
			}
			continue
		}
		if e.key == k {
			return e, lookupHit
		}
		if victim == nil || e.tat < victim.tat {
			victim = e
		}
	}
	res := lookupNew
	if free == nil {
		free = victim
		res = lookupEvictedIdle
		if victim.tat > now {
			res = lookupEvictedActive
		}
	} else {
		s.n++
	}
	*free = entry{key: k, tat: now, used: true}
	return free, res
}
