package testsvc

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
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
