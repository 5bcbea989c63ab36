package redisx_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/localsvc"
	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// read GETs key on a connection from pool and returns the value (""
// for none) and the address of the server that answered.
func read(pool *redis.Pool, key string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := pool.GetContext(ctx)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	v, err := redis.String(redis.DoContext(c, ctx, "GET", key))
	if err != nil && !errors.Is(err, redis.ErrNil) {
		return "", "", err
	}
	addr, err := servedBy(ctx, c)
	return v, addr, err
}

// writeAcknowledged sets key on the primary and waits until the replica has
// it (WAIT 1), as the session store does for sign-ins and revocations.
func writeAcknowledged(t *testing.T, pool *redis.Pool, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := pool.GetContext(ctx)
	if err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
	defer c.Close()
	if _, err := redis.DoContext(c, ctx, "SET", key, value); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
	if n, err := redisx.WaitReplicas(ctx, c, 1, 2*time.Second); err != nil || n != 1 {
		t.Fatalf("WAIT 1 after SET %s = %d, %v", key, n, err)
	}
}

func TestReplicaPoolReadsFromTheReplicaAndNeverWrites(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	sp := newSentinelPool(t, c)
	writeAcknowledged(t, sp.Pool(), "k", "v")

	v, served, err := read(sp.ReplicaPool(), "k")
	if err != nil || v != "v" {
		t.Fatalf("GET through the replica pool = %q, %v; want v", v, err)
	}
	if replica := c.Replica(t).Addr; served != replica {
		t.Fatalf("read went to %s, want the replica %s", served, replica)
	}
	if _, err := write(sp.ReplicaPool(), "k", "w"); !isReadOnly(err) {
		t.Fatalf("SET through the replica pool: %v, want READONLY", err)
	}
	if v, err := redis.String(c.Primary(t).Conn(t).Do("GET", "k")); err != nil || v != "v" {
		t.Fatalf("GET on the primary after the refused write = %q, %v; want v", v, err)
	}
}

// isReadOnly reports whether err is Redis's refusal of a write on a replica.
func isReadOnly(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(string(re), "READONLY ")
}

// TestReplicaPoolServesReadsWhileThePrimaryIsDown kills the primary and
// reads through a replica pool that has no connection yet, so the replica is
// found, dialled and checked while its own link to the primary is down and
// before Sentinel has promoted anything.
func TestReplicaPoolServesReadsWhileThePrimaryIsDown(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	sp := newSentinelPool(t, c)
	writeAcknowledged(t, sp.Pool(), "acknowledged", "yes")
	replica := c.Replica(t)

	c.KillPrimary(t)
	killed := time.Now()
	testkit.Eventually(t, 5*time.Second, "the replica to see its link down", func() error {
		info, err := localsvc.ReplicationInfo(replica.Addr)
		if err != nil {
			return err
		}
		if info["master_link_status"] != "down" {
			return errors.New("link " + info["master_link_status"])
		}
		return nil
	})
	v, served, err := read(sp.ReplicaPool(), "acknowledged")
	took := time.Since(killed)
	if err != nil || v != "yes" {
		t.Fatalf("GET through the replica pool with the primary down = %q, %v; want yes", v, err)
	}
	if served != replica.Addr {
		t.Fatalf("read went to %s, want the replica %s", served, replica.Addr)
	}
	if role := roleAt(replica.Addr); role != "slave" {
		// Sentinel promoted it before the read: the read proves nothing.
		t.Fatalf("the read came %s after the kill, but the replica's role was already %q", took, role)
	}
	t.Logf("read from the replica %s after SIGKILL of the primary", took.Round(time.Millisecond))
}
