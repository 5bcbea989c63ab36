package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ErrNoPrimary is returned by a Redis store write when no Redis server
// would take it: the primary cannot be reached (killed, partitioned, not
// yet replaced by Sentinel), or the server reached refuses writes because
// it is a replica now (READONLY), has no replica to confirm them
// (NOREPLICAS, min-replicas-to-write) or is still loading. The write may
// not have been made; sessions that exist can still be read from a
// replica (see NewRedisStoreWithReplica).
var ErrNoPrimary = errors.New("session store: no primary takes writes")

// Reading from the replica while the primary cannot be reached.
const (
	// primaryReadTimeout bounds a read from the primary when a replica
	// can answer instead: far above a GET's usual time (under a
	// millisecond; tens under heavy load on two shared cores), far below
	// the request's own deadline, so a hung primary costs a read half a
	// second and leaves it time for the replica.
	primaryReadTimeout = 500 * time.Millisecond
	// primaryRetryAfter is how long reads go straight to the replica after
	// the primary failed one, before one of them tries the primary again:
	// while it is down, dialling it (asking the Sentinels, three attempts)
	// would add a few hundred milliseconds to every read.
	primaryRetryAfter = time.Second
)

// NewRedisStoreWithReplica is NewRedisStore whose reads of one session
// (Find, FindExpiring, EndReason) go to replica when primary cannot be
// reached, and whose Ping succeeds when either answers, so that signed-in
// pages keep being served while no primary is reachable. Nothing is ever
// written to replica; writes fail with ErrNoPrimary instead.
//
// What a replica read may miss: a write the primary had not yet sent to
// it. Sign-ins and revocations are acknowledged only once a replica has
// them (Options.WaitReplicas, Redis WAIT 1), and the replica read is the
// one furthest along the replication stream, so once the primary is lost a
// revoked session whose revocation was acknowledged is never found there,
// and a session whose sign-in was acknowledged always is. The last-seen refresh is not waited for, so a replica read may find
// an older last-seen time (the session's idle end then looks sooner than
// it is, never later). See redisx.SentinelPool.ReplicaPool for which
// replica is read. A read that must see the latest state for a write that
// follows (FreshRead) still goes to the primary only.
func NewRedisStoreWithReplica(primary, replica *redis.Pool, opts Options) *RedisStore {
	return NewRedisStoreWithReplicaAndLease(primary, replica, nil, opts)
}

// NewRedisStoreWithReplicaAndLease is NewRedisStoreWithReplica whose reads
// of one session use the primary's answer only within the primary lease:
// lease returns until when a reply from the primary is known to be the
// current state (redisx.SentinelPool.PrimaryLease; the zero Time for
// none). A read asks the primary only while the lease holds, uses the
// answer only if it came before the end of the lease taken just before
// asking, and otherwise reads the replica; if the replica cannot answer
// either, the read fails. This is what keeps a Hallpass replica cut off
// from the Sentinels together with a primary that is being replaced from
// serving sessions revoked on the new primary (docs/SESSIONS.md, "A
// primary cut off from the Sentinels"). A nil lease always holds, as in
// NewRedisStoreWithReplica. FreshRead still goes to the primary only: the
// write that follows it confirms itself with WAIT.
func NewRedisStoreWithReplicaAndLease(primary, replica *redis.Pool, lease func() time.Time, opts Options) *RedisStore {
	s := NewRedisStore(primary, opts)
	s.replica = replica
	s.primaryLease = lease
	return s
}

// unreachableError is a failure to get any answer from a Redis server (no
// connection, a connection that broke, no reply in time, a server still
// loading its data), as opposed to an answer that was an error.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// noPrimaryError is a write's unreachableError, or Redis's refusal of a
// write because the server is no writable primary: it is ErrNoPrimary and
// keeps the cause.
type noPrimaryError struct{ err error }

func (e *noPrimaryError) Error() string { return e.err.Error() }
func (e *noPrimaryError) Unwrap() error { return e.err }
func (e *noPrimaryError) Is(target error) bool {
	return target == ErrNoPrimary
}

// on runs f on a connection from pool, under ctx's deadline, and marks a
// failure to get an answer with unreachableError.
func on(ctx context.Context, pool *redis.Pool, f func(ctx context.Context, c redis.Conn) error) error {
	c, err := pool.GetContext(ctx)
	if err != nil {
		return &unreachableError{err}
	}
	defer c.Close()
	return answered(c, f(ctx, c))
}

// onNew is on with a new connection from pool's dialer, closed after f,
// where a pooled one may be stale.
func onNew(ctx context.Context, pool *redis.Pool, f func(ctx context.Context, c redis.Conn) error) error {
	if pool.DialContext == nil {
		return on(ctx, pool, f)
	}
	c, err := pool.DialContext(ctx)
	if err != nil {
		return &unreachableError{err}
	}
	defer c.Close()
	return answered(c, f(ctx, c))
}

// answered marks err, f's error on c, with unreachableError unless the
// server answered it. A connection that failed (I/O error, timeout) is
// marked broken; an error reply or a conversion error leaves it usable.
func answered(c redis.Conn, err error) error {
	if err != nil && (c.Err() != nil || isReply(err, "LOADING") || isReply(err, "BUSY")) {
		return &unreachableError{err}
	}
	return err
}

// isReply reports whether err is a Redis error reply starting with code.
func isReply(err error, code string) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(string(re), code+" ")
}

// noPrimary reports whether a write's err means no primary took it.
func noPrimary(err error) bool {
	var ue *unreachableError
	return errors.As(err, &ue) || isReply(err, "READONLY") || isReply(err, "NOREPLICAS") || isReply(err, "MASTERDOWN")
}

// errNoPrimaryLease says a read did not use the primary because the
// primary lease was not held, or ended before the primary's answer came.
var errNoPrimaryLease = errors.New("primary not confirmed by the Sentinels (no lease)")

// read runs f, which only reads, on the primary, or on the replica when
// the primary cannot be reached or its lease is not held, and reports
// whether the replica answered. Its errors are wrapped with the operation's
// name, as with's are, but are never ErrNoPrimary: that says a write was
// refused.
func (s *RedisStore) read(ctx context.Context, op string, f func(ctx context.Context, c redis.Conn) error) (fromReplica bool, err error) {
	if IsFreshRead(ctx) {
		// Before a write that the write itself guards (WAIT).
		ctx, cancel := bound(ctx)
		defer cancel()
		return false, wrapOp(op, on(ctx, s.pool, f))
	}
	if s.replica == nil {
		ctx, cancel := bound(ctx)
		defer cancel()
		_, err := s.onPrimary(ctx, f)
		return false, wrapOp(op, err)
	}
	var primaryErr error
	switch {
	case !s.leaseHeld(s.lease()):
		primaryErr = errNoPrimaryLease
	case !s.avoidingPrimary():
		// The primary's bound is the only timer a read that it answers
		// costs; the replica gets the usual one if it is needed.
		pctx, pcancel := context.WithTimeout(ctx, primaryReadTimeout)
		var answered bool
		answered, primaryErr = s.onPrimary(pctx, f)
		pcancel()
		if answered || ctx.Err() != nil {
			return false, wrapOp(op, primaryErr)
		}
		if !errors.Is(primaryErr, errNoPrimaryLease) {
			s.avoidPrimary()
		}
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	err = on(ctx, s.replica, f)
	var ue *unreachableError
	if errors.As(err, &ue) && ctx.Err() == nil {
		// The pooled connection may have been closed under it: Sentinel
		// closes every client of the replica it promotes. Once more, on a
		// connection of its own.
		err = onNew(ctx, s.replica, f)
	}
	if err == nil || !errors.As(err, &ue) {
		return true, wrapOp(op, err) // an answer, if not a value (a key not there)
	}
	if primaryErr == nil && ctx.Err() == nil {
		// The primary was being avoided, and the replica failed: the
		// primary may be back (a failover promoted the replica, and
		// Sentinel lists no replica until the old primary returns).
		if answered, perr := s.onPrimary(ctx, f); answered && perr == nil {
			s.primaryDownUntil.Store(0)
			return false, nil
		} else {
			primaryErr = perr
		}
	}
	if primaryErr != nil {
		err = fmt.Errorf("replica: %w (primary: %w)", err, primaryErr)
	}
	return true, wrapOp(op, err)
}

// goneFromLivePrimary reports whether the primary, asked without regard to
// the lease, answers that the session of key is not there: for a session
// a replica read found while the primary was not being avoided as
// unreachable, i.e. while the primary lease was not held.
//
// Why: with more than one Redis replica, WAIT 1 may be counted by a replica
// other than the one read, and while the primary lives the replicas still
// move, so the one read may lag behind a revocation that was acknowledged
// (the cluster suite saw a revoked session served for a second this way,
// with the lease lapsed and the primary well). A primary that answers has
// every revocation acknowledged while it was the primary; one acknowledged
// after a failover it did not see is on the replica read, which the
// Sentinels chose on the new side. So the session is served only when both
// have it. A primary that gives no answer is taken to be lost: the replica
// furthest along then holds every acknowledged write (see
// redisx.SentinelPool.ReplicaPool). It costs one EXISTS, only while the
// lease is not held.
func (s *RedisStore) goneFromLivePrimary(ctx context.Context, key string) bool {
	if s.avoidingPrimary() {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, primaryReadTimeout)
	defer cancel()
	var n int
	err := on(pctx, s.pool, func(ctx context.Context, c redis.Conn) (err error) {
		n, err = redis.Int(redis.DoWithTimeout(c, timeLeft(ctx), "EXISTS", sessionPrefix+key))
		return err
	})
	var ue *unreachableError
	if errors.As(err, &ue) {
		s.avoidPrimary()
		return false
	}
	// An error reply proves nothing either way: the replica's answer
	// stands, as it would with no primary.
	return err == nil && n == 0
}

// onPrimary runs f on the primary, within the primary lease, and reports
// whether the primary answered (a value, or an error reply) before the
// lease taken just before asking ended. An answer that came later is not
// used: by then a failover may have made another server the primary, and
// the answer may miss a revocation made there. Without a lease held at
// the start it does not ask.
func (s *RedisStore) onPrimary(ctx context.Context, f func(ctx context.Context, c redis.Conn) error) (answered bool, err error) {
	until := s.lease()
	if !s.leaseHeld(until) {
		return false, errNoPrimaryLease
	}
	err = on(ctx, s.pool, f)
	var ue *unreachableError
	if errors.As(err, &ue) {
		return false, err
	}
	if !s.leaseHeld(until) {
		return false, errNoPrimaryLease
	}
	return true, err
}

// lease returns the end of the primary lease; the zero Time (no lease) for
// a store without one, which leaseHeld treats as always held.
func (s *RedisStore) lease() time.Time {
	if s.primaryLease == nil {
		return time.Time{}
	}
	return s.primaryLease()
}

// leaseHeld reports whether a lease ending at until, as lease returned it,
// holds now.
func (s *RedisStore) leaseHeld(until time.Time) bool {
	return s.primaryLease == nil || time.Now().Before(until)
}

// avoidingPrimary reports whether reads go straight to the replica, the
// primary having failed one less than primaryRetryAfter ago.
func (s *RedisStore) avoidingPrimary() bool {
	until := s.primaryDownUntil.Load()
	return until != 0 && time.Now().UnixNano() < until
}

// avoidPrimary sends reads to the replica for primaryRetryAfter.
func (s *RedisStore) avoidPrimary() {
	s.primaryDownUntil.Store(time.Now().Add(primaryRetryAfter).UnixNano())
}

// wrapOp wraps err, if any, with the operation's name.
func wrapOp(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("session store: %s: %w", op, err)
}
