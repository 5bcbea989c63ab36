package session_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/rediscluster"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// TestEveryScriptKeepsToOneSlot is the Redis Cluster rule checked on one
// Redis: every command the store sends, and every key a script reaches
// through its arguments or through index members, lies in one hash slot,
// computed as Redis computes it (CRC16 of the hash tag). It runs the whole
// store contract suite and the Manager's sign-in, page view, renewal,
// switch of user and sign-out through a connection that records each
// command, then the listings once more on a primary that refuses writes (so
// their read-only variants run), and checks that every script ran. Finally
// every index member must carry its index's shard tag, since the scripts
// reach sessions through them.
func TestEveryScriptKeepsToOneSlot(t *testing.T) {
	srv := testsvc.StartRedis(t)
	rec := &slotRecorder{}
	pool := &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			c, err := redis.DialURLContext(ctx, srv.URL)
			if err != nil {
				return nil, err
			}
			return &recordingConn{Conn: c, rec: rec}, nil
		},
	}
	t.Cleanup(func() { pool.Close() })

	t.Run("Contract", func(t *testing.T) {
		sessiontest.RunStoreContract(t, func(t *testing.T, opts session.Options) session.Store {
			return session.NewRedisStore(pool, opts)
		})
	})
	t.Run("Manager", func(t *testing.T) {
		store := session.NewRedisStore(pool, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
		app := newSignInServer(t, session.NewManager(session.ManagerOptions{
			Store: store, IdleTimeout: time.Hour, Lifetime: time.Hour, ReplicaID: "r1",
		}))
		alice := app.login(t, 1, "")
		alice = app.login(t, 1, alice) // renewed: replaced in one step
		app.get(t, "/whoami", alice)
		bob := app.login(t, 2, alice) // another user's session replaced: two steps
		if got := app.get(t, "/whoami", bob); got != "user2" {
			t.Fatalf("GET /whoami as bob = %q", got)
		}
		app.post(t, "/logout", bob)
	})
	t.Run("ReadOnlyListings", func(t *testing.T) {
		ctx := context.Background()
		store := session.NewRedisStore(pool, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
		user := sessiontest.NewUserID(t)
		if _, err := store.Create(ctx, sessiontest.NewKeyFor(t, user), user, []byte("v"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
			t.Fatal(err)
		}
		// A primary without the replica it must write to refuses writes
		// (NOREPLICAS), as a replica or a cut-off primary does.
		c := srv.Conn(t)
		if _, err := c.Do("CONFIG", "SET", "min-replicas-to-write", 1); err != nil {
			t.Fatal(err)
		}
		defer c.Do("CONFIG", "SET", "min-replicas-to-write", 0)
		for name, call := range map[string]func() error{
			"ListUser":     func() error { _, err := store.ListUser(ctx, user); return err },
			"ListUserKeys": func() error { _, err := store.ListUserKeys(ctx, user); return err },
			"CountUsers":   func() error { _, err := store.CountUsers(ctx, []int64{user}); return err },
			"Count":        func() error { _, err := store.Count(ctx); return err },
			"Recent":       func() error { _, err := store.Recent(ctx, 0, 10); return err },
		} {
			if err := call(); err != nil {
				t.Errorf("%s on a primary refusing writes: %v", name, err)
			}
		}
	})

	for _, v := range rec.violations() {
		t.Error(v)
	}
	ran := rec.scriptsRun()
	for name, src := range session.ScriptSources() {
		if !ran[sha(src)] {
			t.Errorf("script %s never ran: the check does not cover it", name)
		}
	}
	if rec.checked() < 1000 {
		t.Errorf("only %d commands checked; the recorder is not seeing the store", rec.checked())
	}
	checkIndexMembersShareTheirTag(t, srv.Conn(t))
}

// checkIndexMembersShareTheirTag checks every member of every index (a
// user's, a shard's) carries the index's hash tag.
func checkIndexMembersShareTheirTag(t *testing.T, c redis.Conn) {
	t.Helper()
	indexes := 0
	for _, pattern := range []string{"hp:u:*", "hp:all:*"} {
		names, err := redis.Strings(c.Do("KEYS", pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			indexes++
			members, err := redis.Strings(c.Do("ZRANGE", name, 0, -1))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range members {
				if rediscluster.Slot(m) != rediscluster.Slot(name) {
					t.Errorf("index %s holds %s, of another slot (%d, not %d)", name, m, rediscluster.Slot(m), rediscluster.Slot(name))
				}
			}
		}
	}
	if indexes == 0 {
		t.Error("no index left to check")
	}
}

func sha(src string) string {
	sum := sha1.Sum([]byte(src))
	return hex.EncodeToString(sum[:])
}

// slotRecorder checks each command as it is sent.
type slotRecorder struct {
	mu      sync.Mutex
	bad     []string
	scripts map[string]bool
	n       int
}

// keylessCommands name no key; the store sends them after a keyed command
// on the same connection (WAIT), or to any node.
var keylessCommands = map[string]bool{"WAIT": true, "PING": true, "SCRIPT": true, "INFO": true, "": true}

func (r *slotRecorder) record(cmd string, args []any) {
	cmd = strings.ToUpper(cmd)
	if keylessCommands[cmd] {
		return
	}
	strs := make([]string, len(args))
	for i, a := range args {
		strs[i] = fmt.Sprint(a)
		if b, ok := a.([]byte); ok {
			strs[i] = string(b)
		}
	}
	var keys, argv []string
	switch cmd {
	case "EVAL", "EVALSHA":
		n, err := strconv.Atoi(strs[1])
		if err != nil || n < 0 || 2+n > len(strs) {
			r.fail("%s with a bad key count: %q", cmd, strs)
			return
		}
		keys, argv = strs[2:2+n], strs[2+n:]
		r.mu.Lock()
		if r.scripts == nil {
			r.scripts = map[string]bool{}
		}
		if cmd == "EVAL" {
			r.scripts[sha(strs[0])] = true
		} else {
			r.scripts[strs[0]] = true
		}
		r.mu.Unlock()
	case "GET", "PTTL", "EXISTS", "DEL", "TYPE", "ZRANGE", "ZSCORE", "ZCARD":
		keys = strs // every argument of these, as the store sends them, is a key, bar ZRANGE's and ZSCORE's tail
		if cmd == "ZRANGE" || cmd == "ZSCORE" {
			keys = strs[:1]
		}
	default:
		r.fail("command %s is not known to this check: add it", cmd)
		return
	}
	if len(keys) == 0 {
		r.fail("%s with no key: %q", cmd, strs)
		return
	}
	slot := rediscluster.Slot(keys[0])
	for _, k := range keys[1:] {
		if rediscluster.Slot(k) != slot {
			r.fail("%s touches keys of two slots: %q (%d) and %q (%d)", cmd, keys[0], slot, k, rediscluster.Slot(k))
		}
	}
	// A script reaches a session or a tombstone through an argument that
	// is its store key (a member, a replaced or revoked key): the key's
	// tag is what Redis hashes.
	for _, a := range argv {
		if _, ok := session.KeyTag(a); ok && rediscluster.Slot(a) != slot {
			r.fail("%s reaches %q (slot %d) from keys in slot %d (%q)", cmd, a, rediscluster.Slot(a), slot, keys[0])
		}
	}
	r.mu.Lock()
	r.n++
	r.mu.Unlock()
}

func (r *slotRecorder) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) < 20 {
		r.bad = append(r.bad, fmt.Sprintf(format, args...))
	}
}

func (r *slotRecorder) violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

func (r *slotRecorder) scriptsRun() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.scripts
}

func (r *slotRecorder) checked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// recordingConn hands each command to its recorder before sending it.
type recordingConn struct {
	redis.Conn
	rec *slotRecorder
}

func (c *recordingConn) Do(cmd string, args ...any) (any, error) {
	c.rec.record(cmd, args)
	return c.Conn.Do(cmd, args...)
}

func (c *recordingConn) Send(cmd string, args ...any) error {
	c.rec.record(cmd, args)
	return c.Conn.Send(cmd, args...)
}

func (c *recordingConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	c.rec.record(cmd, args)
	return redis.DoContext(c.Conn, ctx, cmd, args...)
}

func (c *recordingConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	c.rec.record(cmd, args)
	return redis.DoWithTimeout(c.Conn, timeout, cmd, args...)
}

func (c *recordingConn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	return redis.ReceiveWithTimeout(c.Conn, timeout)
}

func (c *recordingConn) ReceiveContext(ctx context.Context) (any, error) {
	return redis.ReceiveContext(c.Conn, ctx)
}
