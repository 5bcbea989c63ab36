package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallpass/hallpass/internal/localsvc"
)

// postgresReadyWithin bounds initdb plus the first start on a busy machine.
const postgresReadyWithin = 60 * time.Second

// databaseName is the database the replicas share.
const databaseName = "hallpass"

// postgres is the cluster's PostgreSQL server. It trusts every local
// connection and runs without fsync: it holds a throwaway cluster's users,
// never real data.
type postgres struct {
	host   string
	port   int
	server *localsvc.Postgres
	proc   *process
}

// startPostgres initialises a data directory under dir and starts PostgreSQL
// on host and a free port, with an empty database named databaseName.
func startPostgres(ctx context.Context, host, dir string) (*postgres, error) {
	bins, err := localsvc.FindPostgres()
	if err != nil {
		return nil, notInstalled(err, "postgresql")
	}
	cred, err := localsvc.PostgresCredential()
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	server := &localsvc.Postgres{Bins: bins, Dir: dir, Cred: cred, Env: minimalEnv()}
	pg := &postgres{host: host, server: server}
	if err := server.InitDB(ctx); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}

	pg.proc = &process{
		name:    "postgres",
		log:     filepath.Join(dir, "postgres.log"),
		pattern: regexp.QuoteMeta(server.DataDir()),
		command: func() *exec.Cmd { return server.Command(host, pg.port) },
	}
	err = localsvc.OnFreePort(host, func(port int) error {
		pg.port = port
		return pg.proc.startReady(ctx, postgresReadyWithin, func() error {
			return localsvc.PingPostgres(ctx, pg.url("postgres"))
		})
	})
	if err != nil {
		return nil, err
	}

	conn, err := pgx.Connect(ctx, pg.url("postgres"))
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{databaseName}.Sanitize()); err != nil {
		return nil, fmt.Errorf("postgres: create database: %w", err)
	}
	return pg, nil
}

// url returns the connection URL of database name.
func (pg *postgres) url(name string) string {
	return localsvc.PostgresURL(pg.host, pg.port, name)
}

// stop shuts the server down (fast mode: sessions are disconnected, nothing
// is lost) and waits for it, killing it if pg_ctl fails.
func (pg *postgres) stop() error {
	if pg.proc.pid() == 0 {
		return nil
	}
	if err := pg.server.Shutdown(context.Background(), "fast", 30*time.Second); err != nil {
		_ = pg.proc.kill()
		return fmt.Errorf("postgres: %w", err)
	}
	// The postmaster has exited; this only reaps it.
	return pg.proc.stop(syscall.SIGTERM, 10*time.Second)
}
