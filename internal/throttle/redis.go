package throttle

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// defaultOpTimeout bounds a store call whose context has no deadline, so a
// dead or hung Redis gives an error instead of a stuck sign-in.
const defaultOpTimeout = 2 * time.Second

var (
	//go:embed scripts/lib.lua
	libLua string
	//go:embed scripts/fail.lua
	failLua string
	//go:embed scripts/attempt.lua
	attemptLua string
	//go:embed scripts/forgive.lua
	forgiveLua string
)

// RedisStore keeps failure counts in Redis, shared by every replica. Each
// key becomes two Redis keys named after its SHA-256 (base64url), so no user
// name or IP is stored in clear text:
//
//	hp:th:{<hash>}:n  hash: failures counted, and when they are forgotten
//	hp:th:{<hash>}:b  blocked-until, while a wait is in force
//
// Both hold times from the store's clock and expire by themselves once they
// no longer matter, so Redis's own clock never decides a wait and an
// abandoned key costs nothing for long. The hash tag keeps a key's pair in
// one Redis Cluster slot.
//
// The hash is unkeyed: it keeps names and addresses out of sight of anyone
// reading Redis or its dumps, but someone holding a dump can still confirm a
// guessed user name or IP (IPv4's space can be enumerated).
//
// Check is one GET; Fail is one script (scripts/fail.lua), atomic across
// replicas; Reset is one DEL.
type RedisStore struct {
	pool                   *redis.Pool
	now                    func() time.Time
	fail, attempt, forgive *redis.Script
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store over pool on the clock now (nil means
// time.Now). The pool stays the caller's to close.
func NewRedisStore(pool *redis.Pool, now func() time.Time) *RedisStore {
	if now == nil {
		now = time.Now
	}
	return &RedisStore{
		pool:    pool,
		now:     now,
		fail:    redis.NewScript(2, libLua+failLua),
		attempt: redis.NewScript(2, libLua+attemptLua),
		forgive: redis.NewScript(2, libLua+forgiveLua),
	}
}

// Check returns the wait in force for key: one GET. The wait is capped at
// p.MaxDelay, so a replica whose clock runs ahead cannot make another make
// a user wait longer than that.
func (s *RedisStore) Check(ctx context.Context, key string, p Policy) (time.Duration, error) {
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("throttle: check: %w", err)
	}
	_, blocked := redisKeys(key)
	var until int64
	err := s.with(ctx, "check", func(ctx context.Context, c redis.Conn) (err error) {
		until, err = redis.Int64(redis.DoContext(c, ctx, "GET", blocked))
		return err
	})
	if errors.Is(err, redis.ErrNil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	wait := time.Duration(until-s.now().UnixMilli()) * time.Millisecond
	return min(max(wait, 0), p.MaxDelay), nil
}

// Fail records a failure of key and returns the wait now in force: one
// script, see scripts/fail.lua.
func (s *RedisStore) Fail(ctx context.Context, key string, p Policy) (time.Duration, error) {
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("throttle: fail: %w", err)
	}
	count, blocked := redisKeys(key)
	var wait int64
	err := s.with(ctx, "fail", func(ctx context.Context, c redis.Conn) (err error) {
		wait, err = redis.Int64(s.fail.DoContext(ctx, c, count, blocked,
			s.now().UnixMilli(), p.Limit, p.Window.Milliseconds(),
			p.BaseDelay.Milliseconds(), p.MaxDelay.Milliseconds()))
		return err
	})
	if err != nil {
		return 0, err
	}
	return time.Duration(wait) * time.Millisecond, nil
}

// Attempt reserves one attempt of key under p in one script
// (scripts/attempt.lua): the wait in force, counting nothing, or zero with
// the attempt counted as a failure.
func (s *RedisStore) Attempt(ctx context.Context, key string, p Policy) (Verdict, error) {
	if err := p.Validate(); err != nil {
		return Verdict{}, fmt.Errorf("throttle: attempt: %w", err)
	}
	count, blocked := redisKeys(key)
	var reply []int64
	err := s.with(ctx, "attempt", func(ctx context.Context, c redis.Conn) (err error) {
		reply, err = redis.Int64s(s.attempt.DoContext(ctx, c, count, blocked,
			s.now().UnixMilli(), p.Limit, p.Window.Milliseconds(),
			p.BaseDelay.Milliseconds(), p.MaxDelay.Milliseconds()))
		if err == nil && len(reply) != 2 {
			err = fmt.Errorf("unexpected script reply %v", reply)
		}
		return err
	})
	if err != nil {
		return Verdict{}, err
	}
	return Verdict{Wait: time.Duration(reply[0]) * time.Millisecond, Refused: int(reply[1])}, nil
}

// Forgive gives back one attempt that Attempt counted, in one script
// (scripts/forgive.lua).
func (s *RedisStore) Forgive(ctx context.Context, key string, p Policy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("throttle: forgive: %w", err)
	}
	count, blocked := redisKeys(key)
	return s.with(ctx, "forgive", func(ctx context.Context, c redis.Conn) error {
		_, err := s.forgive.DoContext(ctx, c, count, blocked, s.now().UnixMilli(), p.Limit)
		return err
	})
}

// Reset forgets key's failures and lifts its wait: one DEL.
func (s *RedisStore) Reset(ctx context.Context, key string) error {
	count, blocked := redisKeys(key)
	return s.with(ctx, "reset", func(ctx context.Context, c redis.Conn) error {
		_, err := redis.DoContext(c, ctx, "DEL", count, blocked)
		return err
	})
}

// Ping checks that Redis answers.
func (s *RedisStore) Ping(ctx context.Context) error {
	return s.with(ctx, "ping", func(ctx context.Context, c redis.Conn) error {
		_, err := redis.DoContext(c, ctx, "PING")
		return err
	})
}

// with runs f on a pooled connection, under a deadline of defaultOpTimeout
// unless ctx has one (it bounds the wait for a connection too), and wraps its
// error with the operation's name.
func (s *RedisStore) with(ctx context.Context, op string, f func(ctx context.Context, c redis.Conn) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultOpTimeout)
		defer cancel()
	}
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("throttle: %s: %w", op, err)
	}
	defer c.Close()
	if err := f(ctx, c); err != nil {
		return fmt.Errorf("throttle: %s: %w", op, err)
	}
	return nil
}

// redisKeys returns the Redis keys of key's failure count and wait.
func redisKeys(key string) (count, blocked string) {
	sum := sha256.Sum256([]byte(key))
	tag := "hp:th:{" + base64.RawURLEncoding.EncodeToString(sum[:]) + "}:"
	return tag + "n", tag + "b"
}
