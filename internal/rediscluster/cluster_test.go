package rediscluster_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/localsvc"
	"github.com/hallpass/hallpass/internal/rediscluster"
	"github.com/hallpass/hallpass/internal/testsvc"
)

func TestCommandsGoToThePrimaryOwningTheKey(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	c := newCluster(t, rc, 0)
	if got, want := c.Primaries(), rc.Primaries(t); !slices.Equal(got, want) {
		t.Fatalf("Primaries = %v, cluster says %v", got, want)
	}
	conn := get(t, c)
	const n = 1000
	for i := range n {
		if _, err := conn.Do("SET", fmt.Sprintf("route:%d", i), i); err != nil {
			t.Fatalf("SET route:%d: %v", i, err)
		}
	}
	perNode := map[string]int{}
	for i := range n {
		key := fmt.Sprintf("route:%d", i)
		if got, err := redis.Int(conn.Do("GET", key)); err != nil || got != i {
			t.Fatalf("GET %s = %d, %v; want %d", key, got, err, i)
		}
		addr := c.PrimaryFor(key)
		if got, err := redis.Int(rc.Conn(t, addr).Do("GET", key)); err != nil || got != i {
			t.Fatalf("GET %s on its primary %s = %d, %v; want %d", key, addr, got, err, i)
		}
		perNode[addr]++
	}
	if len(perNode) != 3 {
		t.Fatalf("keys landed on %v, want all three primaries", perNode)
	}
}

func TestScriptsRunOnThePrimaryOfTheirKeys(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	c := newCluster(t, rc, 0)
	conn := get(t, c)
	setBoth := redis.NewScript(2, `redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], ARGV[1]) return ARGV[1]`)

	for _, addr := range c.Primaries() {
		tag := tagOn(t, c, addr)
		a, b := "{"+tag+"}a", "{"+tag+"}b"
		node := rc.Conn(t, addr)
		if cached := scriptCached(t, node, setBoth); cached {
			t.Fatalf("%s has the script before it ran", addr)
		}
		// EVALSHA meets NOSCRIPT on a node that never ran it; redigo sends
		// EVAL instead, through the same routing.
		if got, err := redis.String(setBoth.DoContext(t.Context(), conn, a, b, tag)); err != nil || got != tag {
			t.Fatalf("script on %s = %q, %v", addr, got, err)
		}
		for _, key := range []string{a, b} {
			if got, err := redis.String(node.Do("GET", key)); err != nil || got != tag {
				t.Fatalf("GET %s on %s = %q, %v; want %q", key, addr, got, err, tag)
			}
		}
		if !scriptCached(t, node, setBoth) {
			t.Fatalf("%s did not cache the script it ran", addr)
		}
		if got, err := redis.String(setBoth.Do(conn, a, b, tag+"2")); err != nil || got != tag+"2" {
			t.Fatalf("cached script on %s = %q, %v", addr, got, err)
		}
	}
	if _, err := setBoth.Do(conn, "{x}a", "{y}b", "v"); !errors.Is(err, rediscluster.ErrCrossSlot) {
		t.Fatalf("script over two slots: %v, want ErrCrossSlot", err)
	}

	// SCRIPT LOAD reaches every primary, so a pipeline of EVALSHAs finds
	// the script wherever its keys are.
	two := redis.NewScript(1, `return 2`)
	if err := two.Load(conn); err != nil {
		t.Fatalf("SCRIPT LOAD: %v", err)
	}
	for _, addr := range c.Primaries() {
		if !scriptCached(t, rc.Conn(t, addr), two) {
			t.Fatalf("SCRIPT LOAD did not reach %s", addr)
		}
	}
	for _, addr := range c.Primaries() {
		if err := two.SendHash(conn, "{"+tagOn(t, c, addr)+"}"); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	for range c.Primaries() {
		if got, err := redis.Int(conn.Receive()); err != nil || got != 2 {
			t.Fatalf("pipelined EVALSHA = %d, %v", got, err)
		}
	}
}

func TestWaitGoesToThePrimaryOfTheWriteBeforeIt(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 1)
	c := newCluster(t, rc, 0)
	conn := get(t, c)
	primaries := c.Primaries()
	seeds := rc.Seeds()
	waits := func() map[string]int {
		m := map[string]int{}
		for _, addr := range seeds {
			m[addr] = commandCalls(t, rc, addr, "wait")
		}
		return m
	}

	before := waits()
	for _, addr := range primaries {
		key := keyOn(t, c, addr, "wait:")
		if _, err := conn.Do("SET", key, "v"); err != nil {
			t.Fatal(err)
		}
		if n, err := redis.Int(redis.DoWithTimeout(conn, 2*time.Second, "WAIT", 1, 1000)); err != nil || n != 1 {
			t.Fatalf("WAIT 1 after SET %s = %d, %v", key, n, err)
		}
	}
	// Pipelined: each WAIT follows its write to that write's primary.
	for _, addr := range primaries {
		if err := conn.Send("SET", keyOn(t, c, addr, "wait-pipelined:"), "v"); err != nil {
			t.Fatal(err)
		}
		if err := conn.Send("WAIT", 1, 1000); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	for range primaries {
		if _, err := conn.Receive(); err != nil {
			t.Fatalf("pipelined SET: %v", err)
		}
		if n, err := redis.Int(redis.ReceiveWithTimeout(conn, 2*time.Second)); err != nil || n != 1 {
			t.Fatalf("pipelined WAIT 1 = %d, %v", n, err)
		}
	}
	after := waits()
	for _, addr := range seeds {
		want := 0
		if slices.Contains(primaries, addr) {
			want = 2
		}
		if got := after[addr] - before[addr]; got != want {
			t.Errorf("%s ran WAIT %d times, want %d", addr, got, want)
		}
	}
}

func TestPipelineSpreadOverNodesAnswersInOrder(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	c := newCluster(t, rc, 0)
	conn := get(t, c)
	const n = 100
	for i := range n {
		key := fmt.Sprintf("pipe:%d", i)
		if err := conn.Send("SET", key, i); err != nil {
			t.Fatal(err)
		}
		if err := conn.Send("GET", key); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if ok, err := redis.String(conn.Receive()); err != nil || ok != "OK" {
			t.Fatalf("reply %d: %q, %v; want OK", 2*i, ok, err)
		}
		if got, err := redis.Int(redis.ReceiveContext(conn, t.Context())); err != nil || got != i {
			t.Fatalf("reply %d: %d, %v; want %d", 2*i+1, got, err, i)
		}
	}
	// As with redigo's own connections, Do receives what was sent before
	// it and answers with its own reply.
	for _, key := range []string{"pipe:1", "pipe:2"} {
		if err := conn.Send("GET", key); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := redis.Int(conn.Do("GET", "pipe:3")); err != nil || got != 3 {
		t.Fatalf("Do after Sends = %d, %v; want 3", got, err)
	}
	if got, err := redis.Int(conn.Do("GET", "pipe:4")); err != nil || got != 4 {
		t.Fatalf("Do = %d, %v; want 4", got, err)
	}
}

func TestMovedSlotIsFollowedAndLearned(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	c := newCluster(t, rc, time.Hour) // only the MOVED reply can teach the map
	conn := get(t, c)
	from, to := c.Primaries()[0], c.Primaries()[1]
	key := keyOn(t, c, from, "moved:")
	slot := rediscluster.Slot(key)
	// Keys staying where they are, read in the same pipeline.
	toA, toB, fromC := keyOn(t, c, to, "a:"), keyOn(t, c, to, "b:"), keyOn(t, c, from, "c:")
	if rediscluster.Slot(fromC) == slot {
		t.Fatalf("%s and %s share a slot", key, fromC)
	}
	for _, k := range []string{key, toA, toB, fromC} {
		if _, err := conn.Do("SET", k, k); err != nil {
			t.Fatal(err)
		}
	}

	m := startMigration(t, rc, slot, from, to)
	m.migrate(t, key)
	m.finish(t)
	if got := c.PrimaryFor(key); got != from {
		t.Fatalf("PrimaryFor before any command = %s, want the stale %s", got, from)
	}
	// The GET of the moved key meets MOVED while the new owner has replies
	// pending for the same pipeline: they still come in order.
	order := []string{key, toA, fromC, toB}
	for _, k := range order {
		if err := conn.Send("GET", k); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, k := range order {
		if got, err := redis.String(conn.Receive()); err != nil || got != k {
			t.Fatalf("pipelined GET %s after the slot moved = %q, %v", k, got, err)
		}
	}
	if got := c.PrimaryFor(key); got != to {
		t.Fatalf("PrimaryFor after MOVED = %s, want %s", got, to)
	}
	before := commandCalls(t, rc, from, "get")
	if got, err := redis.String(get(t, c).Do("GET", key)); err != nil || got != key {
		t.Fatalf("GET on another connection = %q, %v", got, err)
	}
	if after := commandCalls(t, rc, from, "get"); after != before {
		t.Fatalf("the old owner %s was asked again", from)
	}
}

func TestAskDuringMigrationReachesBothHalves(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	c := newCluster(t, rc, time.Hour)
	conn := get(t, c)
	from, to := c.Primaries()[0], c.Primaries()[1]
	tag := tagOn(t, c, from)
	a, b, fresh := "{"+tag+"}a", "{"+tag+"}b", "{"+tag+"}new"
	for _, key := range []string{a, b} {
		if _, err := conn.Do("SET", key, key); err != nil {
			t.Fatal(err)
		}
	}

	m := startMigration(t, rc, rediscluster.Slot(tag), from, to)
	m.migrate(t, a)
	for _, key := range []string{a, b} {
		if got, err := redis.String(conn.Do("GET", key)); err != nil || got != key {
			t.Fatalf("GET %s mid-migration = %q, %v", key, got, err)
		}
	}
	// A new key in a migrating slot is created on the importing node.
	if _, err := conn.Do("SET", fresh, "x"); err != nil {
		t.Fatalf("SET %s mid-migration: %v", fresh, err)
	}
	if got, err := redis.Strings(rc.Conn(t, to).Do("CLUSTER", "GETKEYSINSLOT", m.slot, 10)); err != nil || !slices.Contains(got, fresh) {
		t.Fatalf("keys of the slot on the importing node = %q, %v; want %s among them", got, err, fresh)
	}
	if got := c.PrimaryFor(a); got != from {
		t.Fatalf("ASK changed the map: PrimaryFor = %s, want %s", got, from)
	}

	// MGET over both halves gets TRYAGAIN: retried, but only until the
	// command's time is up.
	start := time.Now()
	_, err := redis.DoWithTimeout(conn, 300*time.Millisecond, "MGET", a, b)
	if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Fatalf("MGET over a half-migrated slot: %v, want TRYAGAIN", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Fatalf("MGET gave up after %s, want about its 300 ms", took)
	}
	// With the slot's last key moved while it retries, it succeeds (ASK).
	stats := rc.Conn(t, from)
	refused := tryAgains(t, stats)
	done := make(chan error, 1)
	go func() {
		err := localsvc.Poll(t.Context(), 5*time.Second, 5*time.Millisecond, func() error {
			if n, err := errorCount(stats, "TRYAGAIN"); err != nil || n == refused {
				return fmt.Errorf("MGET not retrying yet: %d TRYAGAIN, %v", n, err)
			}
			return nil
		})
		done <- cmp.Or(err, m.tryMigrate(b))
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	got, err := redis.Strings(redis.DoContext(conn, ctx, "MGET", a, b))
	if merr := <-done; merr != nil {
		t.Fatal(merr)
	}
	if err != nil || !slices.Equal(got, []string{a, b}) {
		t.Fatalf("MGET retried through the migration = %q, %v", got, err)
	}
	m.finish(t)
}

func TestReshardUnderLoadLosesNoWrite(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	c := newCluster(t, rc, 0)
	from, to := c.Primaries()[0], c.Primaries()[1]

	const workers, keysEach = 4, 1000
	acked := make([]map[string]int64, workers) // worker's key → its count
	var ops atomic.Int64
	errs := make(chan error, workers)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for w := range workers {
		acked[w] = map[string]int64{}
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("load:%d:%d", w, i%keysEach)
				n, err := incr(c, key)
				if err == nil && n != acked[w][key]+1 {
					err = fmt.Errorf("count %d after %d acknowledged", n, acked[w][key])
				}
				if err != nil {
					errs <- fmt.Errorf("INCR %s: %w", key, err)
					return
				}
				acked[w][key] = n
				ops.Add(1)
			}
		})
	}
	waitOps := func(n int64) {
		t.Helper()
		err := localsvc.Poll(t.Context(), 30*time.Second, 10*time.Millisecond, func() error {
			if len(errs) > 0 || ops.Load() >= n {
				return nil
			}
			return errors.New("load too slow")
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitOps(workers * keysEach) // every key written once
	var onFrom []string
	for w := range workers {
		for i := range keysEach {
			if key := fmt.Sprintf("load:%d:%d", w, i); c.PrimaryFor(key) == from {
				onFrom = append(onFrom, key)
			}
		}
	}
	start, startOps := time.Now(), ops.Load()
	rc.Reshard(t, from, to, 1000)
	t.Logf("resharded 1000 slots in %s under %d INCRs", time.Since(start).Round(time.Millisecond), ops.Load()-startOps)
	waitOps(ops.Load() + 1000) // and on, past the moved slots
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d INCRs; ASKING on %s: %d", ops.Load(), to, commandCalls(t, rc, to, "asking"))

	// Every acknowledged write is there, on the node the map names.
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]redis.Conn{}
	for _, addr := range c.Primaries() {
		nodes[addr] = rc.Conn(t, addr)
	}
	for w := range workers {
		for key, want := range acked[w] {
			if got, err := redis.Int64(nodes[c.PrimaryFor(key)].Do("GET", key)); err != nil || got != want {
				t.Fatalf("GET %s on %s = %d, %v; want %d", key, c.PrimaryFor(key), got, err, want)
			}
		}
	}
	movedKeys := 0
	for _, key := range onFrom {
		if c.PrimaryFor(key) == to {
			movedKeys++
		}
	}
	if movedKeys == 0 {
		t.Fatalf("none of the %d keys on %s moved to %s", len(onFrom), from, to)
	}
	t.Logf("%d of %d keys moved from %s to %s", movedKeys, len(onFrom), from, to)
}

func TestKilledPrimaryIsReplacedWithoutANewPool(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 1)
	// Only the failed commands can trigger the refresh that finds the
	// promoted replica.
	c := newCluster(t, rc, time.Hour)
	primaries := c.Primaries()
	conn := get(t, c)
	var keys []string
	for _, addr := range primaries {
		for i := range 20 {
			key := keyOn(t, c, addr, "kill:"+strconv.Itoa(i)+":")
			if _, err := conn.Do("SET", key, key); err != nil {
				t.Fatal(err)
			}
			if n, err := redis.Int(conn.Do("WAIT", 1, 1000)); err != nil || n != 1 {
				t.Fatalf("WAIT 1 after SET %s = %d, %v", key, n, err)
			}
			keys = append(keys, key)
		}
	}
	deadKey := keys[0]
	dead := rc.KillPrimaryOf(t, deadKey)
	if dead != primaries[0] {
		t.Fatalf("killed %s, want %s", dead, primaries[0])
	}

	// Keys on the other primaries are read throughout; those of the dead
	// one fail until the promoted replica serves them.
	deadKeys := keys[:20]
	var deadErrors atomic.Int64
	otherErrs := make(chan error, 1)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	wg.Go(func() {
		for ctx.Err() == nil {
			for _, key := range keys {
				got, err := read(c, key)
				switch {
				case err != nil && slices.Contains(deadKeys, key):
					deadErrors.Add(1)
				case err != nil || got != key:
					otherErrs <- fmt.Errorf("GET %s = %q, %w", key, got, err)
					return
				}
			}
		}
	})
	start := time.Now()
	promoted := rc.WaitForPromotion(t, dead)
	t.Logf("promotion took %s", time.Since(start).Round(time.Millisecond))
	err := localsvc.Poll(t.Context(), 10*time.Second, 20*time.Millisecond, func() error {
		_, err := read(c, deadKey)
		return err
	})
	if err != nil {
		t.Fatalf("%s never readable after the promotion of %s: %v", deadKey, promoted, err)
	}
	t.Logf("readable through the same pool %s after the kill", time.Since(start).Round(time.Millisecond))
	stop()
	wg.Wait()
	close(otherErrs)
	for err := range otherErrs {
		t.Error(err)
	}
	if deadErrors.Load() == 0 {
		t.Error("no read of the dead primary's keys failed: the test did not test")
	}
	if got := c.PrimaryFor(deadKey); got != promoted {
		t.Errorf("PrimaryFor(%s) = %s, want the promoted %s", deadKey, got, promoted)
	}
	if slices.Contains(c.Primaries(), dead) {
		t.Errorf("Primaries %v still lists the dead %s", c.Primaries(), dead)
	}
	for _, key := range keys { // acknowledged by a replica before the kill
		if got, err := read(c, key); err != nil || got != key {
			t.Errorf("GET %s after the failover = %q, %v", key, got, err)
		}
	}
}

// newCluster connects to rc; refresh 0 is the default interval.
func newCluster(t *testing.T, rc *testsvc.RedisCluster, refresh time.Duration) *rediscluster.Cluster {
	t.Helper()
	c, err := rediscluster.New(t.Context(), rc.Seeds(), rediscluster.Options{Dial: dial, RefreshInterval: refresh})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

func dial(ctx context.Context, addr string) (redis.Conn, error) {
	return redis.DialContext(ctx, "tcp", addr,
		redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2*time.Second),
		redis.DialWriteTimeout(2*time.Second))
}

// get borrows a routing connection until t ends.
func get(t *testing.T, c *rediscluster.Cluster) redis.Conn {
	t.Helper()
	conn, err := c.Pool().GetContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// incr and read run one command on a connection of their own, as a request
// would.
func incr(c *rediscluster.Cluster, key string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn := c.Pool().Get()
	defer conn.Close()
	return redis.Int64(redis.DoContext(conn, ctx, "INCR", key))
}

func read(c *rediscluster.Cluster, key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn := c.Pool().Get()
	defer conn.Close()
	return redis.String(redis.DoContext(conn, ctx, "GET", key))
}

// keyOn returns a key starting with prefix that the primary at addr owns.
func keyOn(t *testing.T, c *rediscluster.Cluster, addr, prefix string) string {
	t.Helper()
	for i := range 10000 {
		if key := prefix + strconv.Itoa(i); c.PrimaryFor(key) == addr {
			return key
		}
	}
	t.Fatalf("no key for %s", addr)
	return ""
}

// tagOn returns a hash tag whose slot the primary at addr owns.
func tagOn(t *testing.T, c *rediscluster.Cluster, addr string) string {
	t.Helper()
	return keyOn(t, c, addr, "tag")
}

func scriptCached(t *testing.T, node redis.Conn, s *redis.Script) bool {
	t.Helper()
	exists, err := redis.Ints(node.Do("SCRIPT", "EXISTS", s.Hash()))
	if err != nil || len(exists) != 1 {
		t.Fatalf("SCRIPT EXISTS: %v, %v", exists, err)
	}
	return exists[0] == 1
}

// commandCalls returns how many times the node at addr has run cmd (lower
// case), from INFO commandstats.
func commandCalls(t *testing.T, rc *testsvc.RedisCluster, addr, cmd string) int {
	t.Helper()
	info, err := redis.String(rc.Conn(t, addr).Do("INFO", "commandstats"))
	if err != nil {
		t.Fatalf("INFO commandstats on %s: %v", addr, err)
	}
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _, _ := strings.Cut(rest, ",")
			calls, err := strconv.Atoi(n)
			if err != nil {
				t.Fatalf("INFO commandstats on %s: %q", addr, line)
			}
			return calls
		}
	}
	return 0
}

// tryAgains returns how many TRYAGAIN errors the node on conn has replied.
func tryAgains(t *testing.T, conn redis.Conn) int {
	t.Helper()
	n, err := errorCount(conn, "TRYAGAIN")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// errorCount returns how many errors of a kind (its first word) the node
// on conn has replied, from INFO errorstats.
func errorCount(conn redis.Conn, kind string) (int, error) {
	info, err := redis.String(conn.Do("INFO", "errorstats"))
	if err != nil {
		return 0, fmt.Errorf("INFO errorstats: %w", err)
	}
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(line, "errorstat_"+kind+":count="); ok {
			return strconv.Atoi(strings.TrimSpace(rest))
		}
	}
	return 0, nil
}

// migration is one slot being moved by hand, as redis-cli does it.
type migration struct {
	slot      int
	to        string
	fromConn  redis.Conn
	toID      string
	primaries []redis.Conn // to first, as the cluster specification orders SETSLOT NODE
}

func startMigration(t *testing.T, rc *testsvc.RedisCluster, slot int, from, to string) *migration {
	t.Helper()
	m := &migration{slot: slot, to: to, fromConn: rc.Conn(t, from)}
	toConn := rc.Conn(t, to)
	fromID, err1 := redis.String(m.fromConn.Do("CLUSTER", "MYID"))
	toID, err2 := redis.String(toConn.Do("CLUSTER", "MYID"))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	m.toID = toID
	if _, err := toConn.Do("CLUSTER", "SETSLOT", slot, "IMPORTING", fromID); err != nil {
		t.Fatalf("SETSLOT IMPORTING: %v", err)
	}
	if _, err := m.fromConn.Do("CLUSTER", "SETSLOT", slot, "MIGRATING", toID); err != nil {
		t.Fatalf("SETSLOT MIGRATING: %v", err)
	}
	m.primaries = []redis.Conn{toConn}
	for _, addr := range rc.Primaries(t) {
		if addr != to {
			m.primaries = append(m.primaries, rc.Conn(t, addr))
		}
	}
	return m
}

func (m *migration) migrate(t *testing.T, keys ...string) {
	t.Helper()
	if err := m.tryMigrate(keys...); err != nil {
		t.Fatal(err)
	}
}

// tryMigrate moves keys to the importing node, for a goroutine.
func (m *migration) tryMigrate(keys ...string) error {
	host, port, _ := net.SplitHostPort(m.to)
	args := []any{host, port, "", 0, 5000, "KEYS"}
	for _, k := range keys {
		args = append(args, k)
	}
	if _, err := m.fromConn.Do("MIGRATE", args...); err != nil {
		return fmt.Errorf("MIGRATE %v: %w", keys, err)
	}
	return nil
}

// finish gives the slot to the importing node on every primary.
func (m *migration) finish(t *testing.T) {
	t.Helper()
	for _, conn := range m.primaries {
		if _, err := conn.Do("CLUSTER", "SETSLOT", m.slot, "NODE", m.toID); err != nil {
			t.Fatalf("SETSLOT NODE: %v", err)
		}
	}
}
