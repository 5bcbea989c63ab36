package session_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// TestWritesWaitForAReplica checks the store's answer to asynchronous
// replication: with WaitReplicas 1, a session is only handed out (and a
// revocation only confirmed) once a replica has it.
func TestWritesWaitForAReplica(t *testing.T) {
	cluster := testsvc.StartSentinelCluster(t)
	pool, err := redisx.NewPool("redis://"+cluster.PrimaryAddr(t), redisx.DefaultPoolOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	store := session.NewRedisStore(pool, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour, WaitReplicas: 1, WaitTimeout: 200 * time.Millisecond})
	ctx := t.Context()
	expiry := time.Now().Add(time.Hour)
	user := sessiontest.NewUserID(t)

	key := sessiontest.NewKeyFor(t, user)
	if _, err := store.Create(ctx, key, user, []byte("replicated"), expiry, session.Limit{}, session.Origin{}); err != nil {
		t.Fatalf("Create with the replica up: %v", err)
	}
	if n, err := store.RevokeUser(ctx, user, "", session.EndedByAdmin); err != nil || n != 1 {
		t.Fatalf("RevokeUser with the replica up = %d, %v", n, err)
	}
	if _, err := store.Create(ctx, sessiontest.NewKeyFor(t, user), user, []byte("replicated"), expiry, session.Limit{}, session.Origin{}); err != nil {
		t.Fatalf("Create with the replica up: %v", err)
	}
	if n, err := store.RevokeUsers(ctx, []int64{user, user + 1}, "", session.EndedEveryone); err != nil || n != 1 {
		t.Fatalf("RevokeUsers with the replica up = %d, %v", n, err)
	}

	cluster.Replica(t).Pause(t)
	defer cluster.Replica(t).Resume(t)
	start := time.Now()
	_, err = store.Create(ctx, sessiontest.NewKeyFor(t, user), user, []byte("unconfirmed"), expiry, session.Limit{}, session.Origin{})
	if !errors.Is(err, session.ErrNotReplicated) {
		t.Fatalf("Create with the replica paused: %v, want ErrNotReplicated", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the unconfirmed Create took %v, want about the 200 ms wait", took)
	}
}

func TestNoWaitWithoutReplicasConfigured(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool, err := redisx.NewPool(srv.URL, redisx.DefaultPoolOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	lonely := session.NewRedisStore(pool, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour, WaitReplicas: 1, WaitTimeout: 50 * time.Millisecond})
	if _, err := lonely.Create(t.Context(), sessiontest.NewKeyFor(t, 1), 1, []byte("x"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); !errors.Is(err, session.ErrNotReplicated) {
		t.Fatalf("Create on a Redis with no replica and WaitReplicas 1: %v, want ErrNotReplicated", err)
	}
	if _, err := lonely.RevokeUsers(t.Context(), []int64{1, 2}, "", session.EndedEveryone); !errors.Is(err, session.ErrNotReplicated) {
		t.Fatalf("RevokeUsers on a Redis with no replica and WaitReplicas 1: %v, want ErrNotReplicated", err)
	}
	plain := session.NewRedisStore(pool, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	if _, err := plain.Create(t.Context(), sessiontest.NewKeyFor(t, 1), 1, []byte("x"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
		t.Fatalf("Create without WaitReplicas: %v", err)
	}
}
