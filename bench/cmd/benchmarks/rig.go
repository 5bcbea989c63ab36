package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
)

// proc is a child process the driver started, logging to its own file.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// startProc runs bin with args and env (added to the driver's) in dir,
// with stdout and stderr going to dir/<name>.log.
func startProc(dir, name, bin string, args []string, env map[string]string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// pid is the child's process ID, for its CPU time.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and kills the process if it has not exited in 10 s.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// tail returns the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// waitFor polls ready every 50 ms until it succeeds, the process exits or
// the deadline passes.
func (p *proc) waitFor(ctx context.Context, within time.Duration, what string, ready func() error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before %s: %s", p.name, what, p.tail())
		case <-ctx.Done():
			return fmt.Errorf("%s: no %s within %s (%v): %s", p.name, what, within, err, p.tail())
		case <-tick.C:
		}
	}
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cpuTime returns the user and system CPU time pid has used, from
// /proc/<pid>/stat (clock ticks of 10 ms).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick, nil
}

// cpuTimes sums cpuTime over pids.
func cpuTimes(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		if d, err := cpuTime(pid); err == nil {
			total += d
		}
	}
	return total
}

// redisServer is a redis-server on a free loopback port, keeping nothing on
// disk, as the tests run it.
type redisServer struct {
	*proc
	addr string
}

func startRedis(ctx context.Context, dir, name string) (*redisServer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	rdir := filepath.Join(dir, name)
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return nil, err
	}
	p, err := startProc(rdir, name, "redis-server", []string{
		"--port", port, "--bind", "127.0.0.1", "--unixsocket", "", "--save", "", "--appendonly", "no",
		"--dir", rdir, "--daemonize", "no", "--logfile", "",
	}, nil)
	if err != nil {
		return nil, err
	}
	r := &redisServer{proc: p, addr: addr}
	if err := p.waitFor(ctx, 10*time.Second, "PONG", func() error {
		c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(200*time.Millisecond))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Do("PING")
		return err
	}); err != nil {
		p.stop()
		return nil, err
	}
	return r, nil
}

// hallpassReplica is one `hallpass serve`.
type hallpassReplica struct {
	*proc
	url string
	env map[string]string // what the CLI needs to reach the same database
}

// startHallpass migrates the database in env, then serves on a free port.
func startHallpass(ctx context.Context, bin, dir, name string, env map[string]string) (*hallpassReplica, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env = with(env, map[string]string{
		"HALLPASS_ADDR":        addr,
		"HALLPASS_REPLICA_ID":  name,
		"HALLPASS_DRAIN_DELAY": "0s",
		// Second factors are on by default; a benchmark-only key.
		"HALLPASS_SECRET_KEY": "YmVuY2htYXJrLW9ubHktc2VjcmV0LWtleS0zMi1ieXRlcw==",
	})
	if out, err := runCLI(ctx, bin, env, "", "migrate"); err != nil {
		return nil, fmt.Errorf("%s: migrate: %w\n%s", name, err, out)
	}
	p, err := startProc(dir, name, bin, []string{"serve"}, env)
	if err != nil {
		return nil, err
	}
	h := &hallpassReplica{proc: p, url: "http://" + addr, env: env}
	if err := p.waitFor(ctx, 30*time.Second, "healthy /healthz", func() error { return expectStatus(h.url+"/healthz", http.StatusOK) }); err != nil {
		p.stop()
		return nil, err
	}
	return h, nil
}

// addUser creates a user with the CLI, as an operator would.
func (h *hallpassReplica) addUser(ctx context.Context, bin, name, password string) error {
	if out, err := runCLI(ctx, bin, h.env, password+"\n", "user", "add", name); err != nil {
		return fmt.Errorf("user add %s: %w\n%s", name, err, out)
	}
	return nil
}

// runCLI runs one hallpass command to completion.
func runCLI(ctx context.Context, bin string, env map[string]string, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startBaseline runs the stateless JWT baseline.
func startBaseline(ctx context.Context, bin, dir string) (*hallpassReplica, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := startProc(dir, "jwtbaseline", bin, []string{"-addr", addr, "-replica", "jwt-1"}, nil)
	if err != nil {
		return nil, err
	}
	b := &hallpassReplica{proc: p, url: "http://" + addr}
	if err := p.waitFor(ctx, 10*time.Second, "healthy /healthz", func() error { return expectStatus(b.url+"/healthz", http.StatusOK) }); err != nil {
		p.stop()
		return nil, err
	}
	return b, nil
}

// haproxy runs deploy/haproxy/haproxy.cfg, the configuration compose and
// `make cluster` use, in front of the given replicas.
type haproxy struct {
	*proc
	url      string // the hallpass frontend
	statsURL string // the stats frontend, whose /healthz HAProxy answers itself
}

func startHAProxy(ctx context.Context, repo, dir string, backends [3]string) (*haproxy, error) {
	bind, err := freeAddr()
	if err != nil {
		return nil, err
	}
	stats, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg, err := filepath.Abs(filepath.Join(repo, "deploy", "haproxy", "haproxy.cfg"))
	if err != nil {
		return nil, err
	}
	p, err := startProc(dir, "haproxy", "haproxy", []string{"-f", cfg, "-db"}, map[string]string{
		"HAPROXY_BIND": bind, "HAPROXY_STATS_BIND": stats,
		"HALLPASS_APP1": backends[0], "HALLPASS_APP2": backends[1], "HALLPASS_APP3": backends[2],
	})
	if err != nil {
		return nil, err
	}
	h := &haproxy{proc: p, url: "http://" + bind, statsURL: "http://" + stats}
	if err := p.waitFor(ctx, 30*time.Second, "a replica answering through it", func() error { return expectStatus(h.url+"/healthz", http.StatusOK) }); err != nil {
		p.stop()
		return nil, err
	}
	return h, nil
}

func expectStatus(url string, want int) error {
	c := http.Client{Timeout: time.Second}
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != want {
		return fmt.Errorf("GET %s: %d", url, res.StatusCode)
	}
	return nil
}

// with returns a copy of a with b's entries added.
func with(a, b map[string]string) map[string]string {
	c := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		c[k] = v
	}
	for k, v := range b {
		c[k] = v
	}
	return c
}
