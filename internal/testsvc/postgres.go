package testsvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresStartTimeout bounds how long a fresh server may take to accept
// connections; initdb and start-up take a couple of seconds on a busy machine.
const postgresStartTimeout = 60 * time.Second

// PostgresServer is a throwaway PostgreSQL server started by StartPostgres. It
// trusts every local connection, so it must never hold anything but test data.
type PostgresServer struct {
	// Port is the TCP port the server listens on, on 127.0.0.1.
	Port int

	dir string // temporary directory: data/ and the unix socket
}

// StartPostgres starts a PostgreSQL server on 127.0.0.1 and a free port, in a
// temporary directory, and stops and removes it when t ends. Starting one costs
// a few seconds, so a test needing many databases should start one server in
// its parent test and call NewDatabase in each subtest.
//
// PostgreSQL refuses to run as root, so when the test runs as root the server
// runs as the "postgres" OS user. Durability is switched off (fsync=off): the
// data dies with the test anyway.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	bins, err := postgresBinaries()
	if err != nil {
		unavailable(t, "PostgreSQL: %v", err)
	}
	cred, err := postgresCredential()
	if err != nil {
		unavailable(t, "PostgreSQL: %v", err)
	}

	// Not t.TempDir: its parents are private to the current user, and the
	// server may run as another one.
	dir, err := os.MkdirTemp("", "hallpass-pg-")
	if err != nil {
		t.Fatalf("postgres: make temp dir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("postgres: remove %s: %v", dir, err)
		}
	})
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatalf("postgres: chown %s: %v", dir, err)
		}
	}
	dataDir := filepath.Join(dir, "data")

	initdb := exec.Command(bins.initdb, "-D", dataDir, "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := runAs(initdb, dir, cred); err != nil {
		t.Fatalf("postgres: initdb: %v\n%s", err, out)
	}

	// A port that was free a moment ago may be taken by the time the server
	// binds it; try a few.
	var lastErr error
	for range 3 {
		srv := &PostgresServer{Port: FreePort(t), dir: dir}
		proc, err := srv.start(bins, dataDir, cred)
		if err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(func() {
			if err := proc.stop(bins, dataDir, cred); err != nil {
				t.Errorf("postgres: stop: %v", err)
			}
		})
		return srv
	}
	t.Fatalf("postgres: start: %v", lastErr)
	return nil
}

// URL returns the connection URL of database name on this server.
func (s *PostgresServer) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, name)
}

// NewDatabase creates an empty database with a random name and returns its
// URL. The database goes away with the server.
func (s *PostgresServer) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("postgres: random database name: %v", err)
	}
	name := "test_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatalf("postgres: connect: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("postgres: create database %s: %v", name, err)
	}
	return s.URL(name)
}

// postgresProcess is a running postmaster.
type postgresProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned
	log    string
}

// start runs the server in the foreground (so its early exit is noticed at
// once) and waits until it accepts connections.
func (s *PostgresServer) start(bins pgBinaries, dataDir string, cred *syscall.Credential) (*postgresProcess, error) {
	logPath := filepath.Join(s.dir, fmt.Sprintf("postgres-%d.log", s.Port))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor

	cmd := exec.Command(bins.postgres, "-D", dataDir,
		"-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
	)
	cmd.Dir = s.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bins.postgres, err)
	}
	proc := &postgresProcess{cmd: cmd, exited: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait() // the exit status is of no interest: readiness or the log tell
		close(proc.exited)
	}()

	if err := s.waitReady(proc); err != nil {
		_ = cmd.Process.Kill()
		<-proc.exited
		return nil, fmt.Errorf("%w\n%s", err, readTail(logPath))
	}
	return proc, nil
}

// waitReady polls the server with real connections until one succeeds, the
// server exits, or the deadline passes.
func (s *PostgresServer) waitReady(proc *postgresProcess) error {
	ctx, cancel := context.WithTimeout(context.Background(), postgresStartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attempt, s.URL("postgres"))
		cancelAttempt()
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-proc.exited:
			return fmt.Errorf("server on port %d exited during start-up", s.Port)
		case <-ctx.Done():
			return fmt.Errorf("server on port %d not ready after %s: %w", s.Port, postgresStartTimeout, err)
		case <-tick.C:
		}
	}
}

// stop shuts the server down at once (pg_ctl stop -m immediate), falling back
// to killing it.
func (p *postgresProcess) stop(bins pgBinaries, dataDir string, cred *syscall.Credential) error {
	var errs []error
	stop := exec.Command(bins.pgCtl, "stop", "-D", dataDir, "-m", "immediate", "-w")
	if out, err := runAs(stop, filepath.Dir(dataDir), cred); err != nil {
		errs = append(errs, fmt.Errorf("pg_ctl stop: %w: %s", err, out))
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("kill: %w", err))
		}
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		errs = append(errs, fmt.Errorf("server pid %d still running 30s after stop", p.cmd.Process.Pid))
	}
	return errors.Join(errs...)
}

// pgBinaries are the PostgreSQL programs the tests run.
type pgBinaries struct {
	initdb, postgres, pgCtl string
}

// postgresBinaries finds initdb, postgres and pg_ctl on PATH or in the Debian
// layout /usr/lib/postgresql/<version>/bin, newest version first.
func postgresBinaries() (pgBinaries, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin") // the pattern is valid
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })

	var b pgBinaries
	for _, x := range []struct {
		name string
		dst  *string
	}{{"initdb", &b.initdb}, {"postgres", &b.postgres}, {"pg_ctl", &b.pgCtl}} {
		p, ok := lookBinary(x.name, dirs...)
		if !ok {
			return pgBinaries{}, fmt.Errorf("%s not found on PATH or in /usr/lib/postgresql/*/bin", x.name)
		}
		*x.dst = p
	}
	return b, nil
}

// versionOf extracts the major version from /usr/lib/postgresql/<v>/bin.
func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// postgresCredential says whom the server runs as: nil (the current user)
// unless we are root, which PostgreSQL refuses, then the "postgres" user.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL must not: look up the postgres user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user: gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// runAs runs cmd to completion in dir as cred (nil: the current user) and
// returns its combined output.
func runAs(cmd *exec.Cmd, dir string, cred *syscall.Credential) ([]byte, error) {
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// readTail returns the end of a log file for an error message.
func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return strings.TrimSpace(string(b))
}
