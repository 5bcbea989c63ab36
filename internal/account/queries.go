package account

import (
	"context"
	"errors"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// user loads a user by ID: ErrNotFound when there is none.
func (s *Service) user(ctx context.Context, id int64) (user.User, error) {
	u, err := s.users.ByID(ctx, id)
	switch {
	case errors.Is(err, user.ErrNotFound):
		return user.User{}, ErrNotFound
	case err != nil:
		return user.User{}, unavailable(DepDatabase, err)
	}
	return u, nil
}

// User returns a user by ID, for an administrator or the command line.
func (s *Service) User(ctx context.Context, a Actor, id int64) (user.User, error) {
	if !a.IsAdmin() {
		return user.User{}, ErrForbidden
	}
	return s.user(ctx, id)
}

// UserByName returns a user by name (ignoring case), for an administrator
// or the command line.
func (s *Service) UserByName(ctx context.Context, a Actor, name string) (user.User, error) {
	if !a.IsAdmin() {
		return user.User{}, ErrForbidden
	}
	u, err := s.users.ByUsername(ctx, name)
	switch {
	case errors.Is(err, user.ErrNotFound):
		return user.User{}, ErrNotFound
	case err != nil:
		return user.User{}, unavailable(DepDatabase, err)
	}
	return u, nil
}

// MySessions lists the signed-in user's live sessions, most recently active
// first, the current one marked.
func (s *Service) MySessions(ctx context.Context) ([]session.Record, error) {
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return nil, ErrNotSignedIn
	}
	recs, err := s.sessions.ListUser(ctx, info.UserID)
	if err != nil {
		return nil, unavailable(DepSessions, err)
	}
	return recs, nil
}

// UserSessions lists any user's live sessions, for an administrator or the
// command line.
func (s *Service) UserSessions(ctx context.Context, a Actor, userID int64) ([]session.Record, error) {
	if !a.IsAdmin() {
		return nil, ErrForbidden
	}
	if s.outOfReach {
		return nil, ErrSessionsOutOfReach
	}
	recs, err := s.sessions.ListUser(ctx, userID)
	if err != nil {
		return nil, unavailable(DepSessions, err)
	}
	return recs, nil
}

// RecentSessions lists live sessions across every user, most recently
// active first, for an administrator or the command line.
func (s *Service) RecentSessions(ctx context.Context, a Actor, offset, limit int) ([]session.Record, error) {
	if !a.IsAdmin() {
		return nil, ErrForbidden
	}
	if s.outOfReach {
		return nil, ErrSessionsOutOfReach
	}
	recs, err := s.sessions.Recent(ctx, offset, limit)
	if err != nil {
		return nil, unavailable(DepSessions, err)
	}
	return recs, nil
}

// UserRow is a user as the admin list shows them.
type UserRow struct {
	user.User
	// Sessions counts the user's live sessions.
	Sessions int
}

// Users lists users by name (search and page in opts), each with their
// live-session count: one database query and one session-store round trip
// for the whole page, however many users it holds.
func (s *Service) Users(ctx context.Context, a Actor, opts user.ListOptions) ([]UserRow, error) {
	users, err := s.ListUsers(ctx, a, opts)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	counts := map[int64]int{}
	if len(ids) > 0 && !s.outOfReach {
		if counts, err = s.sessions.CountUsers(ctx, ids); err != nil {
			return nil, unavailable(DepSessions, err)
		}
	}
	rows := make([]UserRow, len(users))
	for i, u := range users {
		rows[i] = UserRow{User: u, Sessions: counts[u.ID]}
	}
	return rows, nil
}

// ListUsers lists users by name, without their sessions.
func (s *Service) ListUsers(ctx context.Context, a Actor, opts user.ListOptions) ([]user.User, error) {
	if !a.IsAdmin() {
		return nil, ErrForbidden
	}
	users, err := s.users.List(ctx, opts)
	if err != nil {
		return nil, unavailable(DepDatabase, err)
	}
	return users, nil
}

// Overview is what the admin home page shows.
type Overview struct {
	Users    int
	Sessions int
	Recent   []session.Record
	Events   []audit.Event
}

// Overview counts users and live sessions and lists the most recently
// active sessions and the latest audit events.
func (s *Service) Overview(ctx context.Context, a Actor, recent, events int) (Overview, error) {
	if !a.IsAdmin() {
		return Overview{}, ErrForbidden
	}
	var o Overview
	var err error
	if o.Users, err = s.users.Count(ctx); err != nil {
		return Overview{}, unavailable(DepDatabase, err)
	}
	if o.Sessions, err = s.sessions.Count(ctx); err != nil {
		return Overview{}, unavailable(DepSessions, err)
	}
	if o.Recent, err = s.sessions.Recent(ctx, 0, recent); err != nil {
		return Overview{}, unavailable(DepSessions, err)
	}
	if o.Events, err = s.audit.List(ctx, audit.ListOptions{Limit: events}); err != nil {
		return Overview{}, unavailable(DepDatabase, err)
	}
	return o, nil
}

// UserDetail is what an administrator sees of one user.
type UserDetail struct {
	User     user.User
	Sessions []session.Record
	Events   []audit.Event
}

// UserDetail returns a user with their live sessions and latest audit
// events.
func (s *Service) UserDetail(ctx context.Context, a Actor, id int64, events int) (UserDetail, error) {
	u, err := s.User(ctx, a, id)
	if err != nil {
		return UserDetail{}, err
	}
	d := UserDetail{User: u}
	if d.Sessions, err = s.sessions.ListUser(ctx, u.ID); err != nil {
		return UserDetail{}, unavailable(DepSessions, err)
	}
	if d.Events, err = s.audit.List(ctx, audit.ListOptions{UserID: u.ID, Limit: events}); err != nil {
		return UserDetail{}, unavailable(DepDatabase, err)
	}
	return d, nil
}

// AuditEvents returns a page of the audit trail, newest first, and how many
// events there are in all.
func (s *Service) AuditEvents(ctx context.Context, a Actor, offset, limit int) ([]audit.Event, int, error) {
	if !a.IsAdmin() {
		return nil, 0, ErrForbidden
	}
	events, err := s.audit.List(ctx, audit.ListOptions{Limit: limit, Offset: offset})
	if err != nil {
		return nil, 0, unavailable(DepDatabase, err)
	}
	total, err := s.audit.Count(ctx, audit.ListOptions{})
	if err != nil {
		return nil, 0, unavailable(DepDatabase, err)
	}
	return events, total, nil
}
