package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// InstrumentStore returns store with every call timed, failures counted and
// revocations counted by reason.
func InstrumentStore(store session.Store, m *Metrics) session.Store {
	return &instrumentedStore{Store: store, m: m}
}

type instrumentedStore struct {
	session.Store
	m *Metrics
}

func (s *instrumentedStore) FindCtx(ctx context.Context, key string) ([]byte, bool, error) {
	start := time.Now()
	b, found, err := s.Store.FindCtx(ctx, key)
	s.m.Store("find", start, err)
	return b, found, err
}

func (s *instrumentedStore) CommitCtx(ctx context.Context, key string, b []byte, expiry time.Time) error {
	start := time.Now()
	err := s.Store.CommitCtx(ctx, key, b, expiry)
	s.m.Store("commit", start, ignoreRevoked(err))
	return err
}

func (s *instrumentedStore) DeleteCtx(ctx context.Context, key string) error {
	start := time.Now()
	err := s.Store.DeleteCtx(ctx, key)
	s.m.Store("delete", start, err)
	if err == nil {
		s.m.Revoked(string(session.EndedSignedOut), 1)
	}
	return err
}

func (s *instrumentedStore) Find(key string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), key)
}

func (s *instrumentedStore) Commit(key string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), key, b, expiry)
}

func (s *instrumentedStore) Delete(key string) error {
	return s.DeleteCtx(context.Background(), key)
}

func (s *instrumentedStore) Create(ctx context.Context, key string, userID int64, data []byte, expiry time.Time, limit session.Limit, origin session.Origin) ([]string, error) {
	start := time.Now()
	evicted, err := s.Store.Create(ctx, key, userID, data, expiry, limit, origin)
	s.m.Store("create", start, ignoreRevoked(err))
	s.m.Revoked(string(session.EndedTooMany), len(evicted))
	if err == nil && origin.Replaces != "" {
		// The replaced session ends inside Create, not through Delete.
		s.m.Revoked(string(session.EndedSignedOut), 1)
	}
	return evicted, err
}

func (s *instrumentedStore) ListUser(ctx context.Context, userID int64) ([]session.Entry, error) {
	start := time.Now()
	e, err := s.Store.ListUser(ctx, userID)
	s.m.Store("list_user", start, err)
	return e, err
}

func (s *instrumentedStore) ListUserKeys(ctx context.Context, userID int64) ([]string, error) {
	start := time.Now()
	k, err := s.Store.ListUserKeys(ctx, userID)
	s.m.Store("list_user_keys", start, err)
	return k, err
}

func (s *instrumentedStore) CountUsers(ctx context.Context, userIDs []int64) (map[int64]int, error) {
	start := time.Now()
	n, err := s.Store.CountUsers(ctx, userIDs)
	s.m.Store("count_users", start, err)
	return n, err
}

func (s *instrumentedStore) Revoke(ctx context.Context, userID int64, keys []string, reason session.EndReason) (int, error) {
	start := time.Now()
	n, err := s.Store.Revoke(ctx, userID, keys, reason)
	s.m.Store("revoke", start, err)
	s.m.Revoked(string(reason), n)
	return n, err
}

func (s *instrumentedStore) RevokeUser(ctx context.Context, userID int64, exceptKey string, reason session.EndReason) (int, error) {
	start := time.Now()
	n, err := s.Store.RevokeUser(ctx, userID, exceptKey, reason)
	s.m.Store("revoke_user", start, err)
	s.m.Revoked(string(reason), n)
	return n, err
}

func (s *instrumentedStore) RevokeUsers(ctx context.Context, userIDs []int64, exceptKey string, reason session.EndReason) (int, error) {
	start := time.Now()
	n, err := s.Store.RevokeUsers(ctx, userIDs, exceptKey, reason)
	s.m.Store("revoke_users", start, err)
	s.m.Revoked(string(reason), n)
	return n, err
}

func (s *instrumentedStore) EndReason(ctx context.Context, key string) (session.EndReason, error) {
	start := time.Now()
	r, err := s.Store.EndReason(ctx, key)
	s.m.Store("end_reason", start, err)
	return r, err
}

func (s *instrumentedStore) Count(ctx context.Context) (int, error) {
	start := time.Now()
	n, err := s.Store.Count(ctx)
	s.m.Store("count", start, err)
	return n, err
}

func (s *instrumentedStore) Recent(ctx context.Context, offset, limit int) ([]session.Entry, error) {
	start := time.Now()
	e, err := s.Store.Recent(ctx, offset, limit)
	s.m.Store("recent", start, err)
	return e, err
}

func (s *instrumentedStore) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ping(ctx)
	s.m.Store("ping", start, err)
	return err
}

// ignoreRevoked keeps a refused write of a revoked session out of the error
// count: the store did its job.
func ignoreRevoked(err error) error {
	if errors.Is(err, session.ErrRevoked) || errors.Is(err, session.ErrTooManySessions) {
		return nil
	}
	return err
}

// InstrumentUsers returns users with every call timed and failures counted.
// A lookup of a missing user is not a failure.
func InstrumentUsers(users user.Store, m *Metrics) user.Store {
	return &instrumentedUsers{users: users, m: m}
}

type instrumentedUsers struct {
	users user.Store
	m     *Metrics
}

func (u *instrumentedUsers) done(op string, start time.Time, err error) {
	if errors.Is(err, user.ErrNotFound) || errors.Is(err, user.ErrDuplicateUsername) {
		err = nil
	}
	u.m.Database(op, start, err)
}

func (u *instrumentedUsers) Create(ctx context.Context, nu user.NewUser) (user.User, error) {
	start := time.Now()
	r, err := u.users.Create(ctx, nu)
	u.done("user_create", start, err)
	return r, err
}

func (u *instrumentedUsers) ByID(ctx context.Context, id int64) (user.User, error) {
	start := time.Now()
	r, err := u.users.ByID(ctx, id)
	u.done("user_by_id", start, err)
	return r, err
}

func (u *instrumentedUsers) ByUsername(ctx context.Context, name string) (user.User, error) {
	start := time.Now()
	r, err := u.users.ByUsername(ctx, name)
	u.done("user_by_username", start, err)
	return r, err
}

func (u *instrumentedUsers) List(ctx context.Context, opts user.ListOptions) ([]user.User, error) {
	start := time.Now()
	r, err := u.users.List(ctx, opts)
	u.done("user_list", start, err)
	return r, err
}

func (u *instrumentedUsers) Count(ctx context.Context) (int, error) {
	start := time.Now()
	r, err := u.users.Count(ctx)
	u.done("user_count", start, err)
	return r, err
}

func (u *instrumentedUsers) SetPasswordHash(ctx context.Context, id int64, hash string) error {
	start := time.Now()
	err := u.users.SetPasswordHash(ctx, id, hash)
	u.done("user_set_password", start, err)
	return err
}

func (u *instrumentedUsers) SetDisabled(ctx context.Context, id int64, disabled bool) error {
	start := time.Now()
	err := u.users.SetDisabled(ctx, id, disabled)
	u.done("user_set_disabled", start, err)
	return err
}

func (u *instrumentedUsers) SetSessionsValidAfter(ctx context.Context, id int64, t time.Time) error {
	start := time.Now()
	err := u.users.SetSessionsValidAfter(ctx, id, t)
	u.done("user_set_sessions_valid_after", start, err)
	return err
}

func (u *instrumentedUsers) SetAllSessionsValidAfter(ctx context.Context, t time.Time) (int, error) {
	start := time.Now()
	n, err := u.users.SetAllSessionsValidAfter(ctx, t)
	u.done("user_set_all_sessions_valid_after", start, err)
	return n, err
}

func (u *instrumentedUsers) ListIDs(ctx context.Context, afterID int64, limit int) ([]int64, error) {
	start := time.Now()
	ids, err := u.users.ListIDs(ctx, afterID, limit)
	u.done("user_list_ids", start, err)
	return ids, err
}

func (u *instrumentedUsers) Ping(ctx context.Context) error {
	start := time.Now()
	err := u.users.Ping(ctx)
	u.done("ping", start, err)
	return err
}
