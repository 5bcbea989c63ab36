package database

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/hallpass/hallpass/migrations"
)

// Migrate brings db's schema up to date with the embedded migrations. It is
// safe to run from several replicas starting at once.
//
// On PostgreSQL the replicas queue on a session-level advisory lock (goose's
// PostgreSQL session locker), retried every second for up to five minutes, so
// exactly one applies each migration and the others then find nothing to do.
//
// SQLite has no advisory locks, and none is taken: an SQLite database belongs
// to a single Hallpass instance, and SQLite's file lock already serialises the
// transaction each migration runs in. (Two processes migrating one fresh file
// at the same instant could see the second fail with "table already exists";
// it succeeds when restarted.)
func Migrate(ctx context.Context, db *DB) error {
	provider, err := newProvider(db)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", db.Dialect, err)
	}
	// provider.Close would close db.SQL, which belongs to the caller.
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", db.Dialect, err)
	}
	return nil
}

func newProvider(db *DB) (*goose.Provider, error) {
	opts := []goose.ProviderOption{
		// Hallpass has SQL migrations only; ignore goose's global registry of
		// Go migrations so nothing outside this package can inject one.
		goose.WithDisableGlobalRegistry(true),
	}
	var (
		dialect goose.Dialect
		fsys    fs.FS
		err     error
	)
	switch db.Dialect {
	case Postgres:
		dialect = goose.DialectPostgres
		fsys, err = migrations.Postgres()
		if err != nil {
			return nil, err
		}
		// The default probe retries every 5 s; replicas starting together
		// should not wait that long for a migration that takes milliseconds.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("session locker: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	case SQLite:
		dialect = goose.DialectSQLite3
		fsys, err = migrations.SQLite()
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown dialect %q", db.Dialect)
	}
	provider, err := goose.NewProvider(dialect, db.SQL, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("goose provider: %w", err)
	}
	return provider, nil
}
