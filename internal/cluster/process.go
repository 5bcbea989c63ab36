package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pollEvery is how often readiness and state checks are repeated.
const pollEvery = 50 * time.Millisecond

// process is one service the cluster runs. Each start builds a fresh command
// (a Redis server's role can change between runs), so a process can be
// killed and started again any number of times. Its output is appended to one
// log file across runs.
type process struct {
	name    string
	log     string
	pattern string       // a regexp `pgrep -f` matches this process by (see Process)
	prepare func() error // if set, runs before each start
	command func() *exec.Cmd

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil while stopped
	exited chan struct{} // closed once cmd has been waited for
}

// start runs the process. The child gets SIGKILL if whoever started it dies
// (Pdeathsig), so a crashed test or supervisor leaves no stray servers.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			return fmt.Errorf("%s: already running as pid %d", p.name, p.cmd.Process.Pid)
		}
	}
	if p.prepare != nil {
		if err := p.prepare(); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", p.name, err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := p.command()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: run %s: %w", p.name, cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // how it ended shows in its log; callers watch exited
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

// pid returns the running process's ID, or 0 when it is stopped.
func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	select {
	case <-p.exited:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// done returns a channel closed when the current run exits (closed already
// when the process is stopped).
func (p *process) done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.exited
}

// stop sends sig and waits up to within for the process to exit, then kills
// it. Having to kill it is reported as an error. Stopping a stopped process
// does nothing.
func (p *process) stop(sig syscall.Signal, within time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(within):
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("%s: still running %s after %v, killed", p.name, within, sig)
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *process) kill() error {
	return p.stop(syscall.SIGKILL, time.Minute)
}

// waitReady polls check until it succeeds, the process exits, or within
// passes; the last two are errors quoting the end of the log.
func (p *process) waitReady(ctx context.Context, within time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	exited := p.done()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited during start-up: %v\n%s", p.name, err, logTail(p.log))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w\n%s", p.name, within, err, logTail(p.log))
		case <-tick.C:
		}
	}
}

// poll calls check until it succeeds or within passes, and then returns its
// last error.
func poll(ctx context.Context, within time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %s: %w", within, err)
		case <-tick.C:
		}
	}
}

// logTail returns the end of a log file for an error message.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const keep = 3000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return "--- " + path + ":\n" + strings.TrimSpace(string(b))
}

// freePort returns a TCP port on host that was free a moment ago. Another
// process may take it before the service binds it: callers retry on a fresh
// port when a start fails.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// hostPort joins host and port.
func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// minimalEnv is the environment every child starts from: nothing of the
// caller's (a stray HALLPASS_* variable must not change a replica), only what
// programs need to run.
func minimalEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LANG=C.UTF-8"}
	if env[0] == "PATH=" {
		env[0] = "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
	}
	return append(env, extra...)
}
