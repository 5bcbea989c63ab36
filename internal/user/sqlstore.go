package user

import (
	"context"
	"database/sql"
	_ "embed" // queries live in queries/*.sql
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/database"
)

var (
	//go:embed queries/create.sql
	createSQL string
	//go:embed queries/by_id.sql
	byIDSQL string
	//go:embed queries/by_username.sql
	byUsernameSQL string
	//go:embed queries/list.sql
	listSQL string
	//go:embed queries/count.sql
	countSQL string
	//go:embed queries/set_password_hash.sql
	setPasswordHashSQL string
	//go:embed queries/enable.sql
	enableSQL string
	//go:embed queries/disable.sql
	disableSQL string
	//go:embed queries/lock_admin_changes_postgres.sql
	lockAdminChangesPostgresSQL string
	//go:embed queries/set_sessions_valid_after.sql
	setSessionsValidAfterSQL string
	//go:embed queries/set_all_sessions_valid_after.sql
	setAllSessionsValidAfterSQL string
	//go:embed queries/list_ids.sql
	listIDsSQL string
)

// SQLStore is the Store over an SQLite or PostgreSQL database migrated with
// database.Migrate.
type SQLStore struct {
	db           *database.DB
	now          func() time.Time
	queryTimeout time.Duration // see WithQueryTimeout

	// The queries, rebound once for the database's dialect.
	create, byID, byUsername, list, count, setPasswordHash, enable, disable, setSessionsValidAfter string
	setAllSessionsValidAfter, listIDs                                                              string
	// lockAdminChanges is the statement disableUser runs first, in its
	// transaction; empty where the transaction alone is enough (SQLite).
	lockAdminChanges string
	// disableTx are the options of disableUser's transaction.
	disableTx *sql.TxOptions
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

// NewSQLStore returns a store over db that stamps created and updated times
// with now.
func NewSQLStore(db *database.DB, now func() time.Time, opts ...Option) *SQLStore {
	s := &SQLStore{
		db:                       db,
		now:                      now,
		queryTimeout:             database.DefaultQueryTimeout,
		create:                   db.Rebind(createSQL),
		byID:                     db.Rebind(byIDSQL),
		byUsername:               db.Rebind(byUsernameSQL),
		list:                     db.Rebind(listSQL),
		count:                    db.Rebind(countSQL),
		setPasswordHash:          db.Rebind(setPasswordHashSQL),
		enable:                   db.Rebind(enableSQL),
		disable:                  db.Rebind(disableSQL),
		setSessionsValidAfter:    db.Rebind(setSessionsValidAfterSQL),
		setAllSessionsValidAfter: db.Rebind(setAllSessionsValidAfterSQL),
		listIDs:                  db.Rebind(listIDsSQL),
	}
	if db.Dialect == database.Postgres {
		s.lockAdminChanges = lockAdminChangesPostgresSQL
		// Explicitly, whatever default_transaction_isolation says: under
		// REPEATABLE READ or SERIALIZABLE the transaction's one snapshot
		// would be taken by the lock statement as it starts, before it
		// waits, and disable.sql would not see the disable it waited for.
		s.disableTx = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
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
// PostgreSQL's precision, so a time reads back exactly as it was written.
func normTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// Create implements Store.
func (s *SQLStore) Create(ctx context.Context, nu NewUser) (User, error) {
	if err := ValidateUsername(nu.Username); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	if !nu.Role.Valid() {
		return User{}, fmt.Errorf("create user: %w %q", ErrInvalidRole, nu.Role)
	}
	now := normTime(s.now())
	u := User{
		Username:     nu.Username,
		PasswordHash: nu.PasswordHash,
		Role:         nu.Role,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.db.SQL.QueryRowContext(ctx, s.create, u.Username, u.PasswordHash, string(u.Role), now, now).Scan(&u.ID)
	if database.IsUniqueViolation(err) {
		return User{}, fmt.Errorf("create user %q: %w", nu.Username, ErrDuplicateUsername)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", nu.Username, err)
	}
	return u, nil
}

// ByID implements Store.
func (s *SQLStore) ByID(ctx context.Context, id int64) (User, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	u, err := scanUser(s.db.SQL.QueryRowContext(ctx, s.byID, id))
	if err != nil {
		return User{}, fmt.Errorf("user %d: %w", id, err)
	}
	return u, nil
}

// ByUsername implements Store.
func (s *SQLStore) ByUsername(ctx context.Context, name string) (User, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	u, err := scanUser(s.db.SQL.QueryRowContext(ctx, s.byUsername, name))
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", name, err)
	}
	return u, nil
}

// List implements Store.
func (s *SQLStore) List(ctx context.Context, opts ListOptions) ([]User, error) {
	pattern := "%" + escapeLike(strings.ToLower(opts.Search)) + "%"
	limit := int64(math.MaxInt64)
	if opts.Limit > 0 {
		limit = int64(opts.Limit)
	}
	offset := int64(max(opts.Offset, 0))
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.db.SQL.QueryContext(ctx, s.list, pattern, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// escapeLike makes s match itself in a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Count implements Store.
func (s *SQLStore) Count(ctx context.Context) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var n int
	if err := s.db.SQL.QueryRowContext(ctx, s.count).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// SetPasswordHash implements Store.
func (s *SQLStore) SetPasswordHash(ctx context.Context, id int64, hash string) error {
	if err := s.update(ctx, s.setPasswordHash, id, hash); err != nil {
		return fmt.Errorf("set password of user %d: %w", id, err)
	}
	return nil
}

// SetDisabled implements Store.
func (s *SQLStore) SetDisabled(ctx context.Context, id int64, disabled bool) error {
	var err error
	if disabled {
		err = s.disableUser(ctx, id)
	} else {
		err = s.update(ctx, s.enable, id)
	}
	if err != nil {
		return fmt.Errorf("set disabled=%t on user %d: %w", disabled, id, err)
	}
	return nil
}

// disableUser disables the user unless they are the last enabled
// administrator (ErrLastAdmin), whatever other disables run at the same
// time, on this replica or another.
//
// The check and the write are one statement (queries/disable.sql) in a
// transaction that no other disable can interleave with. On SQLite the
// transaction starts with BEGIN IMMEDIATE (database.Open sets
// _txlock=immediate), which takes the database's single write lock, across
// processes, before the statement reads anything. On PostgreSQL the
// transaction first takes an advisory lock that every disable takes
// (queries/lock_admin_changes_postgres.sql says why a single statement is
// not enough there and why the lock is).
func (s *SQLStore) disableUser(ctx context.Context, id int64) (err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tx, err := s.db.SQL.BeginTx(ctx, s.disableTx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that brought us here is the one to report
		}
	}()
	if s.lockAdminChanges != "" {
		if _, err := tx.ExecContext(ctx, s.lockAdminChanges); err != nil {
			return fmt.Errorf("lock out other disables: %w", err)
		}
	}
	res, err := tx.ExecContext(ctx, s.disable, normTime(s.now()), id)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		// Still under the lock, so the answer matches the refusal.
		if _, err := scanUser(tx.QueryRowContext(ctx, s.byID, id)); err != nil {
			return err // ErrNotFound, or the database's error
		}
		return ErrLastAdmin
	}
	return tx.Commit()
}

// SetSessionsValidAfter implements Store.
func (s *SQLStore) SetSessionsValidAfter(ctx context.Context, id int64, t time.Time) error {
	validAfter := sql.NullTime{Time: normTime(t), Valid: !t.IsZero()}
	if err := s.update(ctx, s.setSessionsValidAfter, id, validAfter); err != nil {
		return fmt.Errorf("set sessions valid after on user %d: %w", id, err)
	}
	return nil
}

// SetAllSessionsValidAfter implements Store.
func (s *SQLStore) SetAllSessionsValidAfter(ctx context.Context, t time.Time) (int, error) {
	if t.IsZero() {
		return 0, errors.New("set sessions valid after on every user: zero time")
	}
	at := normTime(t)
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res, err := s.db.SQL.ExecContext(ctx, s.setAllSessionsValidAfter, at, normTime(s.now()), at)
	if err != nil {
		return 0, fmt.Errorf("set sessions valid after on every user: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("set sessions valid after on every user: %w", err)
	}
	return int(n), nil
}

// ListIDs implements Store.
func (s *SQLStore) ListIDs(ctx context.Context, afterID int64, limit int) ([]int64, error) {
	n := int64(math.MaxInt64)
	if limit > 0 {
		n = int64(limit)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.db.SQL.QueryContext(ctx, s.listIDs, afterID, n)
	if err != nil {
		return nil, fmt.Errorf("list user IDs after %d: %w", afterID, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list user IDs after %d: %w", afterID, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list user IDs after %d: %w", afterID, err)
	}
	return ids, nil
}

// update runs one of the plain UPDATE queries, which all take (values...,
// updated_at, id), and reports ErrNotFound when no row has the ID.
func (s *SQLStore) update(ctx context.Context, query string, id int64, values ...any) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	args := append(append([]any{}, values...), normTime(s.now()), id)
	res, err := s.db.SQL.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Ping implements Store.
func (s *SQLStore) Ping(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.db.Ping(ctx)
}

// scanUser reads one row of the users columns, in the order the queries
// select them.
func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var (
		u          User
		role       string
		validAfter sql.NullTime
	)
	err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &role, &u.Disabled, &validAfter, &u.CreatedAt, &u.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, err
	}
	u.Role = Role(role)
	if validAfter.Valid {
		u.SessionsValidAfter = validAfter.Time.UTC()
	}
	// Drivers return times in the local zone or a fixed +00:00 one.
	u.CreatedAt = u.CreatedAt.UTC()
	u.UpdatedAt = u.UpdatedAt.UTC()
	return u, nil
}
