package localsvc

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinaries are the PostgreSQL programs a local server needs.
type PostgresBinaries struct {
	InitDB, Postgres, PGCtl string
}

// FindPostgres finds initdb, postgres and pg_ctl on PATH or in Debian's
// /usr/lib/postgresql/<version>/bin, newest version first. Its error wraps
// ErrNotFound.
func FindPostgres() (PostgresBinaries, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin") // the pattern is valid
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	var b PostgresBinaries
	for _, x := range []struct {
		name string
		dst  *string
	}{{"initdb", &b.InitDB}, {"postgres", &b.Postgres}, {"pg_ctl", &b.PGCtl}} {
		p, err := LookBinary(x.name, dirs...)
		if err != nil {
			return PostgresBinaries{}, fmt.Errorf("%s %w on PATH or in /usr/lib/postgresql/*/bin", x.name, ErrNotFound)
		}
		*x.dst = p
	}
	return b, nil
}

// pgVersion extracts the major version from /usr/lib/postgresql/<v>/bin.
func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// PostgresCredential says whom PostgreSQL runs as: nil (the current user)
// unless we are root, which PostgreSQL refuses; then the "postgres" user.
func PostgresCredential() (*syscall.Credential, error) {
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

// Postgres is a throwaway PostgreSQL server kept in one directory. It trusts
// every local connection and runs without durability (fsync=off): fit for
// test data and a loopback cluster, never for anything worth keeping.
type Postgres struct {
	// Bins are the programs, from FindPostgres.
	Bins PostgresBinaries
	// Dir holds the data directory (DataDir) and the server's unix socket.
	Dir string
	// Cred is whom the programs run as (PostgresCredential); nil: the
	// current user.
	Cred *syscall.Credential
	// Env is the programs' environment; nil: this process's.
	Env []string
}

// DataDir returns the server's data directory, Dir/data.
func (pg *Postgres) DataDir() string { return filepath.Join(pg.Dir, "data") }

// InitDB creates Dir if need be, hands it to the server's user, and creates
// the data directory in it: superuser postgres, trust authentication, UTF-8,
// C locale.
func (pg *Postgres) InitDB(ctx context.Context) error {
	if err := os.MkdirAll(pg.Dir, 0o755); err != nil {
		return err
	}
	if pg.Cred != nil {
		if err := os.Chown(pg.Dir, int(pg.Cred.Uid), int(pg.Cred.Gid)); err != nil {
			return err
		}
	}
	initdb := exec.CommandContext(ctx, pg.Bins.InitDB, "-D", pg.DataDir(), "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := pg.run(initdb); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// Command returns the command that runs the server on host:port in the
// foreground, so that its exit is noticed at once; Start runs it.
func (pg *Postgres) Command(host string, port int) *exec.Cmd {
	cmd := exec.Command(pg.Bins.Postgres, "-D", pg.DataDir(),
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses="+host,
		"-c", "unix_socket_directories="+pg.Dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Dir = pg.Dir
	cmd.Env = pg.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.Cred}
	return cmd
}

// Shutdown stops the server with pg_ctl stop in mode ("fast" disconnects
// sessions and loses nothing; "immediate" is a crash) and waits up to within
// until it has exited.
func (pg *Postgres) Shutdown(ctx context.Context, mode string, within time.Duration) error {
	stop := exec.CommandContext(ctx, pg.Bins.PGCtl, "stop", "-D", pg.DataDir(), "-m", mode,
		"-w", "-t", strconv.Itoa(int(within.Seconds())))
	if out, err := pg.run(stop); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// run runs cmd to completion in Dir as the server's user, and returns its
// combined output.
func (pg *Postgres) run(cmd *exec.Cmd) ([]byte, error) {
	cmd.Dir = pg.Dir
	cmd.Env = pg.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.Cred}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// PostgresURL returns the URL of database name on host:port, as the
// postgres superuser.
func PostgresURL(host string, port int, name string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", net.JoinHostPort(host, strconv.Itoa(port)), name)
}

// PingPostgres opens one connection to url, giving up after two seconds.
func PingPostgres(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}
