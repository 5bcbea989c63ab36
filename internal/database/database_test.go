package database_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/testsvc"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, url string) *database.DB {
	t.Helper()
	db, err := database.Open(testContext(t), url)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// migrateTwice opens url, migrates twice, and checks the users table is there.
func migrateTwice(t *testing.T, url string, want database.Dialect) {
	t.Helper()
	ctx := testContext(t)
	db := open(t, url)
	if db.Dialect != want {
		t.Fatalf("Dialect = %q, want %q", db.Dialect, want)
	}
	for i := range 2 {
		if err := database.Migrate(ctx, db); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	assertUsersTable(t, db)
}

func assertUsersTable(t *testing.T, db *database.DB) {
	t.Helper()
	var n int
	if err := db.SQL.QueryRowContext(testContext(t), "SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatalf("query users after migrating: %v", err)
	}
	if n != 0 {
		t.Fatalf("users has %d rows after migrating, want 0", n)
	}
}

func TestSQLiteOpenAndMigrateIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "folder", "hallpass.db")
	migrateTwice(t, "sqlite:"+path, database.SQLite)
	// A second Open of the migrated file sees the schema and migrates nothing.
	migrateTwice(t, "sqlite:"+path, database.SQLite)
}

func TestSQLiteMemory(t *testing.T) {
	migrateTwice(t, "sqlite::memory:", database.SQLite)
}

func TestSQLitePragmas(t *testing.T) {
	db := open(t, "sqlite:"+filepath.Join(t.TempDir(), "p.db"))
	ctx := testContext(t)
	for _, tc := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"busy_timeout", "5000"},
		{"foreign_keys", "1"},
	} {
		var got string
		if err := db.SQL.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
		}
	}
}

// TestPostgres shares one server between its subtests.
func TestPostgres(t *testing.T) {
	srv := testsvc.StartPostgres(t)

	t.Run("OpenAndMigrateIsIdempotent", func(t *testing.T) {
		url := srv.NewDatabase(t)
		migrateTwice(t, url, database.Postgres)
		migrateTwice(t, url, database.Postgres)
	})

	t.Run("PostgresqlScheme", func(t *testing.T) {
		url := strings.Replace(srv.NewDatabase(t), "postgres://", "postgresql://", 1)
		migrateTwice(t, url, database.Postgres)
	})

	t.Run("ConcurrentMigrate", func(t *testing.T) {
		url := srv.NewDatabase(t)
		ctx := testContext(t)
		// Each goroutine is a replica with its own pool.
		dbs := make([]*database.DB, 4)
		for i := range dbs {
			dbs[i] = open(t, url)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(dbs))
		for i, db := range dbs {
			wg.Go(func() { errs[i] = database.Migrate(ctx, db) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("replica %d: Migrate: %v", i, err)
			}
		}
		assertUsersTable(t, dbs[0])
		var applied int
		if err := dbs[0].SQL.QueryRowContext(ctx,
			"SELECT count(*) FROM goose_db_version WHERE version_id = 1").Scan(&applied); err != nil {
			t.Fatalf("read goose_db_version: %v", err)
		}
		if applied != 1 {
			t.Errorf("migration 1 recorded %d times, want once", applied)
		}
	})

	t.Run("UnreachableServer", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		port := testsvc.FreePort(t)
		url := "postgres://postgres:s3cret@127.0.0.1:" + strconv.Itoa(port) + "/x?sslmode=disable"
		_, err := database.Open(ctx, url)
		if err == nil {
			t.Fatal("Open of a closed port succeeded")
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the password: %v", err)
		}
	})
}

func TestOpenRejectsBadURLs(t *testing.T) {
	for _, tc := range []struct {
		name, url, wantInMessage string
	}{
		{"empty", "", `"sqlite:PATH"`},
		{"mysql", "mysql://root@localhost/db", `"postgres://…"`},
		{"bare path", "/var/lib/hallpass.db", `"sqlite:PATH"`},
		{"sqlite without path", "sqlite:", "needs a path"},
		{"sqlite with slashes", "sqlite://data/x.db", "without //"},
		{"sqlite with query", "sqlite:x.db?mode=ro", "must not contain"},
		{"postgres keyword form", "host=localhost password=s3cret", `"postgres://…"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := database.Open(testContext(t), tc.url)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded", tc.url)
			}
			if !errors.Is(err, database.ErrUnsupportedURL) {
				t.Errorf("Open(%q) = %v, want ErrUnsupportedURL", tc.url, err)
			}
			if !strings.Contains(err.Error(), tc.wantInMessage) {
				t.Errorf("Open(%q) = %q, want it to mention %s", tc.url, err, tc.wantInMessage)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestDescribeURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sqlite:data/hallpass.db", "sqlite:data/hallpass.db"},
		{"postgres://app:s3cret@db:5432/hallpass?sslmode=require", "postgres://app:xxxxx@db:5432/hallpass?sslmode=require"},
		{"postgresql://app@db/hallpass", "postgresql://app@db/hallpass"},
		{"postgres://app@db/hallpass?password=s3cret&sslmode=disable", "postgres://app@db/hallpass?password=xxxxx&sslmode=disable"},
		{"postgres://app:s3cret@db:bad port/x", "(unparsable postgres URL)"},
		{"host=db password=s3cret", "(unrecognised database URL)"},
	} {
		if got := database.DescribeURL(tc.in); got != tc.want {
			t.Errorf("DescribeURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRebind(t *testing.T) {
	pg := &database.DB{Dialect: database.Postgres}
	lite := &database.DB{Dialect: database.SQLite}
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = $1 AND b = $2"},
		{"UPDATE t SET a = ?, b = '?' WHERE c = ?", "UPDATE t SET a = $1, b = '?' WHERE c = $2"},
		{"SELECT 'it''s ?', ? FROM \"we?rd\"", "SELECT 'it''s ?', $1 FROM \"we?rd\""},
		{"SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{"SELECT /* ? */ ?", "SELECT /* ? */ $1"},
		{"SELECT 'unterminated ?", "SELECT 'unterminated ?"},
		{"x LIKE ? ESCAPE '\\'", "x LIKE $1 ESCAPE '\\'"},
	} {
		if got := pg.Rebind(tc.in); got != tc.want {
			t.Errorf("Postgres Rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := lite.Rebind(tc.in); got != tc.in {
			t.Errorf("SQLite Rebind(%q) = %q, want it unchanged", tc.in, got)
		}
	}
}

func TestBoundQuery(t *testing.T) {
	now := time.Now()
	soon := now.Add(100 * time.Millisecond)
	for _, tc := range []struct {
		name           string
		callerDeadline time.Time // zero: none
		timeout        time.Duration
		want           time.Duration // from now; 0: the caller's deadline, kept
	}{
		{"no deadline is bounded by the timeout", time.Time{}, time.Second, time.Second},
		{"a later deadline is bounded by the timeout", now.Add(time.Hour), time.Second, time.Second},
		{"a sooner deadline is kept", soon, time.Second, 0},
		{"a timeout of zero means the default", time.Time{}, 0, database.DefaultQueryTimeout},
		{"a negative timeout means the default", time.Time{}, -time.Second, database.DefaultQueryTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := context.Background()
			if !tc.callerDeadline.IsZero() {
				var cancel context.CancelFunc
				parent, cancel = context.WithDeadline(parent, tc.callerDeadline)
				defer cancel()
			}
			before := time.Now()
			ctx, cancel := database.BoundQuery(parent, tc.timeout)
			after := time.Now()
			defer cancel()

			got, ok := ctx.Deadline()
			switch {
			case !ok:
				t.Fatal("BoundQuery returned a context without a deadline")
			case tc.want == 0 && !got.Equal(tc.callerDeadline):
				t.Errorf("deadline = %v, want the caller's %v", got, tc.callerDeadline)
			case tc.want != 0 && (got.Before(before.Add(tc.want)) || got.After(after.Add(tc.want))):
				t.Errorf("deadline = %v from now, want %v", got.Sub(before), tc.want)
			}
			cancel()
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Errorf("after cancel, ctx.Err() = %v, want context.Canceled", ctx.Err())
			}
		})
	}
}
