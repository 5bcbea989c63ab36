package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hallpass/hallpass/internal/localsvc"
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

	mu  sync.Mutex
	run *localsvc.Process // nil while stopped
}

// start runs the process. The child gets SIGKILL if whoever started it dies
// (Pdeathsig), so a crashed test or supervisor leaves no stray servers.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run != nil && p.run.Running() {
		return fmt.Errorf("%s: already running as pid %d", p.name, p.run.Pid())
	}
	if p.prepare != nil {
		if err := p.prepare(); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	cmd := p.command()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	run, err := localsvc.Start(cmd, p.log)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	p.run = run
	return nil
}

// pid returns the running process's ID, or 0 when it is stopped.
func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil || !p.run.Running() {
		return 0
	}
	return p.run.Pid()
}

// stop sends sig and waits up to within for the process to exit, then kills
// it. Having to kill it is reported as an error. Stopping a stopped process
// does nothing.
func (p *process) stop(sig syscall.Signal, within time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil {
		return nil
	}
	run := p.run
	p.run = nil
	if err := run.Stop(sig, within); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return nil
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *process) kill() error {
	return p.stop(syscall.SIGKILL, time.Minute)
}

// waitReady polls check until it succeeds, the process exits, or within
// passes; the last two are errors quoting the end of the log.
func (p *process) waitReady(ctx context.Context, within time.Duration, check func() error) error {
	p.mu.Lock()
	run := p.run
	p.mu.Unlock()
	if run == nil {
		return fmt.Errorf("%s: not running", p.name)
	}
	if err := run.WaitReady(ctx, within, pollEvery, check); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return nil
}

// startReady starts the process and waits until check succeeds; a process
// that does not become ready is killed.
func (p *process) startReady(ctx context.Context, within time.Duration, check func() error) error {
	if err := p.start(); err != nil {
		return err
	}
	if err := p.waitReady(ctx, within, check); err != nil {
		_ = p.kill()
		return err
	}
	return nil
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
