package redisx_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

// writeAcknowledged sets key on the primary and waits until a replica has it
// (WAIT 1), as the session store does for sign-ins and revocations, and
// returns how many replicas WAIT counted.
func writeAcknowledged(t *testing.T, pool *redis.Pool, key, value string) int {
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
	n, err := redisx.WaitReplicas(ctx, c, 1, 2*time.Second)
	if err != nil || n < 1 {
		t.Fatalf("WAIT 1 after SET %s = %d, %v", key, n, err)
	}
	return n
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

// TestReplicaPoolReadsARevocationOnlyTheReplicaAheadHas is the attack two
// replicas open: a revocation acknowledged by one replica only (WAIT 1), then
// the primary lost. The other replica still has the session signed in; the
// replica pool must read from the one ahead. The replica left behind is the
// one the pool chose while both were level, so a choice blind to offsets
// would choose it again.
func TestReplicaPoolReadsARevocationOnlyTheReplicaAheadHas(t *testing.T) {
	c := testsvc.StartSentinelClusterWithReplicas(t, 2)
	sp := newSentinelPool(t, c)
	writeAcknowledged(t, sp.Pool(), "session", "signed-in")
	_, preferred, err := read(sp.ReplicaPool(), "session")
	if err != nil {
		t.Fatalf("GET through the replica pool with both replicas level: %v", err)
	}
	behind, ahead := splitReplicas(t, c, preferred)

	c.Primary(t).CutOffReplica(t, behind)
	if n := writeAcknowledged(t, sp.Pool(), "session", "revoked"); n != 1 {
		t.Fatalf("WAIT counted %d replicas with %s cut off, want 1", n, behind.Addr)
	}
	c.KillPrimary(t)
	killed := time.Now()
	behind.Resume(t)
	leftBehind(t, behind, ahead, "session", "signed-in")

	// A pool with no connection yet: it must choose now.
	fresh := newSentinelPool(t, c)
	start := time.Now()
	v, served, err := read(fresh.ReplicaPool(), "session")
	took := time.Since(start)
	if err != nil || v != "revoked" {
		t.Fatalf("GET through the replica pool = %q from %s, %v; want revoked from %s (ahead), not signed-in from %s",
			v, served, err, ahead.Addr, behind.Addr)
	}
	if served != ahead.Addr {
		t.Fatalf("read went to %s, want the replica ahead %s", served, ahead.Addr)
	}
	// Had Sentinel promoted a replica before the read, the other would follow
	// it and the read would prove nothing.
	leftBehind(t, behind, ahead, "session", "signed-in")
	t.Logf("read the revocation from the replica ahead %s after SIGKILL of the primary; the dial and read took %s",
		since(killed, time.Now()), took.Round(time.Microsecond))
}

// TestReplicaPoolDoesNotReuseAConnectionPastItsLifetime: a connection the
// replica pool chose while both replicas were level sits idle; later a
// revocation reaches only the other replica and the primary is lost. Once
// the connection's lifetime has passed, the pool must choose again and read
// the revocation, not hand out the connection to the replica left behind.
func TestReplicaPoolDoesNotReuseAConnectionPastItsLifetime(t *testing.T) {
	c := testsvc.StartSentinelClusterWithReplicas(t, 2)
	sp := newSentinelPool(t, c)
	pool := sp.ReplicaPool()
	writeAcknowledged(t, sp.Pool(), "session", "signed-in")
	_, chosen, err := read(pool, "session")
	if err != nil {
		t.Fatalf("GET through the replica pool with both replicas level: %v", err)
	}
	dialled := time.Now() // the connection was made before this
	// Within its lifetime the connection is reused, so what follows is a
	// test of the lifetime and not of a pool that keeps nothing.
	first, second := clientID(t, pool), clientID(t, pool)
	if first != second {
		t.Fatalf("two borrows at once got connections %d and %d, want the pooled one again", first, second)
	}
	if age := time.Since(dialled); age >= redisx.ReplicaConnLifetime {
		t.Fatalf("the connection is already %s old; the machine is too slow for this test", age)
	}
	behind, ahead := splitReplicas(t, c, chosen)

	// The time passing is what is tested: there is nothing to poll.
	time.Sleep(time.Until(dialled.Add(redisx.ReplicaConnLifetime)))
	c.Primary(t).CutOffReplica(t, behind)
	writeAcknowledged(t, sp.Pool(), "session", "revoked")
	c.KillPrimary(t)
	behind.Resume(t)
	leftBehind(t, behind, ahead, "session", "signed-in")

	v, served, err := read(pool, "session")
	if err != nil || v != "revoked" {
		t.Fatalf("GET through the replica pool = %q from %s, %v; want revoked from %s (ahead), not signed-in from %s",
			v, served, err, ahead.Addr, behind.Addr)
	}
	if served != ahead.Addr {
		t.Fatalf("read went to %s, want the replica ahead %s", served, ahead.Addr)
	}
	// The server sees the old connection close a moment after the pool
	// closed it.
	testkit.Eventually(t, 2*time.Second, "the connection to the replica left behind to be closed", func() error {
		named, err := namedClients(behind.Addr, "")
		if err == nil && len(named) != 0 {
			err = fmt.Errorf("still open: %q", named)
		}
		return err
	})
	leftBehind(t, behind, ahead, "session", "signed-in")
}

// TestReplicaPoolWaitsForAHungReplicaOnlyForTheConnectTimeout: a replica
// that hangs (SIGSTOP) could be the one ahead, so a dial waits for its
// answer, but no longer than ConnectTimeout, then reads from the other.
func TestReplicaPoolWaitsForAHungReplicaOnlyForTheConnectTimeout(t *testing.T) {
	c := testsvc.StartSentinelClusterWithReplicas(t, 2)
	sp := newSentinelPool(t, c)
	writeAcknowledged(t, sp.Pool(), "session", "signed-in")
	replicas := c.Replicas(t)
	hung, other := replicas[0], replicas[1]
	hung.Pause(t)

	start := time.Now()
	v, served, err := read(sp.ReplicaPool(), "session")
	took := time.Since(start)
	if err != nil || v != "signed-in" || served != other.Addr {
		t.Fatalf("GET through the replica pool with %s hung = %q from %s, %v; want signed-in from %s", hung.Addr, v, served, err, other.Addr)
	}
	if took < testConnectTimeout || took > testConnectTimeout+time.Second {
		t.Errorf("the dial and read took %s, want the connect timeout %s and a little more", took, testConnectTimeout)
	}
}

// splitReplicas returns the replica of c at addr and the other one.
func splitReplicas(t *testing.T, c *testsvc.SentinelCluster, addr string) (at, other *testsvc.RedisServer) {
	t.Helper()
	replicas := c.Replicas(t)
	if len(replicas) != 2 {
		t.Fatalf("%d replicas, want 2", len(replicas))
	}
	for i, r := range replicas {
		if r.Addr == addr {
			return r, replicas[1-i]
		}
	}
	t.Fatalf("%s is not a replica", addr)
	return nil, nil
}

// leftBehind checks the attack's premise: both replicas are still replicas
// of the lost primary, behind has noticed it is gone and still has key at
// old, and ahead is further along the replication stream and has something
// else. It waits for behind to notice (it was frozen when the primary died).
func leftBehind(t *testing.T, behind, ahead *testsvc.RedisServer, key, old string) {
	t.Helper()
	var b map[string]string
	testkit.Eventually(t, 5*time.Second, "the replica left behind to see its link down", func() error {
		var err error
		b, err = localsvc.ReplicationInfo(behind.Addr)
		if err != nil {
			return err
		}
		if b["master_link_status"] != "down" {
			return errors.New("link " + b["master_link_status"])
		}
		return nil
	})
	a, err := localsvc.ReplicationInfo(ahead.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if a["role"] != "slave" || b["role"] != "slave" {
		t.Fatalf("roles: ahead %s, behind %s; want both still replicas (a promotion makes the test prove nothing)", a["role"], b["role"])
	}
	ao, _ := strconv.ParseInt(a["slave_repl_offset"], 10, 64)
	bo, _ := strconv.ParseInt(b["slave_repl_offset"], 10, 64)
	if ao <= bo {
		t.Fatalf("replication offsets: ahead %s at %d, behind %s at %d; want ahead further", ahead.Addr, ao, behind.Addr, bo)
	}
	for _, s := range []struct {
		r    *testsvc.RedisServer
		want bool
	}{{behind, true}, {ahead, false}} {
		v, err := redis.String(s.r.Conn(t).Do("GET", key))
		if err != nil || (v == old) != s.want {
			t.Fatalf("GET %s on %s = %q, %v; the replica left behind must have %q and only it", key, s.r.Addr, v, err, old)
		}
	}
}

// clientID returns the CLIENT ID of a connection borrowed from pool, which
// it then gives back.
func clientID(t *testing.T, pool *redis.Pool) int64 {
	t.Helper()
	c, err := pool.GetContext(t.Context())
	if err != nil {
		t.Fatalf("borrow: %v", err)
	}
	defer c.Close()
	id, err := redis.Int64(c.Do("CLIENT", "ID"))
	if err != nil {
		t.Fatalf("CLIENT ID: %v", err)
	}
	return id
}
