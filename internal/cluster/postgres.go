package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresReadyWithin bounds initdb plus the first start on a busy machine.
const postgresReadyWithin = 60 * time.Second

// databaseName is the database the replicas share.
const databaseName = "hallpass"

// postgres is the cluster's PostgreSQL server. It trusts every local
// connection and runs without fsync: it holds a throwaway cluster's users,
// never real data.
type postgres struct {
	host, dir, dataDir string
	port               int
	pgCtl              string
	cred               *syscall.Credential // nil: run as ourselves
	proc               *process
}

// startPostgres initialises a data directory under dir and starts PostgreSQL
// on host and a free port, with an empty database named databaseName.
func startPostgres(ctx context.Context, host, dir string) (*postgres, error) {
	bin, err := postgresBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	pg := &postgres{host: host, dir: dir, dataDir: filepath.Join(dir, "data"), pgCtl: bin.pgCtl, cred: cred}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	initdb := exec.CommandContext(ctx, bin.initdb, "-D", pg.dataDir, "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := pg.runAs(initdb); err != nil {
		return nil, fmt.Errorf("postgres: initdb: %w\n%s", err, out)
	}

	for attempt := 0; ; attempt++ {
		if pg.port, err = freePort(host); err != nil {
			return nil, err
		}
		pg.proc = &process{
			name:    "postgres",
			log:     filepath.Join(dir, "postgres.log"),
			pattern: regexp.QuoteMeta(pg.dataDir),
			command: func() *exec.Cmd {
				cmd := exec.Command(bin.postgres, "-D", pg.dataDir,
					"-p", strconv.Itoa(pg.port),
					"-c", "listen_addresses="+host,
					"-c", "unix_socket_directories="+dir,
					"-c", "fsync=off",
					"-c", "synchronous_commit=off",
					"-c", "full_page_writes=off",
					"-c", "max_connections=200")
				cmd.Dir = dir
				cmd.Env = minimalEnv()
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
				return cmd
			},
		}
		if err = pg.proc.start(); err != nil {
			return nil, err
		}
		err = pg.proc.waitReady(ctx, postgresReadyWithin, func() error { return pg.ping(ctx) })
		if err == nil {
			break
		}
		_ = pg.proc.kill()
		if attempt == 2 {
			return nil, err
		}
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
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", hostPort(pg.host, pg.port), name)
}

func (pg *postgres) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.url("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// stop shuts the server down (fast mode: sessions are disconnected, nothing
// is lost) and waits for it, killing it if pg_ctl fails.
func (pg *postgres) stop() error {
	if pg.proc.pid() == 0 {
		return nil
	}
	stop := exec.Command(pg.pgCtl, "stop", "-D", pg.dataDir, "-m", "fast", "-w", "-t", "30")
	out, err := pg.runAs(stop)
	if err != nil {
		_ = pg.proc.kill()
		return fmt.Errorf("postgres: pg_ctl stop: %w\n%s", err, out)
	}
	// The postmaster has exited; this only reaps it.
	return pg.proc.stop(syscall.SIGTERM, 10*time.Second)
}

// runAs runs cmd to completion in the server's directory as the server's
// user, and returns its output.
func (pg *postgres) runAs(cmd *exec.Cmd) ([]byte, error) {
	cmd.Dir = pg.dir
	cmd.Env = minimalEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// pgBinaries are the PostgreSQL programs the cluster runs.
type pgBinaries struct {
	initdb, postgres, pgCtl string
}

// postgresBinaries finds initdb, postgres and pg_ctl on PATH or in Debian's
// /usr/lib/postgresql/<version>/bin, newest version first.
func postgresBinaries() (pgBinaries, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin") // the pattern is valid
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	var b pgBinaries
	for _, x := range []struct {
		name string
		dst  *string
	}{{"initdb", &b.initdb}, {"postgres", &b.postgres}, {"pg_ctl", &b.pgCtl}} {
		p, err := lookBinary(x.name, "postgresql", dirs...)
		if err != nil {
			return pgBinaries{}, err
		}
		*x.dst = p
	}
	return b, nil
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// postgresCredential says whom the server runs as: ourselves, unless we are
// root, which PostgreSQL refuses; then the "postgres" user.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("postgres: running as root, and PostgreSQL must not: %w", err)
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
