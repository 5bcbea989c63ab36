// Package localsvc runs Debian's service binaries (redis-server,
// redis-sentinel, PostgreSQL, HAProxy, …) as local processes: it finds the
// programs, starts and stops them, waits with a deadline until they are
// ready, and asks Redis and Sentinel how a replicated set stands.
//
// internal/testsvc builds its test fixtures on it and internal/cluster the
// loopback production topology; each adds its own policy (skipping a test,
// naming a Debian package) on top.
package localsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrNotFound is wrapped by the error for a program that is not installed.
var ErrNotFound = errors.New("not found")

// ErrExited is wrapped by WaitReady's error when the process exited before
// it was ready.
var ErrExited = errors.New("exited")

// LookBinary finds the program name on PATH, else in dirs, else in Debian's
// sbin directories, which are not on a non-root user's PATH. Its error wraps
// ErrNotFound.
func LookBinary(name string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs = slices.Concat(dirs, []string{"/usr/sbin", "/sbin", "/usr/local/sbin"})
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s %w on PATH or in %s", name, ErrNotFound, strings.Join(dirs, ", "))
}

// FreePort returns a TCP port on host that was free a moment ago. Another
// process may take it before the service binds it: callers retry on a fresh
// port when a start fails.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// OnFreePort calls start with a free port on host until it succeeds, three
// times at most: a port that was free a moment ago may be taken by the time
// the service binds it. It returns start's last error.
func OnFreePort(host string, start func(port int) error) error {
	var err error
	for range 3 {
		port, portErr := FreePort(host)
		if portErr != nil {
			return portErr
		}
		if err = start(port); err == nil {
			return nil
		}
	}
	return err
}

// Poll calls check every interval until it succeeds, within passes or ctx
// ends, and then returns its last error.
func Poll(ctx context.Context, within, every time.Duration, check func() error) error {
	return poll(ctx, within, every, nil, check)
}

// poll is Poll that also gives up, with an error wrapping ErrExited, once
// exited is closed (a nil channel never is).
func poll(ctx context.Context, within, every time.Duration, exited <-chan struct{}, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%w during start-up: %v", ErrExited, err)
		case <-ctx.Done():
			return fmt.Errorf("not within %s: %w", within, err)
		case <-tick.C:
		}
	}
}

// LogTail returns the end of a log file, headed by its path, for an error
// message.
func LogTail(path string) string {
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
