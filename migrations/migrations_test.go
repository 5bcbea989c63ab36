package migrations_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/testsvc"
	"github.com/hallpass/hallpass/migrations"
)

// column is what both dialects must agree on.
type column struct {
	Table, Name string
	Nullable    bool
}

// TestDialectsDescribeTheSameSchema migrates an SQLite and a PostgreSQL
// database and compares their tables, columns and nullability.
func TestDialectsDescribeTheSameSchema(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	lite := migrated(ctx, t, "sqlite:"+filepath.Join(t.TempDir(), "schema.db"))
	pg := migrated(ctx, t, testsvc.StartPostgres(t).NewDatabase(t))

	liteCols := sqliteColumns(ctx, t, lite)
	pgCols := postgresColumns(ctx, t, pg)
	if len(liteCols) == 0 {
		t.Fatal("no columns found after migrating SQLite")
	}
	if !slices.Equal(liteCols, pgCols) {
		t.Errorf("schemas differ\nsqlite:   %v\npostgres: %v", liteCols, pgCols)
	}
}

// TestDialectsHaveTheSameMigrations checks every migration exists for both
// dialects under the same file name.
func TestDialectsHaveTheSameMigrations(t *testing.T) {
	names := func(open func() (fs.FS, error)) []string {
		fsys, err := open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := fs.Glob(fsys, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	pg, lite := names(migrations.Postgres), names(migrations.SQLite)
	if len(pg) == 0 || !slices.Equal(pg, lite) {
		t.Errorf("migration files differ\npostgres: %v\nsqlite:   %v", pg, lite)
	}
}

func migrated(ctx context.Context, t *testing.T, url string) *database.DB {
	t.Helper()
	db, err := database.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := database.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	return db
}

func sqliteColumns(ctx context.Context, t *testing.T, db *database.DB) []column {
	t.Helper()
	rows, err := db.SQL.QueryContext(ctx, `
		SELECT m.name, c.name, c."notnull" = 0 AND c.pk = 0
		FROM sqlite_master AS m, pragma_table_info(m.name) AS c
		WHERE m.type = 'table'
		ORDER BY m.name, c.name`)
	if err != nil {
		t.Fatal(err)
	}
	return scanColumns(t, rows)
}

func postgresColumns(ctx context.Context, t *testing.T, db *database.DB) []column {
	t.Helper()
	rows, err := db.SQL.QueryContext(ctx, `
		SELECT table_name, column_name, is_nullable = 'YES'
		FROM information_schema.columns
		WHERE table_schema = 'public'
		ORDER BY table_name COLLATE "C", column_name COLLATE "C"`)
	if err != nil {
		t.Fatal(err)
	}
	return scanColumns(t, rows)
}

func scanColumns(t *testing.T, rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}) []column {
	t.Helper()
	defer rows.Close()
	// goose's bookkeeping and SQLite's AUTOINCREMENT table are not our schema.
	ignoredTables := []string{"goose_db_version", "sqlite_sequence"}
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.Table, &c.Name, &c.Nullable); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(ignoredTables, c.Table) {
			cols = append(cols, c)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols
}
