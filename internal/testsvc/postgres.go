package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallpass/hallpass/internal/localsvc"
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
	bins, err := localsvc.FindPostgres()
	if err != nil {
		unavailable(t, "PostgreSQL: %v", err)
	}
	cred, err := localsvc.PostgresCredential()
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
	pg := &localsvc.Postgres{Bins: bins, Dir: dir, Cred: cred}
	if err := pg.InitDB(t.Context()); err != nil {
		t.Fatalf("postgres: %v", err)
	}

	srv := &PostgresServer{dir: dir}
	var proc *localsvc.Process
	err = localsvc.OnFreePort("127.0.0.1", func(port int) error {
		srv.Port = port
		var err error
		proc, err = srv.start(t.Context(), pg)
		return err
	})
	if err != nil {
		t.Fatalf("postgres: start: %v", err)
	}
	t.Cleanup(func() {
		if err := stopPostgres(pg, proc); err != nil {
			t.Errorf("postgres: stop: %v", err)
		}
	})
	return srv
}

// URL returns the connection URL of database name on this server.
func (s *PostgresServer) URL(name string) string {
	return localsvc.PostgresURL("127.0.0.1", s.Port, name)
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

// start runs the server in the foreground (so its early exit is noticed at
// once) and waits until it accepts connections.
func (s *PostgresServer) start(ctx context.Context, pg *localsvc.Postgres) (*localsvc.Process, error) {
	proc, err := localsvc.Start(pg.Command("127.0.0.1", s.Port), filepath.Join(s.dir, fmt.Sprintf("postgres-%d.log", s.Port)))
	if err != nil {
		return nil, err
	}
	err = proc.WaitReady(ctx, postgresStartTimeout, 50*time.Millisecond, func() error {
		return localsvc.PingPostgres(ctx, s.URL("postgres"))
	})
	if err != nil {
		_ = proc.Kill()
		return nil, fmt.Errorf("server on port %d: %w", s.Port, err)
	}
	return proc, nil
}

// stopPostgres shuts the server down at once (pg_ctl stop -m immediate),
// falling back to killing it.
func stopPostgres(pg *localsvc.Postgres, proc *localsvc.Process) error {
	if err := pg.Shutdown(context.Background(), "immediate", 60*time.Second); err != nil {
		return errors.Join(err, proc.Kill())
	}
	// The postmaster has exited; this only reaps it.
	return proc.Stop(syscall.SIGTERM, 30*time.Second)
}
