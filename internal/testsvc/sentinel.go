package testsvc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Time limits for a Sentinel cluster. Sentinels find each other through hello
// messages every two seconds, and a failover after a crash takes the
// down-after time, an election and a promotion: a few seconds in all. The
// failover limit is generous because a Sentinel starved of CPU for two
// seconds on a busy machine goes into TILT mode and does nothing for 30.
const (
	clusterReadyWithin    = 30 * time.Second
	failoverWithin        = 45 * time.Second
	sentinelDownAfter     = 1000 // milliseconds without an answer before "down"
	sentinelFailoverLimit = 5000 // milliseconds a failover may take before another is tried
	sentinelQuorum        = 2
	sentinelCount         = 3
	clusterPollEvery      = 50 * time.Millisecond
)

// SentinelCluster is a Redis primary, one replica and three Sentinels
// monitoring them, all on 127.0.0.1 for one test, with timings short enough
// for failovers to take seconds. The primary refuses writes unless its replica
// is connected (min-replicas-to-write 1), as in production.
//
// Which server is the primary changes with failovers: ask PrimaryAddr or
// Primary rather than remembering it.
type SentinelCluster struct {
	// MasterName is the name the Sentinels monitor the primary under.
	MasterName string
	// SentinelAddrs are the Sentinels' host:port addresses.
	SentinelAddrs []string

	servers   []*RedisServer // the first started as primary, the second as its replica
	sentinels []*sentinelProcess
}

// StartSentinelCluster starts a primary, its replica and three Sentinels for
// t, waits until the replica is in sync and every Sentinel knows the primary,
// the replica and the other Sentinels, and stops them all when t ends.
// Without redis-server or redis-sentinel it skips t, or fails it when backends
// are required.
func StartSentinelCluster(t testing.TB) *SentinelCluster {
	t.Helper()
	bin, ok := lookBinary("redis-server", "/usr/bin", "/usr/local/bin", "/usr/sbin")
	if !ok {
		unavailable(t, "redis-server not found")
	}
	sentinelBin, ok := lookBinary("redis-sentinel", "/usr/bin", "/usr/local/bin", "/usr/sbin")
	if !ok {
		unavailable(t, "redis-sentinel not found")
	}

	c := &SentinelCluster{MasterName: "hallpass"}
	// Both servers write an AOF, and either may become the primary. Only the
	// first primary refuses writes without a replica: with one replica, the
	// same rule on the promoted server would stop every write after a crash.
	// A full sync starts at once rather than after the default five seconds
	// spent waiting for more replicas.
	primary := startClusterServer(t, bin,
		"--appendonly", "yes",
		"--repl-diskless-sync-delay", "0",
		"--min-replicas-to-write", "1",
		"--min-replicas-max-lag", "10")
	replica := startClusterServer(t, bin,
		"--appendonly", "yes",
		"--repl-diskless-sync-delay", "0",
		"--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	c.servers = []*RedisServer{primary, replica}
	if err := poll(clusterReadyWithin, func() error { return replicaInSync(primary, replica) }); err != nil {
		t.Fatalf("sentinel cluster: %v", err)
	}

	for range sentinelCount {
		s := startSentinel(t, sentinelBin, c.MasterName, primary.port)
		c.sentinels = append(c.sentinels, s)
		c.SentinelAddrs = append(c.SentinelAddrs, s.addr)
	}
	if err := poll(clusterReadyWithin, c.sentinelsSettled); err != nil {
		t.Fatalf("sentinel cluster: %v\n%s", err, c.logs())
	}
	return c
}

// PrimaryAddr returns the primary's address once every running Sentinel
// reports the same one.
func (c *SentinelCluster) PrimaryAddr(t testing.TB) string {
	t.Helper()
	var addr string
	err := poll(failoverWithin, func() error {
		a, err := c.agreedPrimary()
		addr = a
		return err
	})
	if err != nil {
		t.Fatalf("sentinel cluster: primary: %v", err)
	}
	return addr
}

// Primary returns the server the Sentinels agree is the primary.
func (c *SentinelCluster) Primary(t testing.TB) *RedisServer {
	t.Helper()
	return c.server(t, c.PrimaryAddr(t))
}

// Replica returns the server that is not the primary.
func (c *SentinelCluster) Replica(t testing.TB) *RedisServer {
	t.Helper()
	addr := c.PrimaryAddr(t)
	for _, s := range c.servers {
		if s.Addr != addr {
			return s
		}
	}
	t.Fatalf("sentinel cluster: no replica besides %s", addr)
	return nil
}

// KillPrimary kills the current primary with SIGKILL, as a crash would, and
// returns the address it had. The Sentinels then fail over to the replica;
// WaitForFailover waits for that.
func (c *SentinelCluster) KillPrimary(t testing.TB) string {
	t.Helper()
	addr := c.PrimaryAddr(t)
	if err := c.server(t, addr).kill(); err != nil {
		t.Fatalf("sentinel cluster: %v", err)
	}
	return addr
}

// WaitForFailover waits until every running Sentinel names a primary other
// than oldAddr and that server says it is a master, and returns its address.
func (c *SentinelCluster) WaitForFailover(t testing.TB, oldAddr string) string {
	t.Helper()
	var addr string
	err := poll(failoverWithin, func() error {
		a, err := c.agreedPrimary()
		if err != nil {
			return err
		}
		if a == oldAddr {
			return fmt.Errorf("sentinels still name %s", oldAddr)
		}
		if role, err := serverRole(a); err != nil || role != "master" {
			return fmt.Errorf("new primary %s: role %q, %v", a, role, err)
		}
		addr = a
		return nil
	})
	if err != nil {
		t.Fatalf("sentinel cluster: no failover from %s within %s: %v\n%s", oldAddr, failoverWithin, err, c.logs())
	}
	return addr
}

// StopSentinel stops Sentinel i (an index into SentinelAddrs) and waits until
// it has exited. Its configuration, with what it has learnt, is kept.
func (c *SentinelCluster) StopSentinel(t testing.TB, i int) {
	t.Helper()
	if err := c.sentinels[i].stop(); err != nil {
		t.Fatalf("sentinel cluster: %v", err)
	}
}

// StartSentinel brings Sentinel i back on its address and waits until it
// answers PING.
func (c *SentinelCluster) StartSentinel(t testing.TB, i int) {
	t.Helper()
	if err := c.sentinels[i].start(); err != nil {
		t.Fatalf("sentinel cluster: %v", err)
	}
}

// logs returns the end of every Sentinel's log, for a failure message.
func (c *SentinelCluster) logs() string {
	var b strings.Builder
	for _, s := range c.sentinels {
		fmt.Fprintf(&b, "--- sentinel %s log:\n%s\n", s.addr, readLog(s.log))
	}
	return b.String()
}

// server returns the cluster's server at addr.
func (c *SentinelCluster) server(t testing.TB, addr string) *RedisServer {
	t.Helper()
	for _, s := range c.servers {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("sentinel cluster: no server at %s", addr)
	return nil
}

// agreedPrimary asks every running Sentinel for the primary and returns the
// address if they all give the same one.
func (c *SentinelCluster) agreedPrimary() (string, error) {
	var addr string
	asked := 0
	for _, s := range c.sentinels {
		if !s.running() {
			continue
		}
		a, err := askPrimary(s.addr, c.MasterName)
		if err != nil {
			return "", err
		}
		if asked > 0 && a != addr {
			return "", fmt.Errorf("sentinels disagree: %s and %s", addr, a)
		}
		addr = a
		asked++
	}
	if asked == 0 {
		return "", errors.New("no sentinel running")
	}
	return addr, nil
}

// sentinelsSettled reports whether every Sentinel sees the primary as up,
// knows a replica whose link is up, and knows the other Sentinels: what a
// failover needs.
func (c *SentinelCluster) sentinelsSettled() error {
	for _, s := range c.sentinels {
		conn, err := dialQuick(s.addr)
		if err != nil {
			return err
		}
		master, err := redis.StringMap(conn.Do("SENTINEL", "MASTER", c.MasterName))
		if err != nil {
			conn.Close()
			return fmt.Errorf("sentinel %s: SENTINEL MASTER: %w", s.addr, err)
		}
		replicas, err := redis.Values(conn.Do("SENTINEL", "REPLICAS", c.MasterName))
		conn.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: SENTINEL REPLICAS: %w", s.addr, err)
		}
		switch {
		case master["flags"] != "master":
			return fmt.Errorf("sentinel %s: master flags %q", s.addr, master["flags"])
		case master["num-slaves"] != "1":
			return fmt.Errorf("sentinel %s: knows %s replicas", s.addr, master["num-slaves"])
		case master["num-other-sentinels"] != strconv.Itoa(sentinelCount-1):
			return fmt.Errorf("sentinel %s: knows %s other sentinels", s.addr, master["num-other-sentinels"])
		}
		for _, r := range replicas {
			info, err := redis.StringMap(r, nil)
			if err != nil {
				return fmt.Errorf("sentinel %s: replica: %w", s.addr, err)
			}
			if info["flags"] != "slave" || info["master-link-status"] != "ok" {
				return fmt.Errorf("sentinel %s: replica %s:%s flags %q link %q", s.addr,
					info["ip"], info["port"], info["flags"], info["master-link-status"])
			}
		}
	}
	return nil
}

// startClusterServer starts a redis-server with extra options, retrying on a
// fresh port if the first is taken.
func startClusterServer(t testing.TB, bin string, args ...string) *RedisServer {
	t.Helper()
	s := &RedisServer{bin: bin, dir: t.TempDir(), args: args}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.stopLocked(); err != nil {
			t.Errorf("stop cluster redis: %v", err)
		}
	})
	var err error
	for range 3 {
		s.port = FreePort(t)
		s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
		s.URL = "redis://" + s.Addr
		s.mu.Lock()
		err = s.startLocked()
		s.mu.Unlock()
		if err == nil {
			return s
		}
	}
	t.Fatalf("start cluster redis: %v", err)
	return nil
}

// kill ends the server with SIGKILL: no shutdown, no final AOF flush.
func (s *RedisServer) kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return fmt.Errorf("kill redis %s: not running", s.Addr)
	}
	s.proc = nil
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill redis %s: %w", s.Addr, err)
	}
	<-p.exited
	return nil
}

// replicaInSync reports whether replica is connected to primary and has
// caught up with it.
func replicaInSync(primary, replica *RedisServer) error {
	p, err := replicationInfo(primary.Addr)
	if err != nil {
		return err
	}
	r, err := replicationInfo(replica.Addr)
	if err != nil {
		return err
	}
	if r["master_link_status"] != "up" {
		return fmt.Errorf("replica %s: link %q", replica.Addr, r["master_link_status"])
	}
	if p["connected_slaves"] != "1" || !strings.Contains(p["slave0"], "state=online") {
		return fmt.Errorf("primary %s: replicas %q, %q", primary.Addr, p["connected_slaves"], p["slave0"])
	}
	return nil
}

// replicationInfo returns INFO replication from addr as a map.
func replicationInfo(addr string) (map[string]string, error) {
	conn, err := dialQuick(addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	info, err := redis.String(conn.Do("INFO", "replication"))
	if err != nil {
		return nil, fmt.Errorf("%s: INFO replication: %w", addr, err)
	}
	m := make(map[string]string)
	for line := range strings.SplitSeq(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// serverRole returns the first field of ROLE at addr: master, slave or
// sentinel.
func serverRole(addr string) (string, error) {
	conn, err := dialQuick(addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	role, err := redis.Values(conn.Do("ROLE"))
	if err != nil || len(role) == 0 {
		return "", fmt.Errorf("%s: ROLE: %v", addr, err)
	}
	return redis.String(role[0], nil)
}

// askPrimary asks the Sentinel at addr where the primary named name is.
func askPrimary(addr, name string) (string, error) {
	conn, err := dialQuick(addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	hostPort, err := redis.Strings(conn.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name))
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", addr, err)
	}
	if len(hostPort) != 2 {
		return "", fmt.Errorf("sentinel %s: does not know %q", addr, name)
	}
	return net.JoinHostPort(hostPort[0], hostPort[1]), nil
}

// dialQuick connects for one short check.
func dialQuick(addr string) (redis.Conn, error) {
	return redis.Dial("tcp", addr,
		redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2*time.Second),
		redis.DialWriteTimeout(2*time.Second))
}

// poll calls check until it succeeds or within has passed, and then returns
// its last error.
func poll(within time.Duration, check func() error) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(clusterPollEvery)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-deadline.C:
			return fmt.Errorf("not ready after %s: %w", within, err)
		case <-tick.C:
		}
	}
}

// sentinelProcess is one redis-sentinel with its own configuration file,
// which it rewrites as it learns about the cluster, so that a restarted
// Sentinel remembers what it knew.
type sentinelProcess struct {
	addr string
	bin  string
	conf string
	log  string

	mu   sync.Mutex
	proc *redisProc // nil while stopped
}

// startSentinel writes a configuration monitoring the primary on
// primaryPort, starts a Sentinel with it on a free port, and stops it when t
// ends.
func startSentinel(t testing.TB, bin, masterName string, primaryPort int) *sentinelProcess {
	t.Helper()
	dir := t.TempDir()
	var err error
	for range 3 {
		port := FreePort(t)
		s := &sentinelProcess{
			addr: "127.0.0.1:" + strconv.Itoa(port),
			bin:  bin,
			conf: filepath.Join(dir, "sentinel.conf"),
			log:  filepath.Join(dir, "sentinel.log"),
		}
		conf := fmt.Sprintf(`port %d
bind 127.0.0.1
daemonize no
dir %s
logfile ""
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %[3]s %[6]d
sentinel failover-timeout %[3]s %[7]d
sentinel parallel-syncs %[3]s 1
`, port, dir, masterName, primaryPort, sentinelQuorum, sentinelDownAfter, sentinelFailoverLimit)
		if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
			t.Fatalf("write sentinel config: %v", err)
		}
		if err = s.start(); err == nil {
			t.Cleanup(func() {
				if err := s.stop(); err != nil {
					t.Errorf("stop sentinel: %v", err)
				}
			})
			return s
		}
	}
	t.Fatalf("start sentinel: %v", err)
	return nil
}

// start runs the Sentinel and waits for it to answer.
func (s *sentinelProcess) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return fmt.Errorf("sentinel %s: already running", s.addr)
	}
	logFile, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open sentinel log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(s.bin, s.conf)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	p := &redisProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	s.proc = p

	deadline := time.NewTimer(redisReadyWithin)
	defer deadline.Stop()
	tick := time.NewTicker(redisPollEvery)
	defer tick.Stop()
	for {
		if pingRedis(s.addr, cmd.Process.Pid) == nil {
			return nil
		}
		select {
		case <-p.exited:
			s.proc = nil
			return fmt.Errorf("redis-sentinel on %s exited at start-up: %s", s.addr, readLog(s.log))
		case <-deadline.C:
			_ = s.stopLocked()
			return fmt.Errorf("redis-sentinel on %s did not answer PING within %s: %s", s.addr, redisReadyWithin, readLog(s.log))
		case <-tick.C:
		}
	}
}

// stop ends the Sentinel with SIGTERM, which lets it save its configuration,
// and kills it if it lingers.
func (s *sentinelProcess) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *sentinelProcess) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("terminate redis-sentinel on %s: %w", s.addr, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(redisStopWithin):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("redis-sentinel on %s ignored SIGTERM for %s and was killed", s.addr, redisStopWithin)
}

func (s *sentinelProcess) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}
