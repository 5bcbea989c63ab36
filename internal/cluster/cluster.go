// Package cluster starts and stops Hallpass's production topology as local
// processes on loopback addresses: three `hallpass serve` replicas behind
// HAProxy, sessions in a Redis primary and two replicas watched by three
// Sentinels, users in PostgreSQL (or a shared SQLite file). It uses the same
// configuration files as docker-compose.yml (deploy/haproxy, deploy/redis)
// and Debian's redis-server, redis-sentinel, haproxy and PostgreSQL.
//
// It serves `make cluster` (through cmd/hallpass-cluster) and the cluster
// test suite, which crashes and restarts its parts under load.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hallpass/hallpass/internal/localsvc"
)

// ErrNotInstalled is wrapped by Start's error when a program the cluster
// runs is missing.
var ErrNotInstalled = errors.New("not installed")

// Database backends for Options.Database.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// Replicas is how many `hallpass serve` replicas run (HALLPASS_APP1..3 in
// deploy/haproxy/haproxy.cfg).
const Replicas = 3

// DefaultDrainDelay is the replicas' HALLPASS_DRAIN_DELAY: longer than
// HAProxy needs to take a draining replica out (fall 2 × inter 2 s in
// deploy/haproxy/haproxy.cfg), so a rolling restart drops no request.
const DefaultDrainDelay = 5 * time.Second

// haproxyRoundWithin bounds how long HAProxy takes to mark a replica up or
// down: rise/fall 2 checks every 2 s, with room for a busy machine.
const haproxyRoundWithin = 30 * time.Second

// Options configure Start.
type Options struct {
	// Hallpass is the path of the hallpass binary the replicas run. Required.
	Hallpass string
	// Dir is the cluster's working directory (data, configurations, logs).
	// It must be empty or absent. Empty: a new temporary directory, removed
	// by Stop.
	Dir string
	// DeployDir holds haproxy/ and redis/ as in this repository. Empty: the
	// deploy directory of the module the working directory is in.
	DeployDir string
	// Host is the loopback address every service listens on. Default
	// 127.0.0.1.
	Host string
	// Addr is HAProxy's listen address, the cluster's URL. Empty: Host and a
	// free port.
	Addr string
	// Database is Postgres (the default) or SQLite.
	Database string
	// DrainDelay is the replicas' HALLPASS_DRAIN_DELAY; zero means
	// DefaultDrainDelay.
	DrainDelay time.Duration
	// Log, if set, receives a line as each part starts.
	Log io.Writer
}

// Cluster is a running loopback cluster. Its methods are safe for
// concurrent use only as far as the scenarios need: one goroutine changes
// the cluster while others send requests to it.
type Cluster struct {
	opts      Options
	dir       string
	removeDir bool
	bin       string // link to the hallpass binary inside dir
	env       []string
	pg        *postgres
	redis     *redisSet
	replicas  []*replica
	lb        *haproxy
	http      *http.Client
	mu        sync.Mutex // serialises changes
	stopOnce  sync.Once
	stopErr   error
}

// Start starts the whole cluster and returns once HAProxy reports every
// replica up. On error, whatever was started is stopped again.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Hallpass == "" {
		return nil, errors.New("cluster: Options.Hallpass is required")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Database == "" {
		opts.Database = Postgres
	}
	if opts.Database != Postgres && opts.Database != SQLite {
		return nil, fmt.Errorf("cluster: database %q: want %s or %s", opts.Database, Postgres, SQLite)
	}
	if opts.DrainDelay == 0 {
		opts.DrainDelay = DefaultDrainDelay
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.DeployDir == "" {
		if opts.DeployDir, err = findDeployDir(); err != nil {
			return nil, err
		}
	}
	bin, err := filepath.Abs(opts.Hallpass)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("cluster: hallpass binary: %w", err)
	}

	c := &Cluster{opts: opts, http: &http.Client{Timeout: 3 * time.Second}}
	if opts.Dir == "" {
		if c.dir, err = os.MkdirTemp("", "hallpass-cluster-"); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		c.removeDir = true
	} else {
		c.dir = opts.Dir
		if entries, _ := os.ReadDir(c.dir); len(entries) > 0 {
			return nil, fmt.Errorf("cluster: %s is not empty", c.dir)
		}
	}
	// PostgreSQL may run as another user, who must reach its directory.
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := os.Chmod(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
		}
	}()

	// The replicas run through a link in the cluster's directory, so their
	// command lines say which cluster they belong to.
	c.bin = filepath.Join(c.dir, "hallpass")
	if err := os.Symlink(bin, c.bin); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}

	var dbURL string
	switch opts.Database {
	case Postgres:
		c.logf("starting PostgreSQL")
		if c.pg, err = startPostgres(ctx, opts.Host, filepath.Join(c.dir, "postgres")); err != nil {
			return nil, err
		}
		dbURL = c.pg.url(databaseName)
	case SQLite:
		dbURL = "sqlite:" + filepath.Join(c.dir, "hallpass.db")
	}

	c.logf("starting Redis: primary, 2 replicas, 3 Sentinels")
	if c.redis, err = startRedis(ctx, opts.Host, c.dir, opts.DeployDir); err != nil {
		return nil, err
	}

	c.env = []string{
		"HALLPASS_DATABASE_URL=" + dbURL,
		"HALLPASS_REDIS_SENTINELS=" + strings.Join(c.redis.sentinelAddrs(), ","),
		"HALLPASS_REDIS_MASTER=" + MasterName,
		"HALLPASS_REDIS_WAIT_REPLICAS=1",
		"HALLPASS_TRUSTED_PROXIES=127.0.0.0/8",
		"HALLPASS_DRAIN_DELAY=" + opts.DrainDelay.String(),
	}
	// Migrate once up front rather than have three replicas race for the
	// lock (which works, but a SQLite file is happier with one writer).
	if out, err := c.Hallpass(ctx, "", "migrate"); err != nil {
		return nil, fmt.Errorf("cluster: hallpass migrate: %w\n%s", err, out)
	}

	var apps []string
	for i := range Replicas {
		port, err := localsvc.FreePort(opts.Host)
		if err != nil {
			return nil, err
		}
		r := newReplica(c.dir, c.bin, fmt.Sprintf("app%d", i+1), hostPort(opts.Host, port), c.env)
		c.replicas = append(c.replicas, r)
		apps = append(apps, r.addr)
	}
	c.logf("starting 3 hallpass replicas")
	for _, r := range c.replicas {
		if err := r.start(ctx, c.http); err != nil {
			return nil, err
		}
	}

	addr := opts.Addr
	if addr == "" {
		port, err := localsvc.FreePort(opts.Host)
		if err != nil {
			return nil, err
		}
		addr = hostPort(opts.Host, port)
	}
	statsPort, err := localsvc.FreePort(opts.Host)
	if err != nil {
		return nil, err
	}
	if c.lb, err = newHAProxy(c.dir, opts.DeployDir, addr, hostPort(opts.Host, statsPort), apps); err != nil {
		return nil, err
	}
	c.logf("starting HAProxy on %s", addr)
	if err := c.lb.start(ctx); err != nil {
		return nil, err
	}
	if err := c.WaitHealthy(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// URL is the load balancer's address, e.g. http://127.0.0.1:8090.
func (c *Cluster) URL() string { return "http://" + c.lb.addr }

// StatsURL is HAProxy's stats page.
func (c *Cluster) StatsURL() string { return "http://" + c.lb.statsAddr + "/" }

// Dir is the cluster's working directory, where every part logs.
func (c *Cluster) Dir() string { return c.dir }

// Env is the environment (NAME=value) under which the hallpass command
// reaches the cluster's database and session store, e.g. for
// `hallpass user add`.
func (c *Cluster) Env() []string { return append([]string(nil), c.env...) }

// ReplicaID returns the ID (X-Served-By) of replica i, from 0.
func (c *Cluster) ReplicaID(i int) string { return c.replicas[i].id }

// ReplicaURL returns replica i's own address, bypassing HAProxy.
func (c *Cluster) ReplicaURL(i int) string { return c.replicas[i].url() }

// ReplicaPID returns replica i's process ID, or 0 while it is down.
func (c *Cluster) ReplicaPID(i int) int { return c.replicas[i].proc.pid() }

// Hallpass runs one hallpass command (e.g. "user", "add", "alice") against
// the cluster's database and session store, with stdin as its input, and
// returns its output.
func (c *Cluster) Hallpass(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = minimalEnv(c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// AddUser creates a user with password (an administrator when admin).
func (c *Cluster) AddUser(ctx context.Context, name, password string, admin bool) error {
	args := []string{"user", "add", name}
	if admin {
		args = append(args, "--admin")
	}
	if out, err := c.Hallpass(ctx, password+"\n", args...); err != nil {
		return fmt.Errorf("cluster: hallpass user add %s: %w\n%s", name, err, out)
	}
	return nil
}

// WaitHealthy waits until the session store can survive losing its primary
// (every server up, both replicas in sync, Sentinels agreed) and HAProxy reports
// every replica up.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	if err := localsvc.Poll(ctx, redisSettledWithin, pollEvery, c.redis.settled); err != nil {
		return fmt.Errorf("cluster: session store: %w", err)
	}
	for _, r := range c.replicas {
		if r.proc.pid() == 0 {
			return fmt.Errorf("cluster: %s is down", r.id)
		}
		if err := c.lb.waitStatus(ctx, r.id, "UP", haproxyRoundWithin); err != nil {
			return fmt.Errorf("cluster: %w\n%s", err, localsvc.LogTail(r.proc.log))
		}
	}
	return nil
}

// KillReplica kills replica i with SIGKILL, as a crash would. It stays down
// until StartReplica.
func (c *Cluster) KillReplica(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replicas[i].proc.kill()
}

// StartReplica starts replica i again on its address and waits until
// HAProxy sends it traffic.
func (c *Cluster) StartReplica(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.replicas[i]
	if err := r.start(ctx, c.http); err != nil {
		return err
	}
	return c.lb.waitStatus(ctx, r.id, "UP", haproxyRoundWithin)
}

// RestartReplica stops replica i the way an orchestrator does (SIGTERM: it
// reports not-ready, HAProxy takes it out, it finishes in-flight requests
// and exits), starts it again and waits until HAProxy sends it traffic.
func (c *Cluster) RestartReplica(ctx context.Context, i int) error {
	c.mu.Lock()
	r := c.replicas[i]
	err := r.terminate(c.opts.DrainDelay)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.StartReplica(ctx, i)
}

// RedisPrimary returns the address the Sentinels give for the primary.
func (c *Cluster) RedisPrimary() (string, error) {
	p, err := c.redis.primary()
	if err != nil {
		return "", err
	}
	return p.addr, nil
}

// KillRedisPrimary kills the Redis primary with SIGKILL and returns its
// address. The Sentinels then promote a replica and have the other follow it
// (WaitForFailover); the killed server stays down until RestoreRedis.
func (c *Cluster) KillRedisPrimary() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redis.killPrimary()
}

// WaitForFailover waits until the Sentinels agree on a primary other than
// old and it has taken the role; it returns the new primary's address.
func (c *Cluster) WaitForFailover(ctx context.Context, old string) (string, error) {
	return c.redis.waitForFailover(ctx, old)
}

// RestoreRedis starts any stopped Redis server as a replica of the current
// primary and waits until the set is settled again.
func (c *Cluster) RestoreRedis(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redis.restore(ctx)
}

// KillRedisSubscribers closes every subscribed connection of the Redis
// primary (CLIENT KILL TYPE pubsub), as Redis itself does to a subscriber
// that falls behind (client-output-buffer-limit pubsub) and a restarted
// proxy would: each replica's session-cache invalidation channel, and the
// Sentinels' hello channels. Their owners reconnect by themselves. It
// returns the primary's address and how many connections it closed.
func (c *Cluster) KillRedisSubscribers() (primary string, killed int, err error) {
	return c.redis.killSubscribers()
}

// RedisCommandCalls returns the Redis primary's address and how many times
// it has run the command name ("get": INFO commandstats names, lower case)
// since it started, scripts' calls included. Compare two readings only when
// they name the same primary.
func (c *Cluster) RedisCommandCalls(name string) (primary string, calls int64, err error) {
	return c.redis.commandCalls(name)
}

// StopRedis stops the whole session store, Sentinels included, gracefully
// (the sessions are on disk when it returns).
func (c *Cluster) StopRedis() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redis.stopAll()
}

// StartRedis brings back what StopRedis stopped, the same server as primary,
// and waits until the set is settled.
func (c *Cluster) StartRedis(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redis.startAll(ctx)
}

// Process is one process of a running cluster.
type Process struct {
	// Name says which part it is: postgres, redis1, sentinel2, app3, haproxy.
	Name string `json:"name"`
	// PID is its process ID.
	PID int `json:"pid"`
	// Pattern is an extended regular expression `pgrep -f` finds it by
	// (Redis rewrites its command line, so this is not always the program's
	// arguments).
	Pattern string `json:"pattern"`
}

// Processes lists the cluster's running processes.
func (c *Cluster) Processes() []Process {
	var ps []Process
	for _, p := range c.processes() {
		if pid := p.pid(); pid != 0 {
			ps = append(ps, Process{Name: p.name, PID: pid, Pattern: p.pattern})
		}
	}
	return ps
}

func (c *Cluster) processes() []*process {
	var ps []*process
	if c.pg != nil {
		ps = append(ps, c.pg.proc)
	}
	if c.redis != nil {
		ps = append(ps, c.redis.processes()...)
	}
	for _, r := range c.replicas {
		ps = append(ps, r.proc)
	}
	if c.lb != nil {
		ps = append(ps, c.lb.proc)
	}
	return ps
}

// Stop stops everything, front to back: HAProxy, the replicas (in parallel,
// each draining), Redis, the database; and removes the working directory if
// Start created it. Calling it again returns the first result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		var errs []error
		if c.lb != nil {
			errs = append(errs, c.lb.stop())
		}
		errCh := make(chan error, len(c.replicas))
		for _, r := range c.replicas {
			go func() { errCh <- r.terminate(c.opts.DrainDelay) }()
		}
		for range c.replicas {
			errs = append(errs, <-errCh)
		}
		if c.redis != nil {
			errs = append(errs, c.redis.stop())
		}
		if c.pg != nil {
			errs = append(errs, c.pg.stop())
		}
		if c.removeDir {
			errs = append(errs, os.RemoveAll(c.dir))
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.opts.Log, "cluster: "+format+"\n", args...)
}

// lookBinary finds a program on PATH or in Debian's sbin directories (not
// on a non-root PATH); pkg names the Debian package for the error.
func lookBinary(name, pkg string) (string, error) {
	p, err := localsvc.LookBinary(name)
	if err != nil {
		return "", notInstalled(err, pkg)
	}
	return p, nil
}

// notInstalled turns a missing program's error into one wrapping
// ErrNotInstalled that names the Debian package to install.
func notInstalled(err error, pkg string) error {
	return fmt.Errorf("cluster: %w (%w: Debian package %s; `make test-deps` installs it)", err, ErrNotInstalled, pkg)
}

// findDeployDir walks up from the working directory to the module root and
// returns its deploy directory.
func findDeployDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			deploy := filepath.Join(dir, "deploy")
			if _, err := os.Stat(filepath.Join(deploy, "haproxy", "haproxy.cfg")); err != nil {
				return "", fmt.Errorf("cluster: no deploy/haproxy/haproxy.cfg in %s", dir)
			}
			return deploy, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cluster: not inside the hallpass module: set Options.DeployDir")
		}
		dir = parent
	}
}

// alive reports whether a process with this ID exists (and may be
// signalled by us).
func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}
