package session_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// TestRedisStoreRevokeUsersKeepsFewScriptsQueued is a page of users as
// signing out everyone sends it. Redis runs every command a client has
// queued before it serves the next client, so RevokeUsers must never queue
// more than a few scripts (revokeUsersInFlight, 2) or page views wait behind
// the page; it uses one connection, one script call per user and no
// keyspace scan, and works on a Redis that has just lost its script cache (a
// restart, a promoted replica), where bare EVALSHAs would fail.
func TestRedisStoreRevokeUsersKeepsFewScriptsQueued(t *testing.T) {
	srv := testsvc.StartRedis(t)
	var dials, queued, mostQueued atomic.Int64
	pool := &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			c, err := redis.DialURLContext(ctx, srv.URL, redis.DialConnectTimeout(time.Second),
				redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second))
			if err != nil {
				return nil, err
			}
			dials.Add(1)
			return &queueConn{pipelineConn: c.(pipelineConn), queued: &queued, most: &mostQueued}, nil
		},
		MaxActive: 2,
		Wait:      true,
	}
	t.Cleanup(func() { pool.Close() })
	store := session.NewRedisStore(pool, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	users := make([]int64, 50)
	for i := range users {
		users[i] = sessiontest.NewUserID(t)
		for range 2 {
			if _, err := store.Create(ctx, sessiontest.NewKeyFor(t, users[i]), users[i], []byte("v"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
				t.Fatalf("Create: %v", err)
			}
		}
	}
	c := srv.Conn(t)
	for _, cmd := range [][]any{{"SCRIPT", "FLUSH"}, {"CONFIG", "RESETSTAT"}} {
		if _, err := c.Do(cmd[0].(string), cmd[1:]...); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}

	dialled := dials.Load()
	n, err := store.RevokeUsers(ctx, users, "", session.EndedEveryone)
	if err != nil {
		t.Fatalf("RevokeUsers: %v", err)
	}
	if n != 2*len(users) {
		t.Errorf("RevokeUsers = %d, want %d", n, 2*len(users))
	}
	if most := mostQueued.Load(); most > 3 {
		t.Errorf("RevokeUsers of %d users queued up to %d commands at once, want at most the script load and 2 scripts", len(users), most)
	}
	if d := dials.Load() - dialled; d > 1 {
		t.Errorf("RevokeUsers dialled %d connections, want at most one", d)
	}
	stats := commandStats(t, c)
	if stats["evalsha"] != len(users) || stats["eval"] != 0 || stats["script|load"] != 1 {
		t.Errorf("RevokeUsers of %d users ran %d EVALSHA, %d EVAL and %d SCRIPT LOAD; want %d, 0 and 1; stats %v",
			len(users), stats["evalsha"], stats["eval"], stats["script|load"], len(users), stats)
	}
	for _, cmd := range []string{"keys", "scan"} {
		if stats[cmd] != 0 {
			t.Errorf("RevokeUsers ran %s: %v", cmd, stats)
		}
	}
}

// pipelineConn is what redigo's own connections offer.
type pipelineConn interface {
	redis.ConnWithContext
	redis.ConnWithTimeout
}

// queueConn tracks how many commands were sent and not yet answered, and
// the most at any time. A Do sends one and reads one (a Do with no command
// reads everything pending).
type queueConn struct {
	pipelineConn
	queued, most *atomic.Int64
}

func (c *queueConn) sent() {
	n := c.queued.Add(1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
}

func (c *queueConn) Send(cmd string, args ...any) error {
	c.sent()
	return c.pipelineConn.Send(cmd, args...)
}

func (c *queueConn) Receive() (any, error) {
	c.queued.Add(-1)
	return c.pipelineConn.Receive()
}

func (c *queueConn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	c.queued.Add(-1)
	return c.pipelineConn.ReceiveWithTimeout(timeout)
}

func (c *queueConn) ReceiveContext(ctx context.Context) (any, error) {
	c.queued.Add(-1)
	return c.pipelineConn.ReceiveContext(ctx)
}

func (c *queueConn) Do(cmd string, args ...any) (any, error) {
	if cmd == "" {
		c.queued.Store(0)
	}
	return c.pipelineConn.Do(cmd, args...)
}

// TestRedisStoreRevokeUsersDoesNotHangOnAFrozenRedis: a pipeline whose
// replies never come fails within the store's bound, not once per user.
func TestRedisStoreRevokeUsersDoesNotHangOnAFrozenRedis(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	users := make([]int64, 500)
	for i := range users {
		users[i] = int64(i + 1)
	}
	srv.Pause(t)
	t.Cleanup(func() { srv.Resume(t) })
	checkFailsFast(t, "RevokeUsers", func() error {
		_, err := store.RevokeUsers(context.Background(), users, "", session.EndedEveryone)
		return err
	})
}
