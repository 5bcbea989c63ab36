package testsvc

import (
	"errors"
	"fmt"
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

	mu   sync.Mutex
	proc *redisProc // nil while stopped
}

// redisProc is one run of the server process.
type redisProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returns
	paused bool
}

// StartRedis starts a redis-server for t and stops it when t ends. Without
// redis-server it skips t, or fails it when backends are required.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	bin, ok := lookBinary("redis-server", "/usr/bin", "/usr/local/bin", "/usr/sbin")
	if !ok {
		unavailable(t, "redis-server not found")
	}
	s := &RedisServer{bin: bin, dir: t.TempDir()}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.stopLocked(); err != nil {
			t.Errorf("stop test redis: %v", err)
		}
	})
	// A free port can be taken by someone else before the server binds it;
	// try a fresh one a few times rather than fail the test for it.
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
	t.Fatalf("start test redis: %v", err)
	return nil
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
	if err := s.startLocked(); err != nil {
		t.Fatalf("start test redis: %v", err)
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
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal test redis %s: %v", s.Addr, err)
	}
	s.proc.paused = paused
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
func (s *RedisServer) startLocked() error {
	logPath := filepath.Join(s.dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("open redis log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
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
		if pingRedis(s.Addr, cmd.Process.Pid) == nil {
			return nil
		}
		select {
		case <-p.exited:
			s.proc = nil
			return fmt.Errorf("redis-server on %s exited at start-up: %s", s.Addr, readLog(logPath))
		case <-deadline.C:
			_ = s.stopLocked()
			return fmt.Errorf("redis-server on %s did not answer PING within %s: %s", s.Addr, redisReadyWithin, readLog(logPath))
		case <-tick.C:
		}
	}
}

// stopLocked sends SIGTERM, kills the process if it has not exited by the
// deadline, and waits for it either way.
func (s *RedisServer) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if p.paused {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("terminate redis-server on %s: %w", s.Addr, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(redisStopWithin):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("redis-server on %s ignored SIGTERM for %s and was killed", s.Addr, redisStopWithin)
}

// pingRedis makes one short connection and checks that the server answering
// is process pid: after losing a race for the port, the answer could come
// from someone else's server.
func pingRedis(addr string, pid int) error {
	c, err := redis.Dial("tcp", addr,
		redis.DialConnectTimeout(200*time.Millisecond),
		redis.DialReadTimeout(200*time.Millisecond),
		redis.DialWriteTimeout(200*time.Millisecond))
	if err != nil {
		return err
	}
	defer c.Close()
	info, err := redis.String(c.Do("INFO", "server"))
	if err != nil {
		return err
	}
	if !strings.Contains(info, "\r\nprocess_id:"+strconv.Itoa(pid)+"\r\n") {
		return fmt.Errorf("%s is answered by another process", addr)
	}
	return nil
}

// readLog returns the tail of the server's log for a failure message.
func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}
