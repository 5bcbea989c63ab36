package sessioncache

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/session"
)

// expiringFinder is a store that can say how long it keeps a session (the
// Redis store): the cache keeps an entry no longer.
type expiringFinder interface {
	FindExpiring(ctx context.Context, key string) ([]byte, time.Duration, bool, error)
}

// Store is a session.Store with a cache in front of its reads and a fence
// after every write that ends a session: such a write returns only once no
// replica can serve the ended session from its cache (see fencer.await).
// Everything else passes through to the store it wraps.
type Store struct {
	session.Store
	link    *Link // nil: no cache of its own (the command line)
	fence   *fencer
	expires expiringFinder // the wrapped store, when it can say

	// bypassed counts reads that went to the store because the link was
	// not trusted; filled, reads through that filled the cache.
	bypassed, filled atomic.Uint64
}

// NewStore returns store with link's cache in front of its reads. Several
// stores may share one link (and so one cache and one entry in Redis's list
// of caching replicas).
//
// A cached session is kept no longer than the store's copy: until its time
// to live in Redis, as read with it, has passed on this host's monotonic
// clock (Redis expires keys by real time too). The idle timeout and
// lifetime are the Manager's to enforce, by its own clock, as without a
// cache.
func NewStore(store session.Store, link *Link) *Store {
	s := &Store{Store: store, link: link, fence: link.fence}
	s.expires, _ = store.(expiringFinder)
	return s
}

// NewAwaitingStore returns store without a cache of its own whose writes
// that end sessions wait, as a caching replica's do, until no replica's
// cache can serve the sessions ended: for a process that keeps no cache
// but shares Redis with replicas that do, such as the command line. It
// hears no confirmations, so it waits out the lease whenever some replica
// is caching.
func NewAwaitingStore(store session.Store, pool *redis.Pool) *Store {
	id, _ := newLinkID("cli")
	return &Store{Store: store, fence: newFencer(pool, nil, id, false)}
}

// NewAwaitingClusterStore is NewAwaitingStore on a Redis Cluster: pool is
// the routing pool, and nodes and dialNode are as LinkOptions.Nodes and
// DialNode (its fences go to every primary).
func NewAwaitingClusterStore(store session.Store, pool *redis.Pool, nodes func() []string, dialNode func(ctx context.Context, addr string) (redis.Conn, error)) *Store {
	id, _ := newLinkID("cli")
	return &Store{Store: store, fence: newFencer(pool, newClusterNodes(nodes, dialNode), id, false)}
}

var _ session.Store = (*Store)(nil)

// FindCtx answers from the cache while the link is trusted, and otherwise
// reads through to the store, filling the cache when the link is
// subscribed and the primary lease holds. A read marked session.FreshRead
// always goes to the store.
func (s *Store) FindCtx(ctx context.Context, key string) ([]byte, bool, error) {
	if s.link == nil || session.IsFreshRead(ctx) {
		return s.Store.FindCtx(ctx, key)
	}
	c := s.link.cache
	if s.link.Trusted() {
		if b, ok := c.get(key, time.Now()); ok {
			return b, true, nil
		}
	} else {
		s.bypassed.Add(1)
	}
	// Fill only with what the primary answers within its lease: the store
	// reads the replica otherwise, which FindExpiring marks uncacheable
	// anyway.
	var fill uint64
	if held, _ := s.link.primaryLease(time.Now()); held && s.link.up() && s.expires != nil {
		fill = c.beginFill(key)
	}
	if fill == 0 {
		return s.Store.FindCtx(ctx, key)
	}
	start := time.Now()
	b, ttl, found, err := s.expires.FindExpiring(ctx, key)
	if err != nil {
		c.endFill(key, fill, nil, time.Time{}, false)
		return nil, false, err
	}
	c.endFill(key, fill, b, start.Add(ttl), found)
	if found {
		s.filled.Add(1)
	}
	return b, found, nil
}

// CommitCtx drops the cached copy and writes through: the store's
// invalidation then reaches every other replica.
func (s *Store) CommitCtx(ctx context.Context, key string, b []byte, expiry time.Time) error {
	s.drop(key)
	return s.Store.CommitCtx(ctx, key, b, expiry)
}

// DeleteCtx deletes the session, then waits until no replica can serve it.
func (s *Store) DeleteCtx(ctx context.Context, key string) error {
	s.drop(key)
	if err := s.Store.DeleteCtx(ctx, key); err != nil {
		return err
	}
	return s.fence.await(ctx, time.Now())
}

// Find is FindCtx without a context.
func (s *Store) Find(key string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), key)
}

// Commit is CommitCtx without a context.
func (s *Store) Commit(key string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), key, b, expiry)
}

// Delete is DeleteCtx without a context.
func (s *Store) Delete(key string) error {
	return s.DeleteCtx(context.Background(), key)
}

// Create creates the session; when that ended others (the session it
// replaces, sessions evicted by the limit) it waits until no replica can
// serve them.
func (s *Store) Create(ctx context.Context, key string, userID int64, data []byte, expiry time.Time, limit session.Limit, origin session.Origin) ([]string, error) {
	evicted, err := s.Store.Create(ctx, key, userID, data, expiry, limit, origin)
	if err != nil || (len(evicted) == 0 && origin.Replaces == "") {
		return evicted, err
	}
	s.drop(evicted...)
	s.drop(origin.Replaces)
	return evicted, s.fence.await(ctx, time.Now())
}

// Revoke ends the sessions, then waits until no replica can serve them.
func (s *Store) Revoke(ctx context.Context, userID int64, keys []string, reason session.EndReason) (int, error) {
	n, err := s.Store.Revoke(ctx, userID, keys, reason)
	if err != nil {
		return n, err
	}
	s.drop(keys...)
	return n, s.fence.await(ctx, time.Now())
}

// RevokeUser ends the user's sessions, then waits until no replica can
// serve them.
func (s *Store) RevokeUser(ctx context.Context, userID int64, exceptKey string, reason session.EndReason) (int, error) {
	n, err := s.Store.RevokeUser(ctx, userID, exceptKey, reason)
	if err != nil {
		return n, err
	}
	return n, s.fence.await(ctx, time.Now())
}

// RevokeUsers ends the users' sessions, then waits until no replica can
// serve them.
func (s *Store) RevokeUsers(ctx context.Context, userIDs []int64, exceptKey string, reason session.EndReason) (int, error) {
	n, err := s.Store.RevokeUsers(ctx, userIDs, exceptKey, reason)
	if err != nil {
		return n, err
	}
	return n, s.fence.await(ctx, time.Now())
}

// drop removes keys from this replica's cache at once, ahead of Redis's
// invalidation.
func (s *Store) drop(keys ...string) {
	if s.link == nil {
		return
	}
	for _, k := range keys {
		if k != "" {
			s.link.cache.invalidate(k)
		}
	}
}
