package session

import (
	"context"
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
type MemoryStore struct {
	opts Options

	mu         sync.Mutex
	sessions   map[string]memoryEntry
	tombstones map[string]time.Time // key → when the tombstone expires
	lastSweep  time.Time
}

type memoryEntry struct {
	data    []byte
	expires time.Time
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(opts Options) *MemoryStore {
	return &MemoryStore{
		opts:       opts,
		sessions:   make(map[string]memoryEntry),
		tombstones: make(map[string]time.Time),
		lastSweep:  opts.now(),
	}
}

// FindCtx returns a copy of the session stored under key, if it has not
// expired.
func (m *MemoryStore) FindCtx(_ context.Context, key string) ([]byte, bool, error) {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.sessions[key]
	if !ok || !now.Before(e.expires) {
		return nil, false, nil
	}
	return append([]byte(nil), e.data...), true, nil
}

// CommitCtx stores b under key until the sooner of expiry and the end of the
// idle window, or returns ErrRevoked if key was deleted.
func (m *MemoryStore) CommitCtx(_ context.Context, key string, b []byte, expiry time.Time) error {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	if until, ok := m.tombstones[key]; ok && now.Before(until) {
		return ErrRevoked
	}
	expires := m.opts.expiry(now, expiry)
	if !now.Before(expires) {
		delete(m.sessions, key)
		return nil
	}
	m.sessions[key] = memoryEntry{data: append([]byte(nil), b...), expires: expires}
	return nil
}

// DeleteCtx removes the session under key and blocks later commits of it
// for Options.Lifetime.
func (m *MemoryStore) DeleteCtx(_ context.Context, key string) error {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	delete(m.sessions, key)
	m.tombstones[key] = now.Add(m.opts.tombstoneLifetime())
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

// sweepLocked drops expired sessions and tombstones, at most once per
// sweepEvery, so the cost is amortised over writes.
func (m *MemoryStore) sweepLocked(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for k, e := range m.sessions {
		if !now.Before(e.expires) {
			delete(m.sessions, k)
		}
	}
	for k, until := range m.tombstones {
		if !now.Before(until) {
			delete(m.tombstones, k)
		}
	}
}
