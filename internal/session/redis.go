package session

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Key prefixes. A tombstone lives under its own prefix, so no key Find can
// be asked for ever names one.
const (
	sessionPrefix   = "hp:s:"
	tombstonePrefix = "hp:t:"
)

// defaultOpTimeout bounds a store call whose context has no deadline, so a
// dead or hung Redis gives an error instead of a stuck request.
const defaultOpTimeout = 2 * time.Second

var (
	//go:embed scripts/commit.lua
	commitLua string
	//go:embed scripts/delete.lua
	deleteLua string
)

// RedisStore keeps sessions in Redis, one string key per session under
// hp:s:<key>, expiring by itself at the session's end.
//
// It replaces scs's redisstore because that store re-saves a loaded session
// with a plain SET, which brings back a session revoked while a request was
// in flight; it has no contexts, so a dead Redis hangs the request; and it
// offers KEYS-based listing that must never run on a request path. Here
// Delete leaves a tombstone (hp:t:<key>) and Commit is a Lua script that
// refuses to write over one.
//
// Each method is one round trip; Find, on every authenticated request, is a
// single GET.
type RedisStore struct {
	pool   *redis.Pool
	opts   Options
	commit *redis.Script
	del    *redis.Script
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store over pool. The pool stays the caller's to
// close.
func NewRedisStore(pool *redis.Pool, opts Options) *RedisStore {
	return &RedisStore{
		pool:   pool,
		opts:   opts,
		commit: redis.NewScript(2, commitLua),
		del:    redis.NewScript(2, deleteLua),
	}
}

// FindCtx returns the session stored under key: one GET.
func (s *RedisStore) FindCtx(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("session store: find: %w", err)
	}
	defer c.Close()
	b, err := redis.Bytes(redis.DoContext(c, ctx, "GET", sessionPrefix+key))
	if errors.Is(err, redis.ErrNil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("session store: find: %w", err)
	}
	return b, true, nil
}

// CommitCtx stores b under key until the sooner of expiry and the end of the
// idle window, or returns ErrRevoked if key was deleted. The expiry is worked
// out here with Options.Now and sent as a time to live, so Redis's clock does
// not matter.
func (s *RedisStore) CommitCtx(ctx context.Context, key string, b []byte, expiry time.Time) error {
	now := s.opts.now()
	ttl := s.opts.expiry(now, expiry).Sub(now).Milliseconds() // under 1ms counts as expired
	ctx, cancel := bound(ctx)
	defer cancel()
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("session store: commit: %w", err)
	}
	defer c.Close()
	done, err := redis.Int(s.commit.DoContext(ctx, c, sessionPrefix+key, tombstonePrefix+key, b, ttl))
	if err != nil {
		return fmt.Errorf("session store: commit: %w", err)
	}
	if done == 0 {
		return ErrRevoked
	}
	return nil
}

// DeleteCtx removes the session under key and leaves a tombstone that blocks
// commits of it for Options.Lifetime.
func (s *RedisStore) DeleteCtx(ctx context.Context, key string) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("session store: delete: %w", err)
	}
	defer c.Close()
	ttl := s.opts.tombstoneLifetime().Milliseconds()
	if _, err := s.del.DoContext(ctx, c, sessionPrefix+key, tombstonePrefix+key, ttl); err != nil {
		return fmt.Errorf("session store: delete: %w", err)
	}
	return nil
}

// Find is FindCtx without a context; it gives up after two seconds.
func (s *RedisStore) Find(key string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), key)
}

// Commit is CommitCtx without a context; it gives up after two seconds.
func (s *RedisStore) Commit(key string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), key, b, expiry)
}

// Delete is DeleteCtx without a context; it gives up after two seconds.
func (s *RedisStore) Delete(key string) error {
	return s.DeleteCtx(context.Background(), key)
}

// Ping checks that Redis answers.
func (s *RedisStore) Ping(ctx context.Context) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("session store: ping: %w", err)
	}
	defer c.Close()
	if _, err := redis.DoContext(c, ctx, "PING"); err != nil {
		return fmt.Errorf("session store: ping: %w", err)
	}
	return nil
}

// bound gives ctx a deadline of defaultOpTimeout unless it has one.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultOpTimeout)
}
