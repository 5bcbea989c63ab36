package session

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// RedisSessionPrefix is the prefix of every session key in Redis (the
// session's store key follows it): what a cache of sessions tracks.
const RedisSessionPrefix = "hp:s:"

// Key layout. A tombstone lives under its own prefix, so no key Find can be
// asked for ever names one. The indexes hold bare session keys as members.
// Every key of one user carries the user's shard tag as a Redis hash tag
// (see ShardTags): a session key starts with it ("{3f}…"), and the user's
// keys and the global index of the shard put it after their prefix, so
// every script's keys lie in one Redis Cluster slot
// (TestEveryScriptKeepsToOneSlot).
const (
	sessionPrefix     = RedisSessionPrefix
	tombstonePrefix   = "hp:t:"   // + key: the end reason of a deleted session
	userIndexPrefix   = "hp:u:"   // + {tag} + user ID: sorted set, score = absolute expiry (ms)
	globalIndexPrefix = "hp:all:" // + {tag}: the shard's sorted set, score = current expiry (ms)
	userRevokedPrefix = "hp:ur:"  // + {tag} + user ID: time (ms) of the latest RevokeUser, for a lifetime
)

// defaultOpTimeout bounds a store call whose context has no deadline, so a
// dead or hung Redis gives an error instead of a stuck request.
const defaultOpTimeout = 2 * time.Second

var (
	//go:embed scripts/commit.lua
	commitLua string
	//go:embed scripts/delete.lua
	deleteLua string
	//go:embed scripts/lib.lua
	libLua string
	//go:embed scripts/create.lua
	createLua string
	//go:embed scripts/list_user.lua
	listUserLua string
	//go:embed scripts/list_user_keys.lua
	listUserKeysLua string
	//go:embed scripts/count_users.lua
	countUsersLua string
	//go:embed scripts/revoke.lua
	revokeLua string
	//go:embed scripts/revoke_user.lua
	revokeUserLua string
	//go:embed scripts/count.lua
	countLua string
	//go:embed scripts/recent_keys.lua
	recentKeysLua string
	//go:embed scripts/end_replaced.lua
	endReplacedLua string

	//go:embed scripts/list_user_readonly.lua
	listUserReadOnlyLua string
	//go:embed scripts/list_user_keys_readonly.lua
	listUserKeysReadOnlyLua string
	//go:embed scripts/count_users_readonly.lua
	countUsersReadOnlyLua string
	//go:embed scripts/count_readonly.lua
	countReadOnlyLua string
	//go:embed scripts/recent_keys_readonly.lua
	recentKeysReadOnlyLua string
)

// refusedWhenFull is put in front of the scripts that make sessions: this
// shebang line makes Redis 7 treat the script as one that writes, and so
// refuse it whole, before it runs, when Redis could not complete its writes
// (over maxmemory, a read-only replica, min-replicas-to-write unmet).
// Without it Redis checks memory only at a script's first write, and
// create.lua's first write (pruning the indexes) is one that frees memory,
// so a full Redis let sign-ins through. The scripts that end sessions keep
// Redis's default: a sign-out under memory pressure frees memory and should
// go through.
const refusedWhenFull = "#!lua\n"

// readOnly is put in front of the listings' read-only variants: this
// shebang line lets Redis 7 run the script on a read-only replica (and on a
// primary that refuses writes), as EVAL or EVALSHA, and makes any write in
// it an error.
const readOnly = "#!lua flags=no-writes\n"

// listing is a script that lists sessions and prunes the indexes as it
// goes, with its read-only variant, which skips what the other would prune
// and returns the same reply.
type listing struct{ pruning, readOnly *redis.Script }

func newListing(keyCount int, pruning, readOnlySrc string) listing {
	return listing{redis.NewScript(keyCount, pruning), redis.NewScript(keyCount, readOnly+readOnlySrc)}
}

// do runs the pruning script on c or, if the server refuses its writes (a
// replica, answering while the primary cannot be reached, or a primary
// short of replicas after a failover), the read-only variant. A pruning
// script's first command is a write, so a refused one costs a round trip and
// no work.
func (l listing) do(ctx context.Context, c redis.Conn, keysAndArgs ...any) (any, error) {
	reply, err := l.pruning.DoContext(ctx, c, keysAndArgs...)
	if err != nil && noPrimary(err) {
		return l.readOnly.DoContext(ctx, c, keysAndArgs...)
	}
	return reply, err
}

// fanOut runs the listing once for each of calls (its keys and arguments),
// all sent before any reply is read, and returns the replies in order: one
// round trip for every shard on one Redis, one per node on Redis Cluster
// (whose connection sends each to the node that owns its keys). A script a
// server has not cached is sent again in full (redigo's Script falls back
// to EVAL only in a Do); where writes are refused the read-only variant
// runs instead (see do).
func (l listing) fanOut(ctx context.Context, c redis.Conn, calls [][]any) ([]any, error) {
	replies := make([]any, len(calls))
	script := make([]*redis.Script, len(calls))
	full := make([]bool, len(calls))
	pending := make([]int, len(calls))
	for i := range calls {
		script[i], pending[i] = l.pruning, i
	}
	// Three rounds at most: a NOSCRIPT, then a refused write whose
	// read-only variant is not cached either.
	for round := 0; len(pending) > 0; round++ {
		if round == 3 {
			return nil, fmt.Errorf("%d scripts unanswered after %d rounds", len(pending), round)
		}
		for _, i := range pending {
			send := script[i].SendHash
			if full[i] {
				send = script[i].Send
			}
			if err := send(c, calls[i]...); err != nil {
				return nil, err
			}
		}
		if err := c.Flush(); err != nil {
			return nil, err
		}
		// Every reply is read, even after an error, so the connection goes
		// back with nothing pending; the first error is the answer.
		var again []int
		var first error
		for _, i := range pending {
			reply, err := redis.ReceiveWithTimeout(c, timeLeft(ctx))
			var rerr redis.Error
			switch {
			case err == nil:
				replies[i] = reply
			case errors.As(err, &rerr) && strings.HasPrefix(string(rerr), "NOSCRIPT "):
				full[i] = true
				again = append(again, i)
			case noPrimary(err) && script[i] == l.pruning:
				script[i] = l.readOnly
				again = append(again, i)
			default:
				first = cmp.Or(first, err)
			}
		}
		if first != nil {
			return nil, first
		}
		pending = again
	}
	return replies, nil
}

// RedisStore keeps sessions in Redis, one string key per session under
// hp:s:<key>, expiring by itself at the session's end, and indexes them per
// user (hp:u:{<tag>}<user ID>, scored by absolute expiry) and per shard
// (hp:all:{<tag>}, scored by current expiry, so the highest score is the
// most recently active).
//
// It replaces scs's redisstore because that store re-saves a loaded session
// with a plain SET, which brings back a session revoked while a request was
// in flight; it has no contexts, so a dead Redis hangs the request; and it
// offers KEYS-based listing that must never run on a request path. Here only
// Create makes a session, Commit is a Lua script that updates one only while
// it exists, and Delete leaves a tombstone (hp:t:<key>) recording why.
// RevokeUser also records its time (hp:ur:<user ID>, for a session
// lifetime), and Create refuses a session whose user authenticated before it
// or whose replaced session is gone (see Origin), in the same script that
// stores it.
//
// Each method is one round trip; Find, on every authenticated request, is a
// single GET (from the replica while the primary cannot be reached, for a
// store made by NewRedisStoreWithReplica). Scripts reach sessions through
// index members: on Redis Cluster that works because a member carries its
// user's shard tag, so the keys it names lie in the slot of the script's
// declared keys (see ShardTags).
type RedisStore struct {
	pool *redis.Pool
	// replica, if set, answers reads of one session while the primary
	// cannot be reached (see NewRedisStoreWithReplica); primaryDownUntil
	// (Unix nanoseconds) is when reads may try the primary again.
	replica          *redis.Pool
	primaryDownUntil atomic.Int64
	// primaryLease, if set, says until when the primary's replies may be
	// trusted (see NewRedisStoreWithReplicaAndLease); reads outside it go
	// to the replica.
	primaryLease func() time.Time
	// nodeOf, on Redis Cluster, names the primary that holds a key now
	// (see NewRedisClusterStore); nil on one Redis.
	nodeOf func(key string) string
	opts   Options

	commit, del, create, revoke, revokeUser, endReplaced *redis.Script
	// The listings prune the indexes on the primary and read without
	// pruning where writes are refused (see listing).
	listUser, listUserKeys, countUsers, count, recentKeys listing
	// revokeUserSrc is revokeUser's source, which RevokeUsers loads in
	// front of its pipeline.
	revokeUserSrc string
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store over pool. The pool stays the caller's to
// close.
func NewRedisStore(pool *redis.Pool, opts Options) *RedisStore {
	revokeUserSrc := libLua + revokeUserLua
	return &RedisStore{
		pool:         pool,
		opts:         opts,
		commit:       redis.NewScript(3, commitLua),
		del:          redis.NewScript(3, deleteLua),
		create:       redis.NewScript(5, refusedWhenFull+libLua+createLua),
		listUser:     newListing(2, listUserLua, libLua+listUserReadOnlyLua),
		listUserKeys: newListing(2, libLua+listUserKeysLua, libLua+listUserKeysReadOnlyLua),
		countUsers:   newListing(-1, libLua+countUsersLua, libLua+countUsersReadOnlyLua), // key count passed first: it varies
		revoke:       redis.NewScript(2, libLua+revokeLua),
		revokeUser:   redis.NewScript(3, revokeUserSrc),
		count:        newListing(1, countLua, countReadOnlyLua),
		recentKeys:   newListing(1, recentKeysLua, recentKeysReadOnlyLua),
		endReplaced:  redis.NewScript(3, endReplacedLua),

		revokeUserSrc: revokeUserSrc,
	}
}

// NewRedisClusterStore returns a store over a Redis Cluster: the same
// store, over a pool whose connections send each command to the node that
// owns its keys (rediscluster.Cluster.Pool), which every script's keys allow
// (one slot each: see ShardTags); primaryFor names that node for a key
// (rediscluster.Cluster.PrimaryFor). The pool stays the caller's to close.
//
// It has no replica reads or primary lease: Redis Cluster fails a primary
// over by itself, and while it does, the lost primary's shards answer
// errors (the other shards keep working).
func NewRedisClusterStore(pool *redis.Pool, primaryFor func(key string) string, opts Options) *RedisStore {
	s := NewRedisStore(pool, opts)
	s.nodeOf = primaryFor
	return s
}

// FindCtx returns the session stored under key: one GET, from the
// replica if the primary cannot be reached.
func (s *RedisStore) FindCtx(ctx context.Context, key string) ([]byte, bool, error) {
	var b []byte
	fromReplica, err := s.read(ctx, "find", func(ctx context.Context, c redis.Conn) (err error) {
		// DoWithTimeout, not DoContext: redigo's DoContext starts a goroutine
		// and a channel per command (7 % of the CPU on the read path); the
		// deadline is kept, only cancellation mid-GET is not.
		b, err = redis.Bytes(redis.DoWithTimeout(c, timeLeft(ctx), "GET", sessionPrefix+key))
		return err
	})
	if errors.Is(err, redis.ErrNil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if fromReplica && s.goneFromLivePrimary(ctx, key) {
		return nil, false, nil
	}
	return b, true, nil
}

// FindExpiring is FindCtx that also says how long Redis keeps the session
// (its time to live): one round trip (GET and PTTL pipelined), for a cache
// that must not keep a session longer than the store would. A session read
// from the replica comes with a time to live of zero, which a cache keeps
// nowhere: the replica may lag behind an invalidation the cache has
// already applied, and a copy cached from it could outlive a revocation.
func (s *RedisStore) FindExpiring(ctx context.Context, key string) ([]byte, time.Duration, bool, error) {
	var replies []any
	fromReplica, err := s.read(ctx, "find", func(ctx context.Context, c redis.Conn) (err error) {
		if err := c.Send("GET", sessionPrefix+key); err != nil {
			return err
		}
		if err := c.Send("PTTL", sessionPrefix+key); err != nil {
			return err
		}
		// An empty command flushes and returns every pending reply.
		replies, err = redis.Values(redis.DoWithTimeout(c, timeLeft(ctx), ""))
		if err == nil && len(replies) != 2 {
			err = fmt.Errorf("%d replies to GET and PTTL", len(replies))
		}
		return err
	})
	if err != nil {
		return nil, 0, false, err
	}
	b, err := redis.Bytes(replies[0], nil)
	if errors.Is(err, redis.ErrNil) || err == nil && fromReplica && s.goneFromLivePrimary(ctx, key) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("session store: find: %w", err)
	}
	ms, err := redis.Int64(replies[1], nil)
	if err != nil {
		return nil, 0, false, fmt.Errorf("session store: find: %w", err)
	}
	switch {
	case ms == -2: // gone between the two commands
		return nil, 0, false, nil
	case ms < 0, fromReplica: // no expiry (never written here), or a replica's copy: keep it nowhere
		ms = 0
	}
	return b, time.Duration(ms) * time.Millisecond, true, nil
}

// CommitCtx updates the session under key to b, until the sooner of expiry
// and the end of the idle window, and refreshes its place in the global
// index. It writes nothing and returns ErrRevoked if the session is not there
// (deleted, expired or never created). The expiry is worked out here with
// Options.Now and sent as a time to live, so Redis's clock does not matter.
func (s *RedisStore) CommitCtx(ctx context.Context, key string, b []byte, expiry time.Time) error {
	tag, ok := KeyTag(key)
	if !ok {
		return ErrRevoked // no Create takes such a key: it holds no session
	}
	now := s.opts.now()
	expires := s.opts.expiry(now, expiry)
	ttl := expires.Sub(now).Milliseconds() // under 1ms counts as expired
	var done int
	err := s.with(ctx, "commit", func(ctx context.Context, c redis.Conn) (err error) {
		done, err = redis.Int(s.commit.DoContext(ctx, c,
			sessionPrefix+key, tombstonePrefix+key, globalIndex(tag),
			b, ttl, expires.UnixMilli(), key))
		return err
	})
	if err != nil {
		return err
	}
	if done == 0 {
		return ErrRevoked
	}
	return nil
}

// DeleteCtx removes the session under key and leaves a tombstone recording
// EndedSignedOut, which makes Create of key fail for Options.Lifetime.
func (s *RedisStore) DeleteCtx(ctx context.Context, key string) error {
	tag, ok := KeyTag(key)
	if !ok {
		return nil // no Create takes such a key, so none can be made
	}
	ttl := s.opts.tombstoneLifetime().Milliseconds()
	return s.with(ctx, "delete", func(ctx context.Context, c redis.Conn) error {
		if _, err := s.del.DoContext(ctx, c,
			sessionPrefix+key, tombstonePrefix+key, globalIndex(tag),
			ttl, string(EndedSignedOut), key); err != nil {
			return err
		}
		return s.waitReplicas(ctx, c)
	})
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

// Ping checks that Redis answers reads: the primary, or else the replica
// when the store has one, since signed-in pages are then still served
// (writes answer ErrNoPrimary meanwhile). It asks for a key that never
// exists rather than PING, which a replica that refuses reads
// (replica-serve-stale-data no, link down) still answers.
func (s *RedisStore) Ping(ctx context.Context) error {
	_, err := s.read(ctx, "ping", func(ctx context.Context, c redis.Conn) error {
		_, err := redis.DoContext(c, ctx, "EXISTS", sessionPrefix)
		return err
	})
	return err
}

// Create stores a new session of userID under key and indexes it, enforcing
// limit and checking origin, in one script: see scripts/create.lua.
func (s *RedisStore) Create(ctx context.Context, key string, userID int64, data []byte, expiry time.Time, limit Limit, origin Origin) ([]string, error) {
	if err := limit.check(); err != nil {
		return nil, fmt.Errorf("session store: create: %w", err)
	}
	if err := checkShard(key, userID); err != nil {
		return nil, err
	}
	now := s.opts.now()
	expires := s.opts.expiry(now, expiry)
	ttl := expires.Sub(now).Milliseconds()
	if ttl <= 0 {
		return nil, fmt.Errorf("session store: create: %w", errExpired)
	}
	// A replaced session in another shard (the request's session was
	// another user's) is out of create.lua's reach on Redis Cluster: it is
	// ended after the new session is stored (see createReplacingElsewhere).
	replaces := origin.Replaces
	if tag, _ := KeyTag(replaces); replaces != "" && tag != UserTag(userID) {
		replaces = ""
	}
	tag := UserTag(userID)
	var reply []string
	err := s.with(ctx, "create", func(ctx context.Context, c redis.Conn) (err error) {
		reply, err = redis.Strings(s.create.DoContext(ctx, c,
			sessionPrefix+key, tombstonePrefix+key, userIndex(userID), globalIndex(tag), userRevoked(userID),
			now.UnixMilli(), sessionPrefix, tombstonePrefix, key,
			data, ttl, expiry.UnixMilli(), expires.UnixMilli(),
			limit.Max, string(limit.Policy),
			s.opts.tombstoneLifetime().Milliseconds(), string(EndedTooMany),
			replaces, origin.authenticatedMilli(now), string(EndedSignedOut)))
		if err == nil && len(reply) > 0 && reply[0] == "ok" {
			err = s.waitReplicas(ctx, c)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch status := reply[0]; status {
	case "ok":
		if replaces != origin.Replaces {
			return reply[1:], s.endReplacedElsewhere(ctx, key, origin.Replaces)
		}
		return reply[1:], nil
	case "revoked":
		return nil, ErrRevoked
	case "full":
		return nil, ErrTooManySessions
	case "in-use":
		return nil, fmt.Errorf("session store: create: %w", errKeyInUse)
	default:
		return nil, fmt.Errorf("session store: create: unexpected script reply %q", status)
	}
}

// endReplacedElsewhere ends the session under replaced, in another shard
// than the new session under key, which Create has just stored: the second
// of two steps, each atomic, where one Create in one shard is a single step.
// If replaced was no longer live (revoked while the request was in flight)
// it deletes the new session and returns ErrRevoked, so, as in one step, the
// request signs nobody in. Only a Create that stored its session gets here:
// one that failed left the replaced session as it was. What differs from
// one step: sessions evicted for the new one stay evicted, and for a moment
// the new session existed, though its token was never sent to anyone.
func (s *RedisStore) endReplacedElsewhere(ctx context.Context, key, replaced string) error {
	tag, _ := KeyTag(replaced)
	var ended int
	err := s.with(ctx, "create: end replaced session", func(ctx context.Context, c redis.Conn) (err error) {
		ended, err = redis.Int(s.endReplaced.DoContext(ctx, c,
			sessionPrefix+replaced, tombstonePrefix+replaced, globalIndex(tag),
			s.opts.tombstoneLifetime().Milliseconds(), string(EndedSignedOut), replaced))
		if err == nil && ended == 1 {
			err = s.waitReplicas(ctx, c)
		}
		return err
	})
	if err != nil {
		return err
	}
	if ended == 0 {
		if err := s.DeleteCtx(ctx, key); err != nil {
			return fmt.Errorf("session store: create: undo after the replaced session ended: %w", err)
		}
		return ErrRevoked
	}
	return nil
}

// ListUser returns userID's live sessions, pruning the user's index: one
// script, O(that user's sessions). While the primary cannot be reached the
// replica answers, without pruning (see listing).
func (s *RedisStore) ListUser(ctx context.Context, userID int64) ([]Entry, error) {
	var entries []Entry
	_, err := s.read(ctx, "list user", func(ctx context.Context, c redis.Conn) (err error) {
		entries, err = entryPairs(s.listUser.do(ctx, c,
			userIndex(userID), globalIndex(UserTag(userID)), s.opts.now().UnixMilli(), sessionPrefix))
		return err
	})
	return entries, err
}

// ListUserKeys returns the keys of userID's live sessions, pruning the
// user's index: one script, O(that user's sessions), no session data sent;
// from the replica, without pruning, while the primary cannot be reached.
func (s *RedisStore) ListUserKeys(ctx context.Context, userID int64) ([]string, error) {
	var keys []string
	_, err := s.read(ctx, "list user keys", func(ctx context.Context, c redis.Conn) (err error) {
		keys, err = redis.Strings(s.listUserKeys.do(ctx, c,
			userIndex(userID), globalIndex(UserTag(userID)), s.opts.now().UnixMilli(), sessionPrefix))
		return err
	})
	return keys, err
}

// CountUsers returns how many live sessions each of userIDs has, pruning
// each user's index: one script per shard the users fall in, all sent in
// one round trip (per Redis Cluster node), O(their sessions); from the
// replica, without pruning, while the primary cannot be reached.
func (s *RedisStore) CountUsers(ctx context.Context, userIDs []int64) (map[int64]int, error) {
	ids := slices.Compact(slices.Sorted(slices.Values(userIDs)))
	counts := make(map[int64]int, len(ids))
	if len(ids) == 0 {
		return counts, nil
	}
	byTag := map[string][]int64{}
	for _, id := range ids {
		tag := UserTag(id)
		byTag[tag] = append(byTag[tag], id)
	}
	tags := slices.Sorted(maps.Keys(byTag))
	now := s.opts.now().UnixMilli()
	calls := make([][]any, len(tags))
	for i, tag := range tags {
		args := make([]any, 0, 4+len(byTag[tag]))
		args = append(args, 1+len(byTag[tag]), globalIndex(tag))
		for _, id := range byTag[tag] {
			args = append(args, userIndex(id))
		}
		calls[i] = append(args, now, sessionPrefix)
	}
	_, err := s.read(ctx, "count users", func(ctx context.Context, c redis.Conn) error {
		replies, err := s.countUsers.fanOut(ctx, c, calls)
		if err != nil {
			return err
		}
		for i, tag := range tags {
			n, err := redis.Ints(replies[i], nil)
			if err == nil && len(n) != len(byTag[tag]) {
				err = fmt.Errorf("script returned %d counts for %d users", len(n), len(byTag[tag]))
			}
			if err != nil {
				return err
			}
			for j, id := range byTag[tag] {
				counts[id] = n[j]
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// Revoke ends those of keys that are userID's live sessions, recording
// reason: one script.
func (s *RedisStore) Revoke(ctx context.Context, userID int64, keys []string, reason EndReason) (int, error) {
	// A key of another shard is not userID's: leaving it out keeps the
	// script to one slot.
	keys = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return !inShardOf(k, userID) })
	if len(keys) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 7+len(keys))
	args = append(args, userIndex(userID), globalIndex(UserTag(userID)),
		s.opts.now().UnixMilli(), sessionPrefix, tombstonePrefix,
		string(reason), s.opts.tombstoneLifetime().Milliseconds())
	for _, k := range keys {
		args = append(args, k)
	}
	var n int
	err := s.with(ctx, "revoke", func(ctx context.Context, c redis.Conn) (err error) {
		n, err = redis.Int(s.revoke.DoContext(ctx, c, args...))
		if err == nil && n > 0 {
			err = s.waitReplicas(ctx, c)
		}
		return err
	})
	return n, err
}

// RevokeUser ends every session of userID but exceptKey, recording reason,
// and records the time for Create to check: one script, O(that user's
// sessions).
func (s *RedisStore) RevokeUser(ctx context.Context, userID int64, exceptKey string, reason EndReason) (int, error) {
	if !inShardOf(exceptKey, userID) {
		exceptKey = "" // not one of userID's sessions: nothing to keep
	}
	var n int
	err := s.with(ctx, "revoke user", func(ctx context.Context, c redis.Conn) (err error) {
		n, err = redis.Int(s.revokeUser.DoContext(ctx, c,
			userIndex(userID), globalIndex(UserTag(userID)), userRevoked(userID),
			s.opts.now().UnixMilli(), sessionPrefix, tombstonePrefix,
			string(reason), s.opts.tombstoneLifetime().Milliseconds(), exceptKey))
		// Wait even when no session ended: the recorded time is what stops
		// a sign-in in flight, and a failover must not lose it.
		if err == nil {
			err = s.waitReplicas(ctx, c)
		}
		return err
	})
	return n, err
}

// revokeUsersInFlight is how many of RevokeUsers' scripts may wait in
// Redis at once. Redis runs every complete command a client has sent before
// it turns to the next client, so whatever RevokeUsers has queued is what a
// page view waits behind. Two keep Redis busy (the next script is there
// when one ends, so no round trip is waited for) and page views behind at
// most two users' revocations. Measured by BenchmarkSignOutEveryone
// (1 000 000 sessions, 100 a user, 2 shared cores): with a page of 500 users
// in one round trip, signing everyone out took 7.9 s and a concurrent GET
// waited 107 ms on average and 235 ms at worst (1.4 s on a busier run);
// with two in flight, 9.0 to 10.5 s, and the GET waited 2 ms on average,
// 7 ms at the 99th percentile, 17 to 24 ms at worst.
const revokeUsersInFlight = 2

// RevokeUsers ends every session of each of userIDs but exceptKey,
// recording reason and each user's revocation time: revoke_user.lua once per
// user, O(that user's sessions), on one connection that keeps
// revokeUsersInFlight scripts queued (a new one sent as each reply comes
// back, so Redis never waits for the network), then one WAIT when the store
// waits for replicas. On an error it stops sending and returns how many
// sessions the users whose scripts did run lost.
//
// One script per user, never one over the batch: Redis serves nobody else
// while a script runs, so a script over 500 users of 100 sessions each
// would stall every replica's page views for the whole batch.
//
// Each reply must come within the caller's deadline or, without one,
// within defaultOpTimeout of the one before: a hung Redis fails the call in
// seconds, while a long batch on a busy one still completes.
func (s *RedisStore) RevokeUsers(ctx context.Context, userIDs []int64, exceptKey string, reason EndReason) (int, error) {
	ids := slices.Compact(slices.Sorted(slices.Values(userIDs)))
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := s.revokeUsers(ctx, ids, exceptKey, reason)
	if err != nil && noPrimary(err) {
		err = &noPrimaryError{err}
	}
	return n, wrapOp("revoke users", err)
}

func (s *RedisStore) revokeUsers(ctx context.Context, ids []int64, exceptKey string, reason EndReason) (n int, err error) {
	within := func() time.Duration { return defaultOpTimeout }
	if _, ok := ctx.Deadline(); ok {
		within = func() time.Duration { return timeLeft(ctx) }
	}
	getCtx, cancel := bound(ctx)
	c, err := s.pool.GetContext(getCtx)
	cancel()
	if err != nil {
		return 0, &unreachableError{err}
	}
	defer c.Close()
	defer func() {
		if err != nil && c.Err() != nil {
			err = &unreachableError{err}
		}
	}()

	now, ttl := s.opts.now().UnixMilli(), s.opts.tombstoneLifetime().Milliseconds()
	sent := 0
	send := func() error {
		id := ids[sent]
		sent++
		except := exceptKey
		if !inShardOf(except, id) {
			except = "" // not one of id's sessions
		}
		return s.revokeUser.SendHash(c,
			userIndex(id), globalIndex(UserTag(id)), userRevoked(id),
			now, sessionPrefix, tombstonePrefix,
			string(reason), ttl, except)
	}
	// The script is loaded in front, in the same round trip: on a Redis that
	// has not cached it (restarted, or a replica just promoted) every
	// EVALSHA would fail, and redigo falls back to EVAL only in a Do, not in
	// a pipeline.
	if err := c.Send("SCRIPT", "LOAD", s.revokeUserSrc); err != nil {
		return 0, err
	}
	for sent < len(ids) && sent < revokeUsersInFlight {
		if err := send(); err != nil {
			return 0, err
		}
	}
	if err := c.Flush(); err != nil {
		return 0, err
	}
	// Every reply to what was sent is read, even after an error, so the
	// connection goes back to the pool with nothing pending; the first
	// error is the answer. After a connection error redigo answers the
	// rest at once.
	_, first := redis.ReceiveWithTimeout(c, within())
	for received := 0; received < sent; received++ {
		ended, err := redis.Int(redis.ReceiveWithTimeout(c, within()))
		if err != nil {
			first = cmp.Or(first, err)
		} else {
			n += ended
		}
		if first == nil && sent < len(ids) {
			if err := send(); err != nil {
				first = err
			} else if err := c.Flush(); err != nil {
				first = err
			}
		}
	}
	if first != nil {
		return n, first
	}
	// Wait even when no session ended, as RevokeUser does.
	return n, s.waitReplicasOf(ctx, c, ids)
}

// waitReplicasOf is waitReplicas after writes to the shards of userIDs. On
// one Redis that is one WAIT. On Redis Cluster WAIT counts only the writes
// of the node that receives it, so each primary the users' shards are on
// gets one, sent after a read of one of its keys (the cluster connection
// sends a keyless command to the node of the command before it).
func (s *RedisStore) waitReplicasOf(ctx context.Context, c redis.Conn, userIDs []int64) error {
	if s.opts.WaitReplicas <= 0 {
		return nil
	}
	if s.nodeOf == nil {
		return s.waitReplicas(ctx, c)
	}
	seen := map[string]bool{}
	for _, id := range userIDs {
		key := globalIndex(UserTag(id))
		if node := s.nodeOf(key); !seen[node] {
			seen[node] = true
			if _, err := redis.DoContext(c, ctx, "EXISTS", key); err != nil {
				return err
			}
			if err := s.waitReplicas(ctx, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// EndReason returns the reason the tombstone of key records: one GET, from
// the replica if the primary cannot be reached.
func (s *RedisStore) EndReason(ctx context.Context, key string) (EndReason, error) {
	var reason string
	_, err := s.read(ctx, "end reason", func(ctx context.Context, c redis.Conn) (err error) {
		reason, err = redis.String(redis.DoContext(c, ctx, "GET", tombstonePrefix+key))
		return err
	})
	if errors.Is(err, redis.ErrNil) {
		return "", nil
	}
	return EndReason(reason), err
}

// Count returns how many sessions are live, pruning the global index of
// every shard: ShardTags scripts, sent in one round trip (per Redis Cluster
// node); from the replica, without pruning, while the primary cannot be
// reached.
func (s *RedisStore) Count(ctx context.Context) (int, error) {
	now := s.opts.now().UnixMilli()
	calls := make([][]any, ShardTags)
	for i := range calls {
		calls[i] = []any{globalIndex(ShardTag(i)), now}
	}
	var n int
	_, err := s.read(ctx, "count", func(ctx context.Context, c redis.Conn) error {
		replies, err := s.count.fanOut(ctx, c, calls)
		if err != nil {
			return err
		}
		n = 0
		for _, r := range replies {
			k, err := redis.Int(r, nil)
			if err != nil {
				return err
			}
			n += k
		}
		return nil
	})
	return n, err
}

// Recent returns a page of live sessions, most recently active first: the
// first offset+limit ranks of every shard's global index, in one round trip
// (per Redis Cluster node), merged, and the sessions of the page read in a
// second; from the replica while the primary cannot be reached. A session
// that vanished since it was indexed is skipped, so a page may hold fewer
// than limit. The first step sends up to ShardTags × (offset+limit) index
// entries, so deep pages cost more: the admin list pages by 50.
func (s *RedisStore) Recent(ctx context.Context, offset, limit int) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	offset = max(offset, 0)
	now := s.opts.now().UnixMilli()
	calls := make([][]any, ShardTags)
	for i := range calls {
		calls[i] = []any{globalIndex(ShardTag(i)), now, offset + limit}
	}
	var entries []Entry
	_, err := s.read(ctx, "recent", func(ctx context.Context, c redis.Conn) error {
		replies, err := s.recentKeys.fanOut(ctx, c, calls)
		if err != nil {
			return err
		}
		type ranked struct {
			key   string
			score int64
		}
		var all []ranked
		for _, r := range replies {
			pairs, err := redis.Strings(r, nil)
			if err != nil {
				return err
			}
			for i := 0; i+1 < len(pairs); i += 2 {
				score, err := strconv.ParseInt(pairs[i+1], 10, 64)
				if err != nil {
					return fmt.Errorf("index score %q: %w", pairs[i+1], err)
				}
				all = append(all, ranked{pairs[i], score})
			}
		}
		// Latest expiry first, ties by key, as one index's ZREVRANGE
		// orders them.
		slices.SortFunc(all, func(a, b ranked) int {
			return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(b.key, a.key))
		})
		if offset >= len(all) {
			entries = nil
			return nil
		}
		page := all[offset:min(len(all), offset+limit)]
		for _, p := range page {
			if err := c.Send("GET", sessionPrefix+p.key); err != nil {
				return err
			}
		}
		data, err := redis.ByteSlices(redis.DoWithTimeout(c, timeLeft(ctx), ""))
		if err == nil && len(data) != len(page) {
			err = fmt.Errorf("%d replies to %d GETs", len(data), len(page))
		}
		if err != nil {
			return err
		}
		entries = make([]Entry, 0, len(page))
		for i, p := range page {
			if data[i] != nil {
				entries = append(entries, Entry{Key: p.key, Data: data[i]})
			}
		}
		return nil
	})
	return entries, err
}

// waitReplicas runs WAIT on c, whose last command was a write, when the
// store is configured to: the write must reach Options.WaitReplicas replicas
// within Options.WaitTimeout, or ErrNotReplicated.
func (s *RedisStore) waitReplicas(ctx context.Context, c redis.Conn) error {
	if s.opts.WaitReplicas <= 0 {
		return nil
	}
	timeout := s.opts.WaitTimeout
	if timeout <= 0 {
		timeout = 100 * time.Millisecond
	}
	n, err := redis.Int(redis.DoContext(c, ctx, "WAIT", s.opts.WaitReplicas, timeout.Milliseconds()))
	if err != nil {
		return err
	}
	if n < s.opts.WaitReplicas {
		return fmt.Errorf("%w: %d of %d replicas within %v", ErrNotReplicated, n, s.opts.WaitReplicas, timeout)
	}
	return nil
}

// timeLeft is how long ctx has before its deadline (with always sets one).
func timeLeft(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return defaultOpTimeout
}

// with runs f on a connection to the primary, under a deadline of
// defaultOpTimeout unless ctx has one, and wraps its error with the
// operation's name; an error that says no primary took the command is
// ErrNoPrimary.
func (s *RedisStore) with(ctx context.Context, op string, f func(ctx context.Context, c redis.Conn) error) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	err := on(ctx, s.pool, f)
	if err != nil && noPrimary(err) {
		err = &noPrimaryError{err}
	}
	return wrapOp(op, err)
}

// bound gives ctx a deadline of defaultOpTimeout unless it has one.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultOpTimeout)
}

// userIndex is the key of userID's index.
func userIndex(userID int64) string {
	return userIndexPrefix + "{" + UserTag(userID) + "}" + strconv.FormatInt(userID, 10)
}

// userRevoked is the key of the time of userID's latest RevokeUser.
func userRevoked(userID int64) string {
	return userRevokedPrefix + "{" + UserTag(userID) + "}" + strconv.FormatInt(userID, 10)
}

// inShardOf reports whether key carries userID's shard tag, as each of the
// user's sessions does.
func inShardOf(key string, userID int64) bool {
	tag, ok := KeyTag(key)
	return ok && tag == UserTag(userID)
}

// globalIndex is the key of the global index of the shard with tag.
func globalIndex(tag string) string {
	return globalIndexPrefix + "{" + tag + "}"
}

// entryPairs reads a script's flat key, data, key, data... reply.
func entryPairs(reply any, err error) ([]Entry, error) {
	vals, err := redis.ByteSlices(reply, err)
	if err != nil {
		return nil, err
	}
	if len(vals)%2 != 0 {
		return nil, fmt.Errorf("odd-length script reply (%d values)", len(vals))
	}
	entries := make([]Entry, 0, len(vals)/2)
	for i := 0; i < len(vals); i += 2 {
		entries = append(entries, Entry{Key: string(vals[i]), Data: vals[i+1]})
	}
	return entries, nil
}
