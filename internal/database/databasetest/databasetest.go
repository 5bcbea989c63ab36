// Package databasetest holds what the tests of Hallpass's SQL stores share to
// check that a store gives up on a stuck database: a way to make the database
// stuck, and the check that a call gave up in time.
package databasetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/testkit"
)

// LockTable makes every statement that touches table wait, reads included,
// as a database stuck behind a long transaction would: it takes an ACCESS
// EXCLUSIVE lock on table in a transaction of its own on db, a PostgreSQL
// database, and holds it until release is called or t ends.
func LockTable(t testing.TB, db *database.DB, table string) (release func()) {
	t.Helper()
	if db.Dialect != database.Postgres {
		t.Fatalf("LockTable needs PostgreSQL, not %s", db.Dialect)
	}
	// Not t.Context(): that ends before the cleanups run, and database/sql
	// would roll the transaction back under them.
	ctx := context.Background()
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin the locking transaction: %v", err)
	}
	if _, err := tx.ExecContext(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		_ = tx.Rollback() // the lock error is the one worth reporting
		t.Fatalf("lock table %s: %v", table, err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := tx.Rollback(); err != nil {
				t.Errorf("release the lock on %s: %v", table, err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// slack is how much later than its deadline a call may return: the time
// the driver takes to notice the deadline and abandon the statement, plus
// scheduling on a busy machine.
const slack = time.Second

// ExpectDeadlineExceeded calls call and checks that it fails with
// context.DeadlineExceeded after about after: not sooner, so it did wait,
// and not much later, so the deadline is what stopped it. A call that is
// still waiting well past that fails the test at once rather than hanging it.
func ExpectDeadlineExceeded(t testing.TB, after time.Duration, call func() error) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- call() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(after + 5*slack):
		t.Fatalf("still waiting after %s, want it to give up after %s", time.Since(start), after)
	}
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if took < after || took > after+slack {
		t.Errorf("gave up after %s, want after %s (at most %s more)", took, after, slack)
	}
}

// ExpectNoLockWaiters waits until no statement on db's PostgreSQL database
// is queued behind a lock. A store that gave up on a statement should leave
// nothing behind on the server: pgx cancels the statement as it drops the
// connection, but does so after the call has returned, hence the wait.
func ExpectNoLockWaiters(t testing.TB, db *database.DB) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, "no statement queued behind a lock", func() error {
		var waiting int
		err := db.SQL.QueryRowContext(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).
			Scan(&waiting)
		if err != nil {
			return err
		}
		if waiting > 0 {
			return fmt.Errorf("%d statements still queued", waiting)
		}
		return nil
	})
}
