// Package session signs people in and keeps them signed in: it ties scs
// (cookie, token, load and save) to Hallpass's rules on idle timeout, absolute
// lifetime and revocation, and provides the stores sessions live in (Redis,
// or memory for a single process and tests).
package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alexedwards/scs/v2"
)

// ErrRevoked is returned by Commit for a session that is not in the store:
// deleted (signed out or revoked) or expired after the request saving it had
// loaded it, or never created. Writing it would bring the session back, so
// nothing is written. Create returns it, writing nothing, for a key that was
// deleted before, when the session it replaces is no longer live, and when
// its user's authentication predates a whole-user revocation (see Origin).
var ErrRevoked = errors.New("session revoked")

// defaultLifetime is how long tombstones last when Options.Lifetime is zero:
// scs's own default session lifetime.
const defaultLifetime = 24 * time.Hour

// Store is where sessions live, keyed by StoreKey of the cookie token: the
// user's shard tag as a Redis hash tag, then the first 126 bits of the
// token's SHA-256, unpadded base64url (21 characters). The
// Manager hands scs a wrapper (hashingStore) that turns each token into its
// key before any Store sees it, so no store ever holds a raw token. scs's
// own HashTokenInStore is off.
//
// Beyond scs.CtxStore's contract, a Store enforces the idle timeout, only
// Create makes sessions — Commit updates a session that exists and otherwise
// writes nothing and returns ErrRevoked — and Delete is final: it leaves a
// tombstone recording EndedSignedOut that makes Create of the key fail for
// Options.Lifetime. sessiontest.RunStoreContract checks every implementation
// against this.
type Store interface {
	scs.CtxStore
	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error
	Registry
}

// ErrTooManySessions is returned by Create under the reject policy when the
// user already has the maximum number of live sessions.
var ErrTooManySessions = errors.New("too many sessions")

// LimitPolicy says what Create does when a user is at the session limit.
type LimitPolicy string

// Limit policies.
const (
	// EvictOldest ends the user's least recently active sessions to make
	// room, with the reason EndedTooMany.
	EvictOldest LimitPolicy = "evict-oldest"
	// Reject refuses the new session with ErrTooManySessions.
	Reject LimitPolicy = "reject"
)

// Limit caps a user's concurrent sessions; Max 0 means no cap. A cap needs
// one of the two policies: Create refuses a Limit without one rather than
// guess.
type Limit struct {
	Max    int
	Policy LimitPolicy
}

// check reports a Limit Create cannot apply.
func (l Limit) check() error {
	switch {
	case l.Max < 0:
		return fmt.Errorf("session limit %d is negative", l.Max)
	case l.Max > 0 && l.Policy != EvictOldest && l.Policy != Reject:
		return fmt.Errorf("unknown session limit policy %q", l.Policy)
	}
	return nil
}

// Errors Create returns for a caller's mistake rather than a store state the
// caller must handle, so they stay unexported.
var (
	// errKeyInUse: keys are 128-bit hashes of fresh 256-bit tokens, so this
	// means a bug, and overwriting would hand one user's index entry to
	// another.
	errKeyInUse = errors.New("key already holds a session")
	// errExpired: the session would end before it was stored.
	errExpired = errors.New("session expiry is not in the future")
	// errWrongShard: the key does not carry its user's shard tag, so on
	// Redis Cluster the session would sit in another slot than its user's
	// index (see ShardTags). The Manager never makes such a key.
	errWrongShard = errors.New("key does not carry its user's shard tag")
)

// checkShard reports a key Create must refuse because it does not carry
// userID's shard tag. Every store refuses it, so the layout is the same
// on one Redis, on Redis Cluster and in memory.
func checkShard(key string, userID int64) error {
	if tag, ok := KeyTag(key); !ok || tag != UserTag(userID) {
		return fmt.Errorf("session store: create: %w", errWrongShard)
	}
	return nil
}

// Origin is where a new session comes from. Create checks it against the
// revocations the store knows of, in the same atomic step that stores the
// session, so a revocation that lands while a sign-in is in flight is never
// undone by that sign-in finishing.
//
// The rule for AuthenticatedAt: RevokeUser records the store's time R
// (Options.Now, whole Unix milliseconds) for the user, keeping the latest R
// it has seen, for Options.Lifetime. Create then refuses a session of that
// user whose authentication time A (whole Unix milliseconds, rounded down)
// is before R, and accepts A >= R. Equal milliseconds are accepted so that
// the device that asked for the revocation and kept its own session
// (RevokeUser's exceptKey) can re-issue its token at once, even on a clock
// that has not moved past the millisecond; a sign-in that began in that same
// millisecond, just before the revocation, is therefore not refused by the
// store. CheckSession's durable check draws the line at the same place
// (created before sessions_valid_after truncated to the millisecond).
//
// A comes from the caller's clock and R from the clock of the store on the
// replica that revoked. In production both are the hosts' wall clocks: skew
// between replicas moves the line by the skew (a sign-in up to the skew too
// early gets through, or one up to the skew late is refused), so replicas
// must keep their clocks synchronised, as the database's sessions_valid_after
// check already assumes. Keeping the latest R means a replica with a slow
// clock cannot move the line back.
type Origin struct {
	// AuthenticatedAt is when the user proved who they are for this
	// session: for a password sign-in, when the sign-in began (before the
	// user was read and the password checked); for a token re-issued by a
	// session that is already signed in, the moment of the re-issue. Zero
	// means now: the store's own clock when it stores the session.
	AuthenticatedAt time.Time
	// Replaces is the key of the session the new one takes over from (the
	// session the request was signed in with), or "" for none. Create
	// stores the new session only if that session is still live and not
	// tombstoned, and deletes it in the same step, leaving a tombstone that
	// records EndedSignedOut, as Delete does; otherwise it returns
	// ErrRevoked and writes nothing.
	Replaces string
}

// authenticatedMilli is origin's authentication time in whole Unix
// milliseconds, now for a zero one: the unit RevokeUser's record uses.
func (o Origin) authenticatedMilli(now time.Time) int64 {
	if o.AuthenticatedAt.IsZero() {
		return now.UnixMilli()
	}
	return o.AuthenticatedAt.UnixMilli()
}

// Entry is one stored session as the registry lists it.
type Entry struct {
	// Key is the store key (StoreKey of the token). It is never shown to
	// anyone: pages use the public ID derived from it.
	Key string
	// Data is the session as scs encoded it.
	Data []byte
}

// Registry is what Hallpass adds to scs's store contract: signed-in sessions
// indexed per user and globally, so listing and revoking one user's sessions
// costs O(that user's sessions) — never a scan of the keyspace — and the
// concurrent-session limit is enforced atomically across replicas.
//
// Indexes clean themselves: entries whose session expired or was deleted are
// pruned whenever an index is read or written.
type Registry interface {
	// Create stores a new signed-in session of userID under key (it must not
	// exist yet) and indexes it, in one atomic step that also enforces limit
	// and checks origin: the session it replaces is ended in the same step
	// (and so does not count toward the limit). It returns the keys of
	// sessions evicted to make room (EvictOldest), or ErrTooManySessions
	// (Reject, nothing written), or ErrRevoked (nothing written) if key was
	// deleted before, if origin.Replaces is not a live session, or if
	// origin.AuthenticatedAt is before userID's latest whole-user revocation.
	Create(ctx context.Context, key string, userID int64, data []byte, expiry time.Time, limit Limit, origin Origin) (evicted []string, err error)
	// ListUser returns every live session of userID, in no particular order.
	ListUser(ctx context.Context, userID int64) ([]Entry, error)
	// ListUserKeys returns the keys of userID's live sessions, in no
	// particular order: ListUser without the session data, for callers that
	// only need to find a key.
	ListUserKeys(ctx context.Context, userID int64) ([]string, error)
	// CountUsers returns how many live sessions each of userIDs has, every
	// listed user present (0 for none), pruning each user's index as
	// ListUser does. It costs one step however many users are listed, so a
	// page of users is not one store call per row.
	CountUsers(ctx context.Context, userIDs []int64) (map[int64]int, error)
	// Revoke deletes the given sessions of userID, leaving tombstones that
	// record reason, and returns how many existed. Keys that are not userID's
	// live sessions are ignored.
	Revoke(ctx context.Context, userID int64, keys []string, reason EndReason) (int, error)
	// RevokeUser deletes every session of userID except the one under
	// exceptKey ("" for none), leaving tombstones that record reason, and
	// returns how many it deleted. In the same step it records the time (the
	// store's now) for Options.Lifetime, so that a sign-in of userID that
	// authenticated before it and is still in flight cannot create a session
	// afterwards (see Origin). It records the time even when it deletes
	// nothing: a user's first sign-in may be the one in flight.
	RevokeUser(ctx context.Context, userID int64, exceptKey string, reason EndReason) (int, error)
	// RevokeUsers is RevokeUser for each of userIDs (duplicates count
	// once), with the same exceptKey and reason, in one call however many
	// users are listed (no round trip of its own per user): it returns how
	// many sessions it deleted in all. Each user's revocation is atomic, as
	// RevokeUser's, but the batch as a whole is not: one user's sessions
	// end before the next user's, so that no single step holds the store
	// for longer than one user's revocation. A caller ending every user's
	// sessions calls it once per page of users.
	RevokeUsers(ctx context.Context, userIDs []int64, exceptKey string, reason EndReason) (int, error)
	// EndReason returns the reason recorded when the session under key was
	// deleted, or "" if no tombstone is there.
	EndReason(ctx context.Context, key string) (EndReason, error)
	// Count returns how many signed-in sessions are live.
	Count(ctx context.Context) (int, error)
	// Recent returns live sessions, most recently active first, skipping
	// offset and returning at most limit.
	Recent(ctx context.Context, offset, limit int) ([]Entry, error)
}

// Options configures a Store.
type Options struct {
	// IdleTimeout caps how long a session lives after its last Commit; zero
	// means no cap beyond the expiry scs passes. scs's own IdleTimeout stays
	// off because it writes on every request.
	IdleTimeout time.Duration
	// Lifetime is the absolute session lifetime, and so how long a tombstone
	// (and RevokeUser's record of its time) must outlive the deletion that
	// wrote it; zero means 24 hours.
	Lifetime time.Duration
	// Now is the clock that decides expiry; nil means time.Now.
	Now func() time.Time
	// WaitReplicas, when above zero, makes the Redis store wait after each
	// session creation and deletion until that many replicas have the
	// write (Redis WAIT), for at most WaitTimeout, and fail with
	// ErrNotReplicated otherwise: asynchronous replication loses the last
	// writes on failover, and a sign-in that may vanish, or a revocation
	// that may come undone, is better refused.
	WaitReplicas int
	// WaitTimeout bounds that wait; zero means 100 ms.
	WaitTimeout time.Duration
}

// ErrNotReplicated is returned when a session write reached the primary
// but not Options.WaitReplicas replicas in time. The write may still
// replicate later, or be lost on a failover.
var ErrNotReplicated = errors.New("session write not confirmed by a replica")

// now reads the configured clock.
func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// tombstoneLifetime is how long a deletion blocks Commit.
func (o Options) tombstoneLifetime() time.Duration {
	if o.Lifetime <= 0 {
		return defaultLifetime
	}
	return o.Lifetime
}

// expiry is when a session committed at now with scs's expiry must end:
// the sooner of that expiry and the end of the idle window.
func (o Options) expiry(now, scsExpiry time.Time) time.Time {
	if o.IdleTimeout > 0 {
		if idle := now.Add(o.IdleTimeout); idle.Before(scsExpiry) {
			return idle
		}
	}
	return scsExpiry
}
