package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/localsvc"
)

// Time limits for the session store. Sentinel's own timings come from
// deploy/redis/sentinel.conf (a primary is down after 1.5 s without an answer),
// so a failover takes a few seconds; the limits leave room for a busy
// machine, and for a Sentinel that went into TILT mode after being starved of
// CPU (it then does nothing for 30 s).
const (
	redisReadyWithin   = 15 * time.Second
	redisStopWithin    = 10 * time.Second
	redisSettledWithin = 60 * time.Second
	failoverWithin     = 60 * time.Second
)

// MasterName is the name the Sentinels monitor the primary under
// (deploy/redis/sentinel.conf).
const MasterName = "hallpass"

// sentinelCount is how many Sentinels watch the primary (quorum 2).
const sentinelCount = 3

// serverCount is how many Redis servers hold the sessions: a primary and two
// replicas, as in docker-compose.yml. With two replicas the loss of the
// primary leaves the promoted one a replica to confirm sign-ins (WAIT 1,
// min-replicas-to-write 1): Sentinel tells the other to follow it, and
// sign-ins are accepted again about a second after the promotion, without
// the lost server.
const serverCount = 3

// redisServer is one of the Redis servers. Which one is the primary changes
// with failovers; it is started from a copy of deploy/redis/primary.conf
// when it is to be the primary and of replica.conf, following the primary,
// otherwise.
type redisServer struct {
	addr      string
	port      int
	replicaOf string // the primary to follow at the next start; empty: be the primary
	proc      *process
}

// sentinel is one redis-sentinel started through deploy/redis/sentinel-start.sh,
// which keeps the configuration the Sentinel rewrites, so a restarted Sentinel
// remembers the current primary.
type sentinel struct {
	addr string
	proc *process
}

// redisSet is the session store: three servers and three Sentinels.
type redisSet struct {
	host      string
	deployDir string
	servers   []*redisServer
	sentinels []*sentinel
}

// startRedis starts a primary, its two replicas and three Sentinels on host,
// each in its own directory under dir, and waits until the Sentinels know
// the whole set.
func startRedis(ctx context.Context, host, dir, deployDir string) (*redisSet, error) {
	serverBin, err := lookBinary("redis-server", "redis-server")
	if err != nil {
		return nil, err
	}
	if _, err := lookBinary("redis-sentinel", "redis-sentinel"); err != nil {
		return nil, err
	}
	rs := &redisSet{host: host, deployDir: deployDir}
	for i := range serverCount {
		s := &redisServer{}
		sdir := filepath.Join(dir, fmt.Sprintf("redis%d", i+1))
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		// Redis rewrites its configuration file when Sentinel reconfigures
		// it (CONFIG REWRITE): it runs from a fresh copy of the shared file,
		// never from the file itself.
		conf := filepath.Join(sdir, "redis.conf")
		s.proc = &process{
			name: fmt.Sprintf("redis%d", i+1),
			log:  filepath.Join(sdir, "redis.log"),
			prepare: func() error {
				name := "primary.conf"
				if s.replicaOf != "" {
					name = "replica.conf"
				}
				return copyFile(filepath.Join(deployDir, "redis", name), conf)
			},
			command: func() *exec.Cmd {
				var role []string
				if s.replicaOf != "" {
					h, p, _ := net.SplitHostPort(s.replicaOf)
					role = []string{"--replicaof", h, p}
				}
				args := append([]string{conf,
					"--port", strconv.Itoa(s.port),
					"--bind", host,
					"--replica-announce-ip", host,
					"--dir", sdir,
					"--unixsocket", "",
					"--daemonize", "no",
					"--logfile", ""}, role...)
				cmd := exec.Command(serverBin, args...)
				cmd.Dir = sdir
				cmd.Env = minimalEnv()
				return cmd
			},
		}
		if i > 0 {
			s.replicaOf = rs.servers[0].addr
		}
		if err := startOnFreePort(ctx, host, s.proc, func(port int) {
			s.port, s.addr = port, hostPort(host, port)
			s.proc.pattern = redisTitle(s.addr)
		}, func() error { return localsvc.PingRedis(s.addr, s.proc.pid()) }); err != nil {
			return nil, err
		}
		rs.servers = append(rs.servers, s)
	}

	primary := rs.servers[0]
	for i := range sentinelCount {
		s := &sentinel{}
		sdir := filepath.Join(dir, fmt.Sprintf("sentinel%d", i+1))
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		var port int
		s.proc = &process{
			name: fmt.Sprintf("sentinel%d", i+1),
			log:  filepath.Join(sdir, "sentinel.log"),
			command: func() *exec.Cmd {
				cmd := exec.Command("sh", filepath.Join(deployDir, "redis", "sentinel-start.sh"),
					"--port", strconv.Itoa(port),
					"--bind", host,
					"--dir", sdir,
					"--sentinel", "announce-ip", host)
				cmd.Dir = sdir
				cmd.Env = minimalEnv(
					"SENTINEL_CONF="+filepath.Join(sdir, "sentinel.conf"),
					"REDIS_PRIMARY_HOST="+host,
					"REDIS_PRIMARY_PORT="+strconv.Itoa(primary.port))
				return cmd
			},
		}
		if err := startOnFreePort(ctx, host, s.proc, func(p int) {
			port, s.addr = p, hostPort(host, p)
			s.proc.pattern = redisTitle(s.addr)
			// A Sentinel keeps its rendered configuration; a retry on another
			// port must render it afresh.
			_ = os.Remove(filepath.Join(sdir, "sentinel.conf"))
		}, func() error { return localsvc.PingRedis(s.addr, s.proc.pid()) }); err != nil {
			return nil, err
		}
		rs.sentinels = append(rs.sentinels, s)
	}
	if err := localsvc.Poll(ctx, redisSettledWithin, pollEvery, rs.settled); err != nil {
		return nil, fmt.Errorf("redis: sentinels never settled: %w\n%s", err, rs.sentinelLogs())
	}
	return rs, nil
}

// copyFile copies the file src to dst, replacing dst.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// startOnFreePort picks a free port (setPort applies it), starts p and waits
// for ready, trying again on a fresh port when the port was taken meanwhile.
func startOnFreePort(ctx context.Context, host string, p *process, setPort func(int), ready func() error) error {
	return localsvc.OnFreePort(host, func(port int) error {
		setPort(port)
		return p.startReady(ctx, redisReadyWithin, ready)
	})
}

// redisTitle is the pgrep -f pattern of a Redis process on addr: Redis
// replaces its command line with "redis-server host:port".
func redisTitle(addr string) string {
	return regexp.QuoteMeta(addr) + `( |$)`
}

// sentinelAddrs returns the Sentinels' addresses.
func (rs *redisSet) sentinelAddrs() []string {
	addrs := make([]string, len(rs.sentinels))
	for i, s := range rs.sentinels {
		addrs[i] = s.addr
	}
	return addrs
}

// primary returns the server every running Sentinel names as the primary.
func (rs *redisSet) primary() (*redisServer, error) {
	var running []string
	for _, s := range rs.sentinels {
		if s.proc.pid() != 0 {
			running = append(running, s.addr)
		}
	}
	addr, err := localsvc.AgreedPrimary(running, MasterName)
	if err != nil {
		return nil, err
	}
	for _, s := range rs.servers {
		if s.addr == addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("sentinels name %s, not one of the cluster's servers", addr)
}

// settled reports whether the set can survive the loss of its primary: every
// server runs, both replicas are in sync, and every Sentinel sees the primary
// up, both replicas' links up, and the two other Sentinels.
func (rs *redisSet) settled() error {
	primary, err := rs.primary()
	if err != nil {
		return err
	}
	for _, s := range rs.servers {
		if s.proc.pid() == 0 {
			return fmt.Errorf("redis %s is stopped", s.addr)
		}
	}
	info, err := localsvc.ReplicationInfo(primary.addr)
	if err != nil {
		return err
	}
	if info["role"] != "master" || info["connected_slaves"] != strconv.Itoa(serverCount-1) {
		return fmt.Errorf("primary %s: role %q, %q replicas", primary.addr, info["role"], info["connected_slaves"])
	}
	for i := range serverCount - 1 {
		if r := info[fmt.Sprintf("slave%d", i)]; !strings.Contains(r, "state=online") {
			return fmt.Errorf("primary %s: replica %d: %q", primary.addr, i, r)
		}
	}
	for _, s := range rs.sentinels {
		if err := localsvc.CheckSentinel(s.addr, MasterName, serverCount-1, sentinelCount-1); err != nil {
			return err
		}
	}
	return nil
}

// killPrimary kills the current primary with SIGKILL and returns its address.
func (rs *redisSet) killPrimary() (string, error) {
	p, err := rs.primary()
	if err != nil {
		return "", err
	}
	return p.addr, p.proc.kill()
}

// waitForFailover waits until every running Sentinel names a primary other
// than old and that server says it is one, and returns its address.
func (rs *redisSet) waitForFailover(ctx context.Context, old string) (string, error) {
	var addr string
	err := localsvc.Poll(ctx, failoverWithin, pollEvery, func() error {
		p, err := rs.primary()
		if err != nil {
			return err
		}
		if p.addr == old {
			return fmt.Errorf("sentinels still name %s", old)
		}
		if role, err := localsvc.Role(p.addr); err != nil || role != "master" {
			return fmt.Errorf("new primary %s: role %q, %v", p.addr, role, err)
		}
		addr = p.addr
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("redis: no failover from %s: %w\n%s", old, err, rs.sentinelLogs())
	}
	return addr, nil
}

// restore starts every stopped server as a replica of the current primary
// (as Sentinel would reconfigure it anyway) and waits until the set is
// settled again.
func (rs *redisSet) restore(ctx context.Context) error {
	primary, err := rs.primary()
	if err != nil {
		return err
	}
	for _, s := range rs.servers {
		if s.proc.pid() != 0 {
			continue
		}
		s.replicaOf = primary.addr
		if err := s.start(ctx); err != nil {
			return err
		}
	}
	if err := localsvc.Poll(ctx, redisSettledWithin, pollEvery, rs.settled); err != nil {
		return fmt.Errorf("redis: not settled after restore: %w\n%s", err, rs.sentinelLogs())
	}
	return nil
}

// stopAll stops the Sentinels first (so none starts a failover while the
// servers go), then the replicas and the primary, each with SIGTERM: Redis
// flushes its append-only file, so the sessions survive. It remembers the
// primary so that startAll brings the same one back as primary.
func (rs *redisSet) stopAll() error {
	primary, err := rs.primary()
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range rs.sentinels {
		errs = append(errs, s.proc.stop(syscall.SIGTERM, redisStopWithin))
	}
	for _, s := range rs.servers {
		if s != primary {
			s.replicaOf = primary.addr
			errs = append(errs, s.proc.stop(syscall.SIGTERM, redisStopWithin))
		}
	}
	primary.replicaOf = ""
	errs = append(errs, primary.proc.stop(syscall.SIGTERM, redisStopWithin))
	return errors.Join(errs...)
}

// startAll starts what stopAll stopped: the primary, its replicas, then the
// Sentinels with the configuration they kept; and waits until they settle.
func (rs *redisSet) startAll(ctx context.Context) error {
	for _, s := range rs.servers {
		if s.replicaOf == "" && s.proc.pid() == 0 {
			if err := s.start(ctx); err != nil {
				return err
			}
		}
	}
	for _, s := range rs.servers {
		if s.proc.pid() == 0 {
			if err := s.start(ctx); err != nil {
				return err
			}
		}
	}
	for _, s := range rs.sentinels {
		if s.proc.pid() != 0 {
			continue
		}
		if err := s.proc.start(); err != nil {
			return err
		}
		if err := s.proc.waitReady(ctx, redisReadyWithin, func() error { return localsvc.PingRedis(s.addr, s.proc.pid()) }); err != nil {
			return err
		}
	}
	if err := localsvc.Poll(ctx, redisSettledWithin, pollEvery, rs.settled); err != nil {
		return fmt.Errorf("redis: not settled after start: %w\n%s", err, rs.sentinelLogs())
	}
	return nil
}

// killSubscribers closes every connection of the primary that is in
// subscriber mode (CLIENT KILL TYPE pubsub) and returns the primary's
// address and how many it closed.
func (rs *redisSet) killSubscribers() (string, int, error) {
	p, err := rs.primary()
	if err != nil {
		return "", 0, err
	}
	n, err := doOnce(p.addr, redis.Int, "CLIENT", "KILL", "TYPE", "pubsub")
	return p.addr, n, err
}

// commandCalls returns the primary's address and how many times it has run
// the command name (lower case, as INFO commandstats spells it) since it
// started: 0 for a command it has not run.
func (rs *redisSet) commandCalls(name string) (string, int64, error) {
	p, err := rs.primary()
	if err != nil {
		return "", 0, err
	}
	info, err := doOnce(p.addr, redis.String, "INFO", "commandstats")
	if err != nil {
		return "", 0, err
	}
	// cmdstat_get:calls=12,usec=34,...
	for line := range strings.SplitSeq(info, "\r\n") {
		stats, ok := strings.CutPrefix(line, "cmdstat_"+name+":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(stats, ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return "", 0, fmt.Errorf("redis %s: INFO commandstats: %q", p.addr, line)
		}
		return p.addr, n, nil
	}
	return p.addr, 0, nil
}

// doOnce runs one command on its own short connection to addr and converts
// the reply with conv.
func doOnce[T any](addr string, conv func(any, error) (T, error), cmd string, args ...any) (T, error) {
	var zero T
	conn, err := redis.Dial("tcp", addr,
		redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2*time.Second),
		redis.DialWriteTimeout(2*time.Second))
	if err != nil {
		return zero, fmt.Errorf("redis %s: %w", addr, err)
	}
	defer conn.Close()
	v, err := conv(conn.Do(cmd, args...))
	if err != nil {
		return zero, fmt.Errorf("redis %s: %s: %w", addr, cmd, err)
	}
	return v, nil
}

// start runs the server on its port and waits until it answers.
func (s *redisServer) start(ctx context.Context) error {
	if err := s.proc.start(); err != nil {
		return err
	}
	return s.proc.waitReady(ctx, redisReadyWithin, func() error { return localsvc.PingRedis(s.addr, s.proc.pid()) })
}

// stop stops every Redis process, Sentinels first.
func (rs *redisSet) stop() error {
	var errs []error
	for _, s := range rs.sentinels {
		errs = append(errs, s.proc.stop(syscall.SIGTERM, redisStopWithin))
	}
	for _, s := range rs.servers {
		errs = append(errs, s.proc.stop(syscall.SIGTERM, redisStopWithin))
	}
	return errors.Join(errs...)
}

// processes lists the set's processes.
func (rs *redisSet) processes() []*process {
	var ps []*process
	for _, s := range rs.servers {
		ps = append(ps, s.proc)
	}
	for _, s := range rs.sentinels {
		ps = append(ps, s.proc)
	}
	return ps
}

// sentinelLogs returns the end of every Sentinel's log, for error messages.
func (rs *redisSet) sentinelLogs() string {
	var b strings.Builder
	for _, s := range rs.sentinels {
		b.WriteString(localsvc.LogTail(s.proc.log))
		b.WriteByte('\n')
	}
	return b.String()
}
