package testsvc

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/localsvc"
)

// Time limits for a test Redis: generous, because tests share two cores with
// compilers, but finite, so a wedged server fails the test instead of
// hanging it.
const (
	redisReadyWithin = 10 * time.Second
	redisStopWithin  = 5 * time.Second
	redisPollEvery   = 20 * time.Millisecond
)

// RedisServer is a redis-server started for one test, listening only on
// 127.0.0.1 and keeping nothing on disk. Stop and Start take it down and bring
// it back on the same port, for outage tests.
type RedisServer struct {
	// Addr is host:port, e.g. 127.0.0.1:41234.
	Addr string
	// URL is Addr as a redis:// URL.
	URL string

	bin  string
	dir  string
	port int
	args []string // extra options after the defaults, which they override (sentinel.go)

	mu     sync.Mutex
	proc   *localsvc.Process // nil while stopped
	paused bool              // frozen by Pause
}

// StartRedis starts a redis-server for t and stops it when t ends. Without
// redis-server it skips t, or fails it when backends are required.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	return startRedisServer(t, redisBinary(t, "redis-server"))
}

// redisBinary finds redis-server or redis-sentinel; without it, it skips t,
// or fails it when backends are required.
func redisBinary(t testing.TB, name string) string {
	t.Helper()
	bin, err := localsvc.LookBinary(name, "/usr/bin", "/usr/local/bin")
	if err != nil {
		unavailable(t, "%v", err)
	}
	return bin
}

// StartRedisReplica starts a redis-server for t that replicates primary,
// waits until it is in sync, and stops it when t ends. It serves reads while
// its link to the primary is down (Redis's default, replica-serve-stale-data
// yes) and refuses writes.
func StartRedisReplica(t testing.TB, primary *RedisServer) *RedisServer {
	t.Helper()
	// The full sync starts at once rather than after the default five
	// seconds spent waiting for more replicas.
	if _, err := primary.Conn(t).Do("CONFIG", "SET", "repl-diskless-sync-delay", "0"); err != nil {
		t.Fatalf("start test redis replica: %v", err)
	}
	r := startRedisServer(t, redisBinary(t, "redis-server"),
		"--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	// In sync, and acknowledging writes: WAIT may still count no replica
	// for a moment after the primary lists it online.
	c := primary.Conn(t)
	acknowledges := func() error {
		if err := replicaInSync(primary, r); err != nil {
			return err
		}
		if _, err := c.Do("INCR", "testsvc:replica-check"); err != nil {
			return err
		}
		if n, err := redis.Int(c.Do("WAIT", 1, 100)); err != nil || n != 1 {
			return fmt.Errorf("replica %s: WAIT 1 counted %d, %v", r.Addr, n, err)
		}
		_, err := c.Do("DEL", "testsvc:replica-check")
		return err
	}
	if err := localsvc.Poll(t.Context(), redisReadyWithin, redisPollEvery, acknowledges); err != nil {
		t.Fatalf("start test redis replica: %v", err)
	}
	return r
}

// startRedisServer starts bin with extra options args for t, retrying on a
// fresh port if the first is taken, and stops it when t ends.
func startRedisServer(t testing.TB, bin string, args ...string) *RedisServer {
	t.Helper()
	s := &RedisServer{bin: bin, dir: t.TempDir(), args: args}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.stopLocked(); err != nil {
			t.Errorf("stop test redis: %v", err)
		}
	})
	err := localsvc.OnFreePort("127.0.0.1", func(port int) error {
		s.port = port
		s.Addr = "127.0.0.1:" + strconv.Itoa(port)
		s.URL = "redis://" + s.Addr
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.startLocked(t.Context())
	})
	if err != nil {
		t.Fatalf("start test redis: %v", err)
	}
	return s
}

// Stop shuts the server down and waits until it has exited. Its data is lost.
func (s *RedisServer) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(); err != nil {
		t.Fatalf("stop test redis: %v", err)
	}
}

// Start brings a stopped server back on the same port, empty, and waits until
// it answers PING.
func (s *RedisServer) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		t.Fatalf("start test redis %s: already running", s.Addr)
	}
	if err := s.startLocked(t.Context()); err != nil {
		t.Fatalf("start test redis: %v", err)
	}
}

// Kill kills the server with SIGKILL, as a crash would, and waits until it
// has exited. Start brings it back, empty.
func (s *RedisServer) Kill(t testing.TB) {
	t.Helper()
	if err := s.kill(); err != nil {
		t.Fatalf("kill test redis: %v", err)
	}
}

// Pause freezes the server process (SIGSTOP): connections still open, but
// nothing is answered, as with a hung server or a network partition. Resume,
// or the end of the test, thaws it.
func (s *RedisServer) Pause(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP, true)
}

// Resume thaws a server frozen by Pause.
func (s *RedisServer) Resume(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGCONT, false)
}

func (s *RedisServer) signal(t testing.TB, sig syscall.Signal, paused bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		t.Fatalf("signal test redis %s: not running", s.Addr)
	}
	if err := s.proc.Signal(sig); err != nil {
		t.Fatalf("signal test redis %s: %v", s.Addr, err)
	}
	s.paused = paused
}

// Conn returns a connection to the server, closed when t ends, for a test's
// own assertions.
func (s *RedisServer) Conn(t testing.TB) redis.Conn {
	t.Helper()
	c, err := redis.Dial("tcp", s.Addr,
		redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(5*time.Second),
		redis.DialWriteTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to test redis %s: %v", s.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startLocked runs the server and waits for its first PONG.
func (s *RedisServer) startLocked(ctx context.Context) error {
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--unixsocket", "",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	cmd.Args = append(cmd.Args, s.args...)
	p, err := runRedis(ctx, cmd, filepath.Join(s.dir, "redis.log"), s.Addr)
	if err != nil {
		return fmt.Errorf("redis-server on %s: %w", s.Addr, err)
	}
	s.proc, s.paused = p, false
	return nil
}

// stopLocked sends SIGTERM, kills the process if it has not exited by the
// deadline, and waits for it either way.
func (s *RedisServer) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	if s.paused {
		_ = p.Signal(syscall.SIGCONT)
	}
	s.proc, s.paused = nil, false
	if err := p.Stop(syscall.SIGTERM, redisStopWithin); err != nil {
		return fmt.Errorf("redis-server on %s: %w", s.Addr, err)
	}
	return nil
}

// runRedis starts cmd, a redis-server or redis-sentinel that is to listen
// on addr, and waits until it answers there.
func runRedis(ctx context.Context, cmd *exec.Cmd, logPath, addr string) (*localsvc.Process, error) {
	p, err := localsvc.Start(cmd, logPath)
	if err != nil {
		return nil, err
	}
	err = p.WaitReady(ctx, redisReadyWithin, redisPollEvery, func() error { return localsvc.PingRedis(addr, p.Pid()) })
	if err != nil {
		_ = p.Stop(syscall.SIGTERM, redisStopWithin)
		return nil, err
	}
	return p, nil
}

// StartSentinelClusterWithReplicas is StartSentinelCluster with n replicas
// of the primary instead of one (n ≥ 1), as production runs two: it waits
// until every replica is in sync and every Sentinel knows the primary, the
// n replicas and the other Sentinels. As there, only the first primary
// refuses writes without a replica (min-replicas-to-write 1). Replicas
// returns the replicas; Replica returns one of them.
func StartSentinelClusterWithReplicas(t testing.TB, n int) *SentinelCluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("sentinel cluster: %d replicas, want at least 1", n)
	}
	bin := redisBinary(t, "redis-server")
	sentinelBin := redisBinary(t, "redis-sentinel")

	c := &SentinelCluster{MasterName: "hallpass"}
	// Every server writes an AOF, and any may become the primary. Only the
	// first primary refuses writes without a replica: with one replica, the
	// same rule on the promoted server would stop every write after a crash.
	// A full sync starts at once rather than after the default five seconds
	// spent waiting for more replicas.
	primary := startRedisServer(t, bin,
		"--appendonly", "yes",
		"--repl-diskless-sync-delay", "0",
		"--min-replicas-to-write", "1",
		"--min-replicas-max-lag", "10")
	c.servers = []*RedisServer{primary}
	for range n {
		c.servers = append(c.servers, startRedisServer(t, bin,
			"--appendonly", "yes",
			"--repl-diskless-sync-delay", "0",
			"--replicaof", "127.0.0.1", strconv.Itoa(primary.port)))
	}
	inSync := func() error { return replicasInSync(primary, c.servers[1:]) }
	if err := localsvc.Poll(t.Context(), clusterReadyWithin, clusterPollEvery, inSync); err != nil {
		t.Fatalf("sentinel cluster: %v", err)
	}

	for range sentinelCount {
		s := startSentinel(t, sentinelBin, c.MasterName, primary.port)
		c.sentinels = append(c.sentinels, s)
		c.SentinelAddrs = append(c.SentinelAddrs, s.addr)
	}
	settled := func() error {
		for _, s := range c.sentinels {
			if err := localsvc.CheckSentinel(s.addr, c.MasterName, n, sentinelCount-1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := localsvc.Poll(t.Context(), clusterReadyWithin, clusterPollEvery, settled); err != nil {
		t.Fatalf("sentinel cluster: %v\n%s", err, c.logs())
	}
	return c
}

// Replicas returns the servers that are not the primary, running or not.
func (c *SentinelCluster) Replicas(t testing.TB) []*RedisServer {
	t.Helper()
	addr := c.PrimaryAddr(t)
	var replicas []*RedisServer
	for _, s := range c.servers {
		if s.Addr != addr {
			replicas = append(replicas, s)
		}
	}
	return replicas
}

// replicasInSync reports whether every replica is connected to primary, has
// caught up with it, and is the only kind of replica primary has.
func replicasInSync(primary *RedisServer, replicas []*RedisServer) error {
	p, err := localsvc.ReplicationInfo(primary.Addr)
	if err != nil {
		return err
	}
	if p["connected_slaves"] != strconv.Itoa(len(replicas)) {
		return fmt.Errorf("primary %s: %s replicas connected, want %d", primary.Addr, p["connected_slaves"], len(replicas))
	}
	online := make(map[string]bool)
	for i := range len(replicas) {
		f := p["slave"+strconv.Itoa(i)]
		if strings.Contains(f, ",state=online,") {
			_, port, _ := strings.Cut(f, ",port=")
			port, _, _ = strings.Cut(port, ",")
			online[port] = true
		}
	}
	for _, r := range replicas {
		info, err := localsvc.ReplicationInfo(r.Addr)
		if err != nil {
			return err
		}
		if info["master_link_status"] != "up" {
			return fmt.Errorf("replica %s: link %q", r.Addr, info["master_link_status"])
		}
		if !online[strconv.Itoa(r.port)] {
			return fmt.Errorf("primary %s: replica %s not online", primary.Addr, r.Addr)
		}
	}
	return nil
}

// CutOffReplica freezes replica, a replica of s, as Pause does, and closes
// its replication link on s, so that no write s takes from then on reaches
// it. Pausing alone would not do that: the kernel keeps taking in what s
// sends to the frozen process, which applies it when it thaws. Once resumed
// (Resume), the replica connects to s again within a second if s is still
// running; with s killed first, it stays where it was cut off, behind any
// other replica of s.
func (s *RedisServer) CutOffReplica(t testing.TB, replica *RedisServer) {
	t.Helper()
	// The replica's end of its link is the client address s knows it by.
	list, err := redis.String(replica.Conn(t).Do("CLIENT", "LIST", "TYPE", "master"))
	if err != nil {
		t.Fatalf("cut off replica %s: CLIENT LIST: %v", replica.Addr, err)
	}
	var link string
	for field := range strings.FieldsSeq(list) {
		if v, ok := strings.CutPrefix(field, "laddr="); ok {
			link = v
		}
	}
	if link == "" {
		t.Fatalf("cut off replica %s: no link to a primary in %q", replica.Addr, list)
	}
	replica.Pause(t)
	if _, err := s.Conn(t).Do("CLIENT", "KILL", "ADDR", link); err != nil {
		t.Fatalf("cut off replica %s: CLIENT KILL ADDR %s on %s: %v", replica.Addr, link, s.Addr, err)
	}
	gone := func() error {
		info, err := localsvc.ReplicationInfo(s.Addr)
		if err != nil {
			return err
		}
		for k, v := range info {
			if strings.HasPrefix(k, "slave") && strings.Contains(v, ",port="+strconv.Itoa(replica.port)+",") {
				return fmt.Errorf("%s still lists %s: %s", s.Addr, replica.Addr, v)
			}
		}
		return nil
	}
	if err := localsvc.Poll(t.Context(), redisStopWithin, redisPollEvery, gone); err != nil {
		t.Fatalf("cut off replica %s: %v", replica.Addr, err)
	}
}
