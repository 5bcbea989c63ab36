package session

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// sweepEvery is how often a write also drops expired entries, so a
// long-running process does not keep abandoned sessions without needing a
// background goroutine.
const sweepEvery = time.Minute

// MemoryStore keeps sessions in this process. It suits a single replica and
// tests; sessions vanish when the process exits. Expiry is judged by
// Options.Now, so tests can drive it with a fake clock.
//
// It mirrors RedisStore's behaviour, including the order Recent and eviction
// use, with plain maps under one mutex. The sessions map is itself the global
// index, so Count and Recent walk every session: fine for the one process
// this store serves.
type MemoryStore struct {
	opts Options

	mu         sync.Mutex
	sessions   map[string]memoryEntry
	tombstones map[string]memoryTombstone
	users      map[int64]map[string]time.Time // user → key → absolute expiry
	// revoked holds, per user, the time of the latest RevokeUser (see
	// Origin).
	revoked   map[int64]memoryRevocation
	lastSweep time.Time
}

type memoryEntry struct {
	data    []byte
	expires time.Time // the current expiry, refreshed by Commit
	userID  int64
}

type memoryTombstone struct {
	reason EndReason
	until  time.Time
}

type memoryRevocation struct {
	at    int64     // Unix milliseconds of the revocation
	until time.Time // when the record lapses: Options.Lifetime after it
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(opts Options) *MemoryStore {
	return &MemoryStore{
		opts:       opts,
		sessions:   make(map[string]memoryEntry),
		tombstones: make(map[string]memoryTombstone),
		users:      make(map[int64]map[string]time.Time),
		revoked:    make(map[int64]memoryRevocation),
		lastSweep:  opts.now(),
	}
}

// FindCtx returns a copy of the session stored under key, if it has not
// expired.
func (m *MemoryStore) FindCtx(_ context.Context, key string) ([]byte, bool, error) {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.liveLocked(key, now)
	if !ok {
		return nil, false, nil
	}
	return clone(e.data), true, nil
}

// CommitCtx updates the session under key to b, until the sooner of expiry
// and the end of the idle window. It writes nothing and returns ErrRevoked if
// the session is not there (deleted, expired or never created).
func (m *MemoryStore) CommitCtx(_ context.Context, key string, b []byte, expiry time.Time) error {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	if m.tombstonedLocked(key, now) {
		return ErrRevoked
	}
	e, ok := m.liveLocked(key, now)
	if !ok {
		return ErrRevoked
	}
	expires := m.opts.expiry(now, expiry)
	if !now.Before(expires) {
		m.removeLocked(key)
		return nil
	}
	m.sessions[key] = memoryEntry{data: clone(b), expires: expires, userID: e.userID}
	return nil
}

// DeleteCtx removes the session under key and leaves a tombstone recording
// EndedSignedOut, which makes Create of key fail for Options.Lifetime.
func (m *MemoryStore) DeleteCtx(_ context.Context, key string) error {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	m.endLocked(key, EndedSignedOut, now)
	return nil
}

// Find is FindCtx without a context.
func (m *MemoryStore) Find(key string) ([]byte, bool, error) {
	return m.FindCtx(context.Background(), key)
}

// Commit is CommitCtx without a context.
func (m *MemoryStore) Commit(key string, b []byte, expiry time.Time) error {
	return m.CommitCtx(context.Background(), key, b, expiry)
}

// Delete is DeleteCtx without a context.
func (m *MemoryStore) Delete(key string) error {
	return m.DeleteCtx(context.Background(), key)
}

// Ping always succeeds: memory is always there.
func (m *MemoryStore) Ping(context.Context) error { return nil }

// Create stores a new session of userID under key and indexes it, enforcing
// limit and checking origin, under the store's lock.
func (m *MemoryStore) Create(_ context.Context, key string, userID int64, data []byte, expiry time.Time, limit Limit, origin Origin) ([]string, error) {
	if err := limit.check(); err != nil {
		return nil, fmt.Errorf("session store: create: %w", err)
	}
	if err := checkShard(key, userID); err != nil {
		return nil, err
	}
	now := m.opts.now()
	expires := m.opts.expiry(now, expiry)
	if expires.Sub(now) < time.Millisecond { // as RedisStore, which counts in ms
		return nil, fmt.Errorf("session store: create: %w", errExpired)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	if m.tombstonedLocked(key, now) {
		return nil, ErrRevoked
	}
	if _, ok := m.liveLocked(key, now); ok {
		return nil, fmt.Errorf("session store: create: %w", errKeyInUse)
	}
	if r := origin.Replaces; r != "" {
		if _, ok := m.liveLocked(r, now); !ok || m.tombstonedLocked(r, now) {
			return nil, ErrRevoked
		}
	}
	if rv, ok := m.revoked[userID]; ok && now.Before(rv.until) && origin.authenticatedMilli(now) < rv.at {
		return nil, ErrRevoked
	}
	// The replaced session makes way for the new one: it does not count.
	live := slices.DeleteFunc(m.pruneUserLocked(userID, now), func(k string) bool { return k == origin.Replaces })
	if limit.Max > 0 && len(live) >= limit.Max && limit.Policy != EvictOldest {
		return nil, ErrTooManySessions
	}
	if r := origin.Replaces; r != "" {
		m.endLocked(r, EndedSignedOut, now)
	}
	var evicted []string
	if limit.Max > 0 && len(live) >= limit.Max {
		// Least recently active first, ties broken as create.lua does.
		abs := m.users[userID]
		slices.SortFunc(live, func(a, b string) int {
			return cmp.Or(
				m.sessions[a].expires.Compare(m.sessions[b].expires),
				abs[a].Compare(abs[b]),
				cmp.Compare(a, b))
		})
		evicted = live[:len(live)-limit.Max+1]
		for _, k := range evicted {
			m.endLocked(k, EndedTooMany, now)
		}
	}
	m.sessions[key] = memoryEntry{data: clone(data), expires: expires, userID: userID}
	if m.users[userID] == nil {
		m.users[userID] = make(map[string]time.Time)
	}
	m.users[userID][key] = expiry
	return evicted, nil
}

// ListUser returns userID's live sessions, pruning the user's index.
func (m *MemoryStore) ListUser(_ context.Context, userID int64) ([]Entry, error) {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	live := m.pruneUserLocked(userID, now)
	entries := make([]Entry, 0, len(live))
	for _, k := range live {
		entries = append(entries, Entry{Key: k, Data: clone(m.sessions[k].data)})
	}
	return entries, nil
}

// ListUserKeys returns the keys of userID's live sessions, pruning the
// user's index.
func (m *MemoryStore) ListUserKeys(_ context.Context, userID int64) ([]string, error) {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pruneUserLocked(userID, now), nil
}

// CountUsers returns how many live sessions each of userIDs has, pruning
// each user's index.
func (m *MemoryStore) CountUsers(_ context.Context, userIDs []int64) (map[int64]int, error) {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	counts := make(map[int64]int, len(userIDs))
	for _, id := range userIDs {
		counts[id] = len(m.pruneUserLocked(id, now))
	}
	return counts, nil
}

// Revoke ends those of keys that are userID's live sessions, recording
// reason.
func (m *MemoryStore) Revoke(_ context.Context, userID int64, keys []string, reason EndReason) (int, error) {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneUserLocked(userID, now)
	n := 0
	for _, k := range keys {
		if _, ok := m.users[userID][k]; ok {
			m.endLocked(k, reason, now)
			n++
		}
	}
	return n, nil
}

// RevokeUser ends every session of userID but exceptKey, recording reason,
// and records the time, keeping the latest, so Create refuses sessions
// authenticated before it.
func (m *MemoryStore) RevokeUser(_ context.Context, userID int64, exceptKey string, reason EndReason) (int, error) {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	return m.revokeUserLocked(userID, exceptKey, reason, now), nil
}

// RevokeUsers is RevokeUser for each of userIDs, under one hold of the
// store's lock.
func (m *MemoryStore) RevokeUsers(_ context.Context, userIDs []int64, exceptKey string, reason EndReason) (int, error) {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	n := 0
	for _, id := range slices.Compact(slices.Sorted(slices.Values(userIDs))) {
		n += m.revokeUserLocked(id, exceptKey, reason, now)
	}
	return n, nil
}

// revokeUserLocked ends every session of userID but exceptKey and records
// the time of the revocation, keeping the latest; it returns how many
// sessions it ended.
func (m *MemoryStore) revokeUserLocked(userID int64, exceptKey string, reason EndReason, now time.Time) int {
	at := now.UnixMilli()
	if rv, ok := m.revoked[userID]; ok && now.Before(rv.until) {
		at = max(at, rv.at)
	}
	m.revoked[userID] = memoryRevocation{at: at, until: now.Add(m.opts.tombstoneLifetime())}
	n := 0
	for _, k := range m.pruneUserLocked(userID, now) {
		if k != exceptKey {
			m.endLocked(k, reason, now)
			n++
		}
	}
	return n
}

// EndReason returns the reason the tombstone of key records.
func (m *MemoryStore) EndReason(_ context.Context, key string) (EndReason, error) {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.tombstonedLocked(key, now) {
		return "", nil
	}
	return m.tombstones[key].reason, nil
}

// Count returns how many sessions are live.
func (m *MemoryStore) Count(context.Context) (int, error) {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, e := range m.sessions {
		if now.Before(e.expires) {
			n++
		}
	}
	return n, nil
}

// Recent returns a page of live sessions, most recently active (latest
// expiry) first; ties go by key, descending, as Redis orders them.
func (m *MemoryStore) Recent(_ context.Context, offset, limit int) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	offset = max(offset, 0)
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := slices.Collect(maps.Keys(m.sessions))
	keys = slices.DeleteFunc(keys, func(k string) bool { return !now.Before(m.sessions[k].expires) })
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(m.sessions[b].expires.Compare(m.sessions[a].expires), cmp.Compare(b, a))
	})
	if offset >= len(keys) {
		return []Entry{}, nil
	}
	keys = keys[offset:min(offset+limit, len(keys))]
	entries := make([]Entry, 0, len(keys))
	for _, k := range keys {
		entries = append(entries, Entry{Key: k, Data: clone(m.sessions[k].data)})
	}
	return entries, nil
}

// liveLocked returns the session under key unless it is missing or expired.
func (m *MemoryStore) liveLocked(key string, now time.Time) (memoryEntry, bool) {
	e, ok := m.sessions[key]
	if !ok || !now.Before(e.expires) {
		return memoryEntry{}, false
	}
	return e, true
}

// tombstonedLocked reports whether key has an unexpired tombstone.
func (m *MemoryStore) tombstonedLocked(key string, now time.Time) bool {
	t, ok := m.tombstones[key]
	return ok && now.Before(t.until)
}

// pruneUserLocked drops from userID's index every session past its absolute
// expiry or no longer live, and returns the live keys.
func (m *MemoryStore) pruneUserLocked(userID int64, now time.Time) []string {
	idx := m.users[userID]
	live := make([]string, 0, len(idx))
	for k, abs := range idx {
		if _, ok := m.liveLocked(k, now); ok && now.Before(abs) {
			live = append(live, k)
			continue
		}
		delete(idx, k) // an expired session itself goes at the next sweep
	}
	if len(idx) == 0 {
		delete(m.users, userID)
	}
	return live
}

// removeLocked drops the session under key and its index entry.
func (m *MemoryStore) removeLocked(key string) {
	e, ok := m.sessions[key]
	if !ok {
		return
	}
	delete(m.sessions, key)
	if idx := m.users[e.userID]; idx != nil {
		delete(idx, key)
		if len(idx) == 0 {
			delete(m.users, e.userID)
		}
	}
}

// endLocked removes the session under key and leaves a tombstone recording
// reason for Options.Lifetime.
func (m *MemoryStore) endLocked(key string, reason EndReason, now time.Time) {
	m.removeLocked(key)
	m.tombstones[key] = memoryTombstone{reason: reason, until: now.Add(m.opts.tombstoneLifetime())}
}

// sweepLocked drops expired sessions, index entries, tombstones and
// revocation records, at most once per sweepEvery, so the cost is amortised
// over writes.
func (m *MemoryStore) sweepLocked(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for k, e := range m.sessions {
		if !now.Before(e.expires) {
			m.removeLocked(k)
		}
	}
	for userID := range m.users {
		m.pruneUserLocked(userID, now)
	}
	for k, t := range m.tombstones {
		if !now.Before(t.until) {
			delete(m.tombstones, k)
		}
	}
	for id, rv := range m.revoked {
		if !now.Before(rv.until) {
			delete(m.revoked, id)
		}
	}
}

// clone copies b, so neither the caller nor the store sees the other's later
// changes.
func clone(b []byte) []byte {
	return append([]byte(nil), b...)
}
