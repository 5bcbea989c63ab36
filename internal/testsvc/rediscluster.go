package testsvc

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/localsvc"
)

// Settings and time limits for a test Redis Cluster.
const (
	// redisClusterNodeTimeout (milliseconds) is how long a node may not
	// answer before the others suspect it; once most primaries do, a
	// replica takes over within another second or two. Measured from
	// SIGKILL to promotion: about 4 s at 2000 ms. 1000 ms would halve
	// that, but a node starved of CPU for a second by -race tests on two
	// cores would then be failed over for nothing.
	redisClusterNodeTimeout = 2000
	redisClusterReadyWithin = 60 * time.Second
	redisPromotionWithin    = 30 * time.Second
	// Moving a thousand slots under load takes a few seconds; the limit
	// is for a machine busy with other tests.
	redisReshardWithin = 2 * time.Minute
)

// RedisCluster is a Redis Cluster of real redis-server processes on
// 127.0.0.1, started for one test by StartRedisCluster. Slots and roles
// change with Reshard and failovers: ask Primaries rather than remembering.
//
// Every node runs with cluster-require-full-coverage no: while one
// primary is down and not yet replaced, the others keep serving their
// slots, as a session store should.
type RedisCluster struct {
	cli     string
	servers []*RedisServer

	mu     sync.Mutex
	killed map[string]killedPrimary // by address, for WaitForPromotion
}

// killedPrimary is what KillPrimaryOf knew of the primary it killed.
type killedPrimary struct {
	id       string
	replicas []string // node IDs
}

// StartRedisCluster starts primaries×(1+replicasPerPrimary) redis-servers
// for t (primaries ≥ 3, as redis-cli requires), joins them with redis-cli
// --cluster create, waits until every node reports the cluster ok and all
// agree on the slot map with every replica in sync, and stops them when t
// ends. Without redis-server or redis-cli it skips t, or fails it when
// backends are required.
func StartRedisCluster(t testing.TB, primaries, replicasPerPrimary int) *RedisCluster {
	t.Helper()
	if primaries < 3 || replicasPerPrimary < 0 {
		t.Fatalf("redis cluster: %d primaries with %d replicas each; want at least 3 primaries", primaries, replicasPerPrimary)
	}
	bin := redisBinary(t, "redis-server")
	c := &RedisCluster{cli: redisBinary(t, "redis-cli"), killed: map[string]killedPrimary{}}
	for range primaries * (1 + replicasPerPrimary) {
		// The cluster bus gets a free port of its own: the default, port
		// + 10000, may be taken or beyond 65535.
		c.servers = append(c.servers, startRedisServer(t, bin,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", // in the server's own directory
			"--cluster-port", strconv.Itoa(FreePort(t)),
			"--cluster-node-timeout", strconv.Itoa(redisClusterNodeTimeout),
			"--cluster-require-full-coverage", "no",
			"--repl-diskless-sync-delay", "0", // a replica syncs at once
			"--shutdown-timeout", "0", // a primary stopping does not wait for its stopped replicas
		))
	}
	ctx, cancel := context.WithTimeout(t.Context(), redisClusterReadyWithin)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Seeds()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerPrimary), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, c.cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis cluster: redis-cli --cluster create: %v\n%s", err, out)
	}
	ready := func() error {
		nodes, err := c.agreedNodes()
		if err != nil {
			return err
		}
		if len(nodes) != len(c.servers) {
			return fmt.Errorf("%d nodes known, want %d", len(nodes), len(c.servers))
		}
		for _, n := range nodes {
			if !n.master() {
				continue
			}
			var replicas []*RedisServer
			for _, r := range nodes {
				if r.primaryID == n.id {
					replicas = append(replicas, c.server(r.addr))
				}
			}
			if len(replicas) != replicasPerPrimary {
				return fmt.Errorf("primary %s has %d replicas, want %d", n.addr, len(replicas), replicasPerPrimary)
			}
			if err := replicasInSync(c.server(n.addr), replicas); err != nil {
				return err
			}
		}
		return nil
	}
	if err := localsvc.Poll(ctx, redisClusterReadyWithin, clusterPollEvery, ready); err != nil {
		t.Fatalf("redis cluster: %v\n%s", err, c.logs())
	}
	return c
}

// Seeds returns the address of every node, running or not.
func (c *RedisCluster) Seeds() []string {
	addrs := make([]string, len(c.servers))
	for i, s := range c.servers {
		addrs[i] = s.Addr
	}
	return addrs
}

// Primaries returns the addresses of the primaries owning slots, as a
// running node sees them, sorted.
func (c *RedisCluster) Primaries(t testing.TB) []string {
	t.Helper()
	nodes, err := c.anyNodes()
	if err != nil {
		t.Fatalf("redis cluster: primaries: %v", err)
	}
	var addrs []string
	for _, n := range nodes {
		if n.master() && !n.failed() && len(n.slots) > 0 {
			addrs = append(addrs, n.addr)
		}
	}
	slices.Sort(addrs)
	return addrs
}

// KillPrimaryOf kills the primary owning key's slot with SIGKILL, as a crash
// would, and returns its address. WaitForPromotion waits for its successor.
func (c *RedisCluster) KillPrimaryOf(t testing.TB, key string) string {
	t.Helper()
	nodes, err := c.anyNodes()
	if err != nil {
		t.Fatalf("redis cluster: kill primary of %q: %v", key, err)
	}
	slot, err := redis.Int(c.Conn(t, c.running()[0].Addr).Do("CLUSTER", "KEYSLOT", key))
	if err != nil {
		t.Fatalf("redis cluster: CLUSTER KEYSLOT %q: %v", key, err)
	}
	i := slices.IndexFunc(nodes, func(n clusterNode) bool { return n.master() && n.owns(slot) })
	if i < 0 {
		t.Fatalf("redis cluster: no primary owns slot %d of %q", slot, key)
	}
	dead := killedPrimary{id: nodes[i].id}
	for _, n := range nodes {
		if n.primaryID == dead.id {
			dead.replicas = append(dead.replicas, n.id)
		}
	}
	addr := nodes[i].addr
	c.server(addr).Kill(t)
	c.mu.Lock()
	c.killed[addr] = dead
	c.mu.Unlock()
	return addr
}

// WaitForPromotion waits until a replica of deadAddr, a primary killed by
// KillPrimaryOf, has taken over its slots, and every running node reports
// the cluster ok and agrees on it. It returns the new primary's address.
func (c *RedisCluster) WaitForPromotion(t testing.TB, deadAddr string) string {
	t.Helper()
	c.mu.Lock()
	dead, ok := c.killed[deadAddr]
	c.mu.Unlock()
	if !ok {
		t.Fatalf("redis cluster: %s was not killed by KillPrimaryOf", deadAddr)
	}
	var promoted string
	err := localsvc.Poll(t.Context(), redisPromotionWithin, clusterPollEvery, func() error {
		nodes, err := c.agreedNodes()
		if err != nil {
			return err
		}
		for _, n := range nodes {
			switch {
			case n.id == dead.id && len(n.slots) > 0:
				return fmt.Errorf("%s still owns slots %v", deadAddr, n.slots)
			case slices.Contains(dead.replicas, n.id) && n.master() && len(n.slots) > 0:
				promoted = n.addr
			}
		}
		if promoted == "" {
			return fmt.Errorf("no replica of %s promoted", deadAddr)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redis cluster: promotion after %s died: %v\n%s", deadAddr, err, c.logs())
	}
	return promoted
}

// Reshard moves slots hash slots, with their keys, from the primary at
// fromAddr to the one at toAddr (redis-cli --cluster reshard), and waits
// until every running node agrees on the result. Use TryReshard from a
// goroutine other than the test's.
func (c *RedisCluster) Reshard(t testing.TB, fromAddr, toAddr string, slots int) {
	t.Helper()
	if err := c.TryReshard(t.Context(), fromAddr, toAddr, slots); err != nil {
		t.Fatal(err)
	}
}

// TryReshard is Reshard returning its error instead of failing a test.
func (c *RedisCluster) TryReshard(ctx context.Context, fromAddr, toAddr string, slots int) error {
	ctx, cancel := context.WithTimeout(ctx, redisReshardWithin)
	defer cancel()
	var from, to string
	for _, x := range []struct {
		addr string
		id   *string
	}{{fromAddr, &from}, {toAddr, &to}} {
		id, err := nodeID(x.addr)
		if err != nil {
			return fmt.Errorf("redis cluster: reshard: %w", err)
		}
		*x.id = id
	}
	// redis-cli refuses to start while the nodes disagree.
	if err := localsvc.Poll(ctx, redisReshardWithin, clusterPollEvery, func() error { _, err := c.agreedNodes(); return err }); err != nil {
		return fmt.Errorf("redis cluster: reshard: %w", err)
	}
	out, err := exec.CommandContext(ctx, c.cli, "--cluster", "reshard", fromAddr,
		"--cluster-from", from, "--cluster-to", to, "--cluster-slots", strconv.Itoa(slots),
		"--cluster-yes").CombinedOutput()
	if err != nil {
		const keep = 3000
		return fmt.Errorf("redis cluster: redis-cli --cluster reshard: %w\n%s", err, out[max(0, len(out)-keep):])
	}
	if err := localsvc.Poll(ctx, redisReshardWithin, clusterPollEvery, func() error { _, err := c.agreedNodes(); return err }); err != nil {
		return fmt.Errorf("redis cluster: after reshard: %w", err)
	}
	return nil
}

// Conn returns a connection to the node at addr, closed when t ends, for a
// test's own assertions.
func (c *RedisCluster) Conn(t testing.TB, addr string) redis.Conn {
	t.Helper()
	conn, err := redis.Dial("tcp", addr,
		redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(5*time.Second),
		redis.DialWriteTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("redis cluster: connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr  string
	flags     []string
	primaryID string   // "" for a primary
	slots     []string // ranges owned ("0-5460", "7"); not those being migrated
}

func (n clusterNode) master() bool { return slices.Contains(n.flags, "master") }
func (n clusterNode) failed() bool { return slices.Contains(n.flags, "fail") }

func (n clusterNode) owns(slot int) bool {
	for _, r := range n.slots {
		lo, hi, ok := strings.Cut(r, "-")
		if !ok {
			hi = lo
		}
		from, err1 := strconv.Atoi(lo)
		to, err2 := strconv.Atoi(hi)
		if err1 == nil && err2 == nil && from <= slot && slot <= to {
			return true
		}
	}
	return false
}

// clusterNodes asks the node at addr for CLUSTER NODES.
func clusterNodes(addr string) ([]clusterNode, error) {
	conn, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	info, err := redis.String(conn.Do("CLUSTER", "INFO"))
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER INFO: %w", addr, err)
	}
	if !strings.Contains(info, "cluster_state:ok\r\n") {
		return nil, fmt.Errorf("%s: cluster state not ok", addr)
	}
	text, err := redis.String(conn.Do("CLUSTER", "NODES"))
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER NODES: %w", addr, err)
	}
	var nodes []clusterNode
	for line := range strings.Lines(strings.TrimSpace(text)) {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("%s: CLUSTER NODES line %q", addr, line)
		}
		hostPort, _, _ := strings.Cut(f[1], "@")
		n := clusterNode{id: f[0], addr: hostPort, flags: strings.Split(f[2], ",")}
		if f[3] != "-" {
			n.primaryID = f[3]
		}
		for _, s := range f[8:] {
			if !strings.HasPrefix(s, "[") {
				n.slots = append(n.slots, s)
			}
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// describe renders what every node should agree on: each node's address,
// role, primary, failure and slots, one sorted line each.
func describe(nodes []clusterNode) string {
	addrOf := map[string]string{}
	for _, n := range nodes {
		addrOf[n.id] = n.addr
	}
	lines := make([]string, 0, len(nodes))
	for _, n := range nodes {
		flags := slices.DeleteFunc(slices.Clone(n.flags), func(f string) bool { return f == "myself" })
		lines = append(lines, fmt.Sprintf("%s %s %s %v", n.addr, strings.Join(flags, ","), addrOf[n.primaryID], n.slots))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// agreedNodes returns the nodes of the cluster once every running node
// reports it ok and describes it alike, with no slot being migrated.
func (c *RedisCluster) agreedNodes() ([]clusterNode, error) {
	var first []clusterNode
	var firstAddr, firstView string
	for _, s := range c.running() {
		nodes, err := clusterNodes(s.Addr)
		if err != nil {
			return nil, err
		}
		view := describe(nodes)
		if first == nil {
			first, firstAddr, firstView = nodes, s.Addr, view
		} else if view != firstView {
			return nil, fmt.Errorf("%s and %s disagree:\n%s\n---\n%s", firstAddr, s.Addr, firstView, view)
		}
		for _, n := range nodes {
			if slices.ContainsFunc(n.flags, func(f string) bool { return f == "handshake" || f == "noaddr" || f == "fail?" }) {
				return nil, fmt.Errorf("%s: node %s is %v", s.Addr, n.addr, n.flags)
			}
		}
	}
	if first == nil {
		return nil, errors.New("no node running")
	}
	return first, nil
}

// anyNodes returns CLUSTER NODES of the first running node that answers.
func (c *RedisCluster) anyNodes() ([]clusterNode, error) {
	var errs []error
	for _, s := range c.running() {
		nodes, err := clusterNodes(s.Addr)
		if err == nil {
			return nodes, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no node answers: %w", errors.Join(errs...))
}

// nodeID returns the cluster node ID of the node at addr.
func nodeID(addr string) (string, error) {
	conn, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	id, err := redis.String(conn.Do("CLUSTER", "MYID"))
	if err != nil {
		return "", fmt.Errorf("%s: CLUSTER MYID: %w", addr, err)
	}
	return id, nil
}

// running returns the servers not killed.
func (c *RedisCluster) running() []*RedisServer {
	var up []*RedisServer
	for _, s := range c.servers {
		s.mu.Lock()
		if s.proc != nil {
			up = append(up, s)
		}
		s.mu.Unlock()
	}
	return up
}

// server returns the cluster's server at addr, or nil.
func (c *RedisCluster) server(addr string) *RedisServer {
	i := slices.IndexFunc(c.servers, func(s *RedisServer) bool { return s.Addr == addr })
	if i < 0 {
		return nil
	}
	return c.servers[i]
}

// logs returns the end of every node's log, for a failure message.
func (c *RedisCluster) logs() string {
	var b strings.Builder
	for _, s := range c.servers {
		b.WriteString(localsvc.LogTail(filepath.Join(s.dir, "redis.log")))
		b.WriteByte('\n')
	}
	return b.String()
}
