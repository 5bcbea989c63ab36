package testsvc

import (
	"context"
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

	"github.com/hallpass/hallpass/internal/localsvc"
)

// Time limits for a Sentinel cluster. Sentinels find each other through hello
// messages every two seconds, and a failover after a crash takes the
// down-after time, an election and a promotion: a few seconds in all. The
// failover limit is generous because a Sentinel starved of CPU for two
// seconds on a busy machine goes into TILT mode and does nothing for 30.
const (
	clusterReadyWithin = 30 * time.Second
	failoverWithin     = 45 * time.Second
	// As deploy/redis/sentinel.conf. Not less: Sentinels PING about once a
	// second, and the primary lease (redisx.PrimaryLease) lasts down-after
	// minus the time since the last answer, so at 1 s it would keep lapsing.
	sentinelDownAfter     = 1500 // milliseconds without an answer before "down"
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
	return StartSentinelClusterWithReplicas(t, 1)
}

// PrimaryAddr returns the primary's address once every running Sentinel
// reports the same one.
func (c *SentinelCluster) PrimaryAddr(t testing.TB) string {
	t.Helper()
	var addr string
	err := localsvc.Poll(t.Context(), failoverWithin, clusterPollEvery, func() error {
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
	err := localsvc.Poll(t.Context(), failoverWithin, clusterPollEvery, func() error {
		a, err := c.agreedPrimary()
		if err != nil {
			return err
		}
		if a == oldAddr {
			return fmt.Errorf("sentinels still name %s", oldAddr)
		}
		if role, err := localsvc.Role(a); err != nil || role != "master" {
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
	if err := c.sentinels[i].start(t.Context()); err != nil {
		t.Fatalf("sentinel cluster: %v", err)
	}
}

// FreezeSentinel stops Sentinel i (an index into SentinelAddrs) with
// SIGSTOP, as a network partition would cut it off: its connections stay
// open and nothing is answered. It is thawed (SIGCONT) by the function
// returned, or when t ends.
func (c *SentinelCluster) FreezeSentinel(t testing.TB, i int) (thaw func()) {
	t.Helper()
	s := c.sentinels[i]
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		t.Fatalf("sentinel cluster: freeze sentinel %d: not running", i)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("sentinel cluster: freeze sentinel %d: %v", i, err)
	}
	var once sync.Once
	thaw = func() {
		once.Do(func() {
			if err := p.Signal(syscall.SIGCONT); err != nil {
				t.Errorf("sentinel cluster: thaw sentinel %d: %v", i, err)
			}
		})
	}
	t.Cleanup(thaw)
	return thaw
}

// FreezeSentinels freezes every Sentinel (see FreezeSentinel) until t ends.
func (c *SentinelCluster) FreezeSentinels(t testing.TB) {
	t.Helper()
	for i := range c.sentinels {
		c.FreezeSentinel(t, i)
	}
}

// logs returns the end of every Sentinel's log, for a failure message.
func (c *SentinelCluster) logs() string {
	var b strings.Builder
	for _, s := range c.sentinels {
		b.WriteString(localsvc.LogTail(s.log))
		b.WriteByte('\n')
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
	var running []string
	for _, s := range c.sentinels {
		if s.running() {
			running = append(running, s.addr)
		}
	}
	return localsvc.AgreedPrimary(running, c.MasterName)
}

// kill ends the server with SIGKILL: no shutdown, no final AOF flush.
func (s *RedisServer) kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return fmt.Errorf("kill redis %s: not running", s.Addr)
	}
	s.proc, s.paused = nil, false
	if err := p.Kill(); err != nil {
		return fmt.Errorf("redis %s: %w", s.Addr, err)
	}
	return nil
}

// replicaInSync reports whether replica is connected to primary and has
// caught up with it.
func replicaInSync(primary, replica *RedisServer) error {
	p, err := localsvc.ReplicationInfo(primary.Addr)
	if err != nil {
		return err
	}
	r, err := localsvc.ReplicationInfo(replica.Addr)
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

// sentinelProcess is one redis-sentinel with its own configuration file,
// which it rewrites as it learns about the cluster, so that a restarted
// Sentinel remembers what it knew.
type sentinelProcess struct {
	addr string
	bin  string
	conf string
	log  string

	mu   sync.Mutex
	proc *localsvc.Process // nil while stopped
}

// startSentinel writes a configuration monitoring the primary on
// primaryPort, starts a Sentinel with it on a free port, and stops it when t
// ends.
func startSentinel(t testing.TB, bin, masterName string, primaryPort int) *sentinelProcess {
	t.Helper()
	dir := t.TempDir()
	var s *sentinelProcess
	err := localsvc.OnFreePort("127.0.0.1", func(port int) error {
		s = &sentinelProcess{
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
			return fmt.Errorf("write sentinel config: %w", err)
		}
		return s.start(t.Context())
	})
	if err != nil {
		t.Fatalf("start sentinel: %v", err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("stop sentinel: %v", err)
		}
	})
	return s
}

// start runs the Sentinel and waits for it to answer.
func (s *sentinelProcess) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return fmt.Errorf("sentinel %s: already running", s.addr)
	}
	p, err := runRedis(ctx, exec.Command(s.bin, s.conf), s.log, s.addr)
	if err != nil {
		return fmt.Errorf("redis-sentinel on %s: %w", s.addr, err)
	}
	s.proc = p
	return nil
}

// stop ends the Sentinel with SIGTERM, which lets it save its configuration,
// and kills it if it lingers.
func (s *sentinelProcess) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if err := p.Stop(syscall.SIGTERM, redisStopWithin); err != nil {
		return fmt.Errorf("redis-sentinel on %s: %w", s.addr, err)
	}
	return nil
}

func (s *sentinelProcess) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}
