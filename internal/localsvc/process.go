package localsvc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is one run of a service program, started by Start. Its methods
// are safe for concurrent use. A stopped service is started again as a new
// Process.
type Process struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{} // closed once cmd.Wait has returned
}

// Start runs cmd with its output appended to the file at logPath, and reaps
// it in the background (Exited tells when it has ended). Everything else
// about cmd — directory, environment, credentials, Pdeathsig — is the
// caller's.
func Start(cmd *exec.Cmd, logPath string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // how it ended shows in its log; callers watch Exited
		close(p.exited)
	}()
	return p, nil
}

// Pid returns the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Log returns the path of the file the process writes its output to.
func (p *Process) Log() string { return p.log }

// Exited returns a channel closed once the process has exited and been
// reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process, e.g. SIGSTOP to freeze it.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	return nil
}

// Stop sends sig and waits up to within for the process to exit, then kills
// it; having to kill it is reported as an error. Stopping a process that has
// exited already does nothing.
func (p *Process) Stop(sig syscall.Signal, within time.Duration) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(within):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("still running %s after %v, killed", within, sig)
}

// Kill ends the process with SIGKILL, as a crash would, and waits until it
// has exited.
func (p *Process) Kill() error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill: %w", err)
	}
	<-p.exited
	return nil
}

// WaitReady calls check every interval until it succeeds, the process
// exits (an error wrapping ErrExited), within passes or ctx ends. Its errors
// quote the end of the process's log.
func (p *Process) WaitReady(ctx context.Context, within, every time.Duration, check func() error) error {
	if err := poll(ctx, within, every, p.exited, check); err != nil {
		return fmt.Errorf("%w\n%s", err, LogTail(p.log))
	}
	return nil
}
