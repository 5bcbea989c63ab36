package throttle

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// DefaultMemoryMaxKeys is how many keys a MemoryStore tracks at most.
const DefaultMemoryMaxKeys = 100_000

// MemoryStore keeps failure counts in this process, for a single replica
// and tests: with several replicas each would count only the failures it
// served. Time comes from the clock it was built with, so tests can drive it
// with a fake one.
//
// Its memory is bounded. Keys are held as their SHA-256, whatever their
// length. Every write first drops the keys whose failures are forgotten, and
// at most DefaultMemoryMaxKeys keys are tracked: a new key past that evicts
// the key whose failures would be forgotten soonest (the oldest, measured
// from the end of its wait), so keys under a long wait are the last to go.
// An attacker who fails on 100,000 other keys can thus reset a key early;
// the per-IP throttle, and RedisStore in production, make that impractical.
type MemoryStore struct {
	now     func() time.Time
	maxKeys int

	mu   sync.Mutex
	keys map[[sha256.Size]byte]*memoryEntry
	// byForget orders the entries by when their failures are forgotten,
	// soonest first: the order of pruning and eviction.
	byForget forgetHeap
}

// memoryEntry is one key's failures.
type memoryEntry struct {
	id     [sha256.Size]byte
	n      int       // failures counted
	until  time.Time // the wait in force ends
	forget time.Time // the failures are forgotten
	// refused counts the attempts the current wait refused.
	refused int
	index   int // position in byForget
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore on the clock now; nil means
// time.Now.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{
		now:     now,
		maxKeys: DefaultMemoryMaxKeys,
		keys:    make(map[[sha256.Size]byte]*memoryEntry),
	}
}

// Check returns the wait in force for key, never more than p.MaxDelay.
func (m *MemoryStore) Check(_ context.Context, key string, p Policy) (time.Duration, error) {
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("throttle: check: %w", err)
	}
	now := m.now()
	id := sha256.Sum256([]byte(key))
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.keys[id]
	if !ok {
		return 0, nil
	}
	return min(max(e.until.Sub(now), 0), p.MaxDelay), nil
}

// Fail records a failure of key and returns the wait now in force, exactly
// as scripts/fail.lua does in Redis.
func (m *MemoryStore) Fail(_ context.Context, key string, p Policy) (time.Duration, error) {
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("throttle: fail: %w", err)
	}
	now := m.now()
	id := sha256.Sum256([]byte(key))
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failLocked(now, id, p), nil
}

// failLocked counts one failure of the key with id and returns the wait now
// in force.
func (m *MemoryStore) failLocked(now time.Time, id [32]byte, p Policy) time.Duration {
	m.pruneLocked(now)
	e, ok := m.keys[id]
	if !ok {
		if len(m.keys) >= m.maxKeys {
			m.removeLocked(m.byForget[0])
		}
		e = &memoryEntry{id: id}
		m.keys[id] = e
		heap.Push(&m.byForget, e)
	}
	if now.Before(e.forget) {
		e.n++
	} else {
		e.n = 1
	}
	until := now.Add(p.delay(e.n))
	if e.until.After(until) {
		// A longer wait is already in force (the caller failed a key it
		// did not Check); keep it, within the cap.
		until = minTime(e.until, now.Add(p.MaxDelay))
	}
	e.until = until
	e.forget = until.Add(p.Window)
	heap.Fix(&m.byForget, e.index)
	return until.Sub(now)
}

// Attempt reserves one attempt of key under p, as scripts/attempt.lua
// does in Redis: the wait in force, counting nothing; or zero, with the
// attempt counted as a failure before the caller checks anything. Both
// happen under one lock, so parallel attempts each take their own place.
func (m *MemoryStore) Attempt(_ context.Context, key string, p Policy) (Verdict, error) {
	if err := p.Validate(); err != nil {
		return Verdict{}, fmt.Errorf("throttle: attempt: %w", err)
	}
	now := m.now()
	id := sha256.Sum256([]byte(key))
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.keys[id]; ok && now.Before(e.until) {
		e.refused++
		return Verdict{Wait: min(e.until.Sub(now), p.MaxDelay), Refused: e.refused}, nil
	}
	m.failLocked(now, id, p)
	m.keys[id].refused = 0
	return Verdict{}, nil
}

// Forgive gives back one attempt that Attempt counted, as
// scripts/forgive.lua does: the count drops by one, and a wait the count no
// longer justifies is lifted.
func (m *MemoryStore) Forgive(_ context.Context, key string, p Policy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("throttle: forgive: %w", err)
	}
	now := m.now()
	id := sha256.Sum256([]byte(key))
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.keys[id]
	if !ok || !now.Before(e.forget) {
		return nil
	}
	e.n--
	switch {
	case e.n <= 0:
		m.removeLocked(e)
	case e.n <= p.Limit:
		e.until = time.Time{}
	}
	return nil
}

// Reset forgets key's failures and lifts its wait.
func (m *MemoryStore) Reset(_ context.Context, key string) error {
	id := sha256.Sum256([]byte(key))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked(m.now())
	if e, ok := m.keys[id]; ok {
		m.removeLocked(e)
	}
	return nil
}

// Ping always succeeds: memory is always there.
func (m *MemoryStore) Ping(context.Context) error { return nil }

// pruneLocked drops the keys whose failures are forgotten by now.
func (m *MemoryStore) pruneLocked(now time.Time) {
	for len(m.byForget) > 0 && !now.Before(m.byForget[0].forget) {
		m.removeLocked(m.byForget[0])
	}
}

// removeLocked drops e.
func (m *MemoryStore) removeLocked(e *memoryEntry) {
	heap.Remove(&m.byForget, e.index)
	delete(m.keys, e.id)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// forgetHeap is a min-heap of entries by forget time (container/heap).
type forgetHeap []*memoryEntry

func (h forgetHeap) Len() int           { return len(h) }
func (h forgetHeap) Less(i, j int) bool { return h[i].forget.Before(h[j].forget) }

func (h forgetHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *forgetHeap) Push(x any) {
	e := x.(*memoryEntry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *forgetHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
