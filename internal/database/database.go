// Package database opens Hallpass's SQL database – SQLite (modernc.org/sqlite,
// pure Go, the embedded default) or PostgreSQL (pgx) – from one URL, and
// applies the schema migrations to it.
//
// Stores write their SQL once with ? placeholders and pass it through
// DB.Rebind, so the same query text runs on both dialects, and run each
// statement under BoundQuery, so none waits on a stuck database for ever.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL dialect a DB speaks.
type Dialect string

// The supported dialects.
const (
	// SQLite is modernc.org/sqlite, a single file (or memory) database.
	SQLite Dialect = "sqlite"
	// Postgres is PostgreSQL through pgx.
	Postgres Dialect = "postgres"
)

// ErrUnsupportedURL is returned by Open for a URL that names neither SQLite
// nor PostgreSQL.
var ErrUnsupportedURL = errors.New(`unsupported database URL: want "sqlite:PATH", "sqlite::memory:" or "postgres://…" ("postgresql://…")`)

// sqliteParams configure every SQLite connection: WAL so readers do not block
// the writer; a busy timeout so writers queue instead of failing; foreign
// keys enforced; times written in SQLite's own text format (see
// migrations/sqlite); and BEGIN IMMEDIATE, so a transaction that reads and
// then writes takes the write lock up front and cannot hit an unrecoverable
// SQLITE_BUSY when upgrading.
const sqliteParams = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)" +
	"&_time_format=sqlite&_txlock=immediate"

// DB is an open database and the dialect it speaks.
type DB struct {
	// SQL is the connection pool.
	SQL *sql.DB
	// Dialect says which SQL the database speaks.
	Dialect Dialect
}

// Open opens the database named by rawURL and checks that it answers.
//
// Accepted forms:
//
//	sqlite:PATH                     a file; its folder is created if missing
//	sqlite::memory:                 a private in-memory database (tests)
//	postgres://user:pass@host/db    PostgreSQL (also postgresql://)
func Open(ctx context.Context, rawURL string) (*DB, error) {
	var (
		db  *DB
		err error
	)
	switch {
	case strings.HasPrefix(rawURL, "sqlite:"):
		db, err = openSQLite(strings.TrimPrefix(rawURL, "sqlite:"))
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		db, err = openPostgres(rawURL)
	default:
		err = ErrUnsupportedURL
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", DescribeURL(rawURL), err)
	}
	if err := db.Ping(ctx); err != nil {
		_ = db.Close() // the ping error is the one worth reporting
		return nil, fmt.Errorf("open database %s: %w", DescribeURL(rawURL), err)
	}
	return db, nil
}

func openSQLite(path string) (*DB, error) {
	switch {
	case path == "":
		return nil, fmt.Errorf("%w: sqlite: needs a path", ErrUnsupportedURL)
	case strings.HasPrefix(path, "//"):
		// "sqlite://data/x.db" would silently mean /data/x.db.
		return nil, fmt.Errorf("%w: write sqlite:PATH without //, e.g. sqlite:/var/lib/hallpass/hallpass.db or sqlite:data/hallpass.db",
			ErrUnsupportedURL)
	case strings.ContainsAny(path, "?#"):
		return nil, fmt.Errorf("%w: sqlite path must not contain '?' or '#'", ErrUnsupportedURL)
	}

	memory := path == ":memory:"
	if !memory {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("create folder for sqlite file: %w", err)
		}
	}
	pool, err := sql.Open("sqlite", path+"?"+sqliteParams)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if memory {
		// Every connection to :memory: is a separate, empty database: keep
		// exactly one, forever.
		pool.SetMaxOpenConns(1)
		pool.SetMaxIdleConns(1)
		pool.SetConnMaxLifetime(0)
		pool.SetConnMaxIdleTime(0)
	}
	return &DB{SQL: pool, Dialect: SQLite}, nil
}

func openPostgres(rawURL string) (*DB, error) {
	pool, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &DB{SQL: pool, Dialect: Postgres}, nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.SQL.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", db.Dialect, err)
	}
	return nil
}

// Close closes the connection pool.
func (db *DB) Close() error {
	if err := db.SQL.Close(); err != nil {
		return fmt.Errorf("close %s: %w", db.Dialect, err)
	}
	return nil
}

// Rebind rewrites the ? placeholders of query into the dialect's form: $1, $2…
// for PostgreSQL, unchanged for SQLite. Question marks inside single-quoted
// strings, double-quoted identifiers and comments are left alone.
//
// This is the only piece of sqlx we would need, so it is written here rather
// than imported.
func (db *DB) Rebind(query string) string {
	if db.Dialect != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		case c == '\'' || c == '"':
			// Copy through the closing quote; a doubled quote is an escaped
			// quote and simply reopens the literal on the next turn.
			end := strings.IndexByte(query[i+1:], c)
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+2])
			i += end + 1
			continue
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+1])
			i += end
			continue
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			end := strings.Index(query[i+2:], "*/")
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+4])
			i += end + 3
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// IsUniqueViolation reports whether err is a unique-constraint violation on
// either dialect, so stores can turn it into their own sentinel error.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505" // unique_violation
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		code := sqliteErr.Code()
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// DescribeURL returns rawURL fit for a log line: PostgreSQL passwords (in the
// user info or a password= parameter) are replaced by "xxxxx", and a URL that
// cannot be understood is not echoed at all, since it might hold a secret.
func DescribeURL(rawURL string) string {
	switch {
	case strings.HasPrefix(rawURL, "sqlite:"):
		return rawURL
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return "(unparsable postgres URL)"
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	default:
		return "(unrecognised database URL)"
	}
}
