package audit

import (
	"context"
	"database/sql"
	_ "embed" // queries live in queries/*.sql
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hallpass/hallpass/internal/database"
)

var (
	//go:embed queries/record.sql
	recordSQL string
	//go:embed queries/list.sql
	listSQL string
	//go:embed queries/list_by_user.sql
	listByUserSQL string
	//go:embed queries/count.sql
	countSQL string
	//go:embed queries/count_by_user.sql
	countByUserSQL string
)

// SQLStore is the Store over an SQLite or PostgreSQL database migrated with
// database.Migrate.
type SQLStore struct {
	db           *database.DB
	now          func() time.Time
	queryTimeout time.Duration // see WithQueryTimeout

	// The queries, rebound once for the database's dialect.
	record, list, listByUser, count, countByUser string
}

var _ Store = (*SQLStore)(nil)

// Option configures an SQLStore.
type Option func(*SQLStore)

// WithQueryTimeout bounds each of the store's statements to d when the
// caller's context has no sooner deadline. Without it, or with d of zero or
// less, the bound is database.DefaultQueryTimeout.
func WithQueryTimeout(d time.Duration) Option {
	return func(s *SQLStore) { s.queryTimeout = d }
}

// NewSQLStore returns a store over db that stamps events recorded without a
// time with now.
func NewSQLStore(db *database.DB, now func() time.Time, opts ...Option) *SQLStore {
	s := &SQLStore{
		db:           db,
		now:          now,
		queryTimeout: database.DefaultQueryTimeout,
		record:       db.Rebind(recordSQL),
		list:         db.Rebind(listSQL),
		listByUser:   db.Rebind(listByUserSQL),
		count:        db.Rebind(countSQL),
		countByUser:  db.Rebind(countByUserSQL),
	}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// bound gives ctx the store's query deadline unless it has a sooner one.
func (s *SQLStore) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return database.BoundQuery(ctx, s.queryTimeout)
}

// normTime is how every time is stored: UTC, to the microsecond, which is
// PostgreSQL's precision, so a time reads back exactly as it was written (and,
// on SQLite, sorts as text in time order).
func normTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// Record implements Store.
func (s *SQLStore) Record(ctx context.Context, ev Event) error {
	if ev.Action == "" {
		return fmt.Errorf("record audit event: %w: no action", ErrInvalidEvent)
	}
	if ev.ActorID < 0 || ev.TargetUserID < 0 {
		return fmt.Errorf("record audit event %s: %w: negative user ID", ev.Action, ErrInvalidEvent)
	}
	at := ev.At
	if at.IsZero() {
		at = s.now()
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.db.SQL.ExecContext(ctx, s.record,
		normTime(at),
		nullID(ev.ActorID),
		cleanText(ev.ActorName),
		cleanText(string(ev.Action)),
		nullID(ev.TargetUserID),
		cleanText(ev.TargetName),
		cleanText(ev.Detail),
		cleanText(ev.IP),
		cleanText(ev.Replica),
	)
	if err != nil {
		return fmt.Errorf("record audit event %s: %w", ev.Action, err)
	}
	return nil
}

// nullID stores the "no user" ID 0 as NULL.
func nullID(id int64) sql.NullInt64 {
	return sql.NullInt64{Int64: id, Valid: id != 0}
}

// cleanText makes s storable on both dialects: PostgreSQL rejects text that
// is not UTF-8 or holds a NUL byte, and such text can come from a client (a
// username typed at sign-in, a User-Agent). Failing to record the event would
// be worse than altering it, so the bad bytes become U+FFFD everywhere.
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// List implements Store.
func (s *SQLStore) List(ctx context.Context, opts ListOptions) ([]Event, error) {
	limit := int64(math.MaxInt64)
	if opts.Limit > 0 {
		limit = int64(opts.Limit)
	}
	offset := int64(max(opts.Offset, 0))
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var (
		rows *sql.Rows
		err  error
	)
	if opts.UserID != 0 {
		rows, err = s.db.SQL.QueryContext(ctx, s.listByUser, opts.UserID, opts.UserID, limit, offset)
	} else {
		rows, err = s.db.SQL.QueryContext(ctx, s.list, limit, offset)
	}
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("list audit events: %w", err)
		}
		events = append(events, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return events, nil
}

// Count implements Store.
func (s *SQLStore) Count(ctx context.Context, opts ListOptions) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var row *sql.Row
	if opts.UserID != 0 {
		row = s.db.SQL.QueryRowContext(ctx, s.countByUser, opts.UserID, opts.UserID)
	} else {
		row = s.db.SQL.QueryRowContext(ctx, s.count)
	}
	var n int
	if err := row.Scan(&n); err != nil {
		return 0, fmt.Errorf("count audit events: %w", err)
	}
	return n, nil
}

// scanEvent reads one row of the audit_events columns, in the order the
// queries select them.
func scanEvent(row interface{ Scan(...any) error }) (Event, error) {
	var (
		ev            Event
		action        string
		actor, target sql.NullInt64
	)
	err := row.Scan(&ev.ID, &ev.At, &actor, &ev.ActorName, &action, &target,
		&ev.TargetName, &ev.Detail, &ev.IP, &ev.Replica)
	if err != nil {
		return Event{}, err
	}
	ev.Action = Action(action)
	ev.ActorID = actor.Int64 // 0 when NULL
	ev.TargetUserID = target.Int64
	// Drivers return times in the local zone or a fixed +00:00 one.
	ev.At = ev.At.UTC()
	return ev, nil
}
