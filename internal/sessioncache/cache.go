// Package sessioncache keeps the sessions a replica serves in its own
// memory, so a signed-in page view costs no Redis round trip, and keeps that
// memory honest: Redis tells every replica which session keys changed
// (server-assisted client-side caching, CLIENT TRACKING in broadcast mode),
// a replica trusts its cache only while it keeps hearing its own heartbeats
// through that same channel (a lease) and, behind Sentinel, while the
// Sentinels confirm the primary (the primary lease), and a revocation is
// acknowledged only when every replica has confirmed it dropped the session
// or can no longer trust its cache. docs/SESSIONS.md argues the design.
package sessioncache

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"
)

// entryOverhead is what one cached session costs beyond its key and data
// (map slot, entry struct, slice headers), counted against the byte bound.
const entryOverhead = 96

// entry is one cached session, or a placeholder for a fill in flight.
type entry struct {
	data    []byte
	expires time.Time // when the store would have dropped it
	// fill is non-zero while the entry is a placeholder: the number of the
	// fill that may replace it.
	fill uint64
	// used is set by every hit and cleared by the eviction sweep, which
	// gives entries a second chance (CLOCK) without a write lock per hit.
	used atomic.Bool
}

// cache is a bounded map from store key to session data. It knows nothing
// of Redis: the link decides when it may be trusted and tells it what to
// drop.
//
// A fill (a miss read through the store) is guarded against the race with
// an invalidation: a placeholder goes in before the store is read, any
// invalidation or flush removes it, and the data read replaces it only if
// that same placeholder is still there. Otherwise a GET answered just
// before a revocation could put the revoked session back after its
// invalidation had already been applied.
type cache struct {
	maxEntries int
	maxBytes   int64

	mu      sync.RWMutex
	entries map[string]*entry
	bytes   int64
	fills   uint64 // last fill number handed out

	hits, misses, invalidations, flushes, evictions atomic.Uint64
}

func newCache(maxEntries int, maxBytes int64) *cache {
	return &cache{
		maxEntries: maxEntries,
		maxBytes:   maxBytes,
		entries:    make(map[string]*entry),
	}
}

// get returns the cached data for key if it is there and has not expired
// by now.
func (c *cache) get(key string, now time.Time) ([]byte, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || e.fill != 0 || !now.Before(e.expires) {
		c.misses.Add(1)
		return nil, false
	}
	if !e.used.Load() {
		e.used.Store(true)
	}
	c.hits.Add(1)
	// A copy: the caller may change what it is given (scs's contract).
	return bytes.Clone(e.data), true
}

// beginFill puts a placeholder for key and returns its number, or 0 when
// the key already has one (another fill is in flight: this read goes to
// the store without filling).
func (c *cache) beginFill(key string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		if e.fill != 0 {
			return 0
		}
		c.removeLocked(key, e)
	}
	c.fills++
	c.entries[key] = &entry{fill: c.fills}
	c.bytes += entrySize(key, nil)
	return c.fills
}

// endFill replaces fill's placeholder with data, expiring at expires, if
// no invalidation or flush has removed it since beginFill; with found
// false (the store has no such session) it only removes the placeholder.
func (c *cache) endFill(key string, fill uint64, data []byte, expires time.Time, found bool) {
	if fill == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.fill != fill {
		return
	}
	c.removeLocked(key, e)
	if !found {
		return
	}
	data = bytes.Clone(data) // the caller keeps and may change its slice
	c.entries[key] = &entry{data: data, expires: expires}
	c.bytes += entrySize(key, data)
	c.evictLocked()
}

// invalidate drops keys, cached or being filled.
func (c *cache) invalidate(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if e, ok := c.entries[k]; ok {
			c.removeLocked(k, e)
		}
	}
	c.invalidations.Add(uint64(len(keys)))
}

// flush drops everything, fills in flight included.
func (c *cache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	c.bytes = 0
	c.flushes.Add(1)
}

// size returns the number of entries (placeholders included) and their
// bytes as counted against the bound.
func (c *cache) size() (int, int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries), c.bytes
}

func (c *cache) removeLocked(key string, e *entry) {
	delete(c.entries, key)
	c.bytes -= entrySize(key, e.data)
}

// evictLocked drops entries until the cache is within its bounds: entries
// not used since the sweep last passed them go first (CLOCK, with Go's
// random map order as the hand), placeholders never.
func (c *cache) evictLocked() {
	for pass := 0; pass < 2 && c.over(); pass++ {
		for k, e := range c.entries {
			if !c.over() {
				return
			}
			if e.fill != 0 {
				continue
			}
			if pass == 0 && e.used.Load() {
				e.used.Store(false)
				continue
			}
			c.removeLocked(k, e)
			c.evictions.Add(1)
		}
	}
}

func (c *cache) over() bool {
	return len(c.entries) > c.maxEntries || c.bytes > c.maxBytes
}

func entrySize(key string, data []byte) int64 {
	return int64(len(key) + len(data) + entryOverhead)
}
