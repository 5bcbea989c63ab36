package account

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// Ended says what ending a user's sessions did.
type Ended struct {
	// Sessions is how many sessions the session store ended at once.
	Sessions int
	// Deferred is set when the session store is out of reach (see
	// Options.SessionsOutOfReach): the sessions end at their next refresh,
	// within the manager's touch interval, through the durable record.
	Deferred bool
}

// endAll ends u's sessions — all of them, or all but the request's own —
// first durably in the user database, so no session from before now can
// come back even if the session store loses the revocation (each session
// checks it when it refreshes, see CheckSession), then in the session
// store, at once on every replica.
func (s *Service) endAll(ctx context.Context, u user.User, reason session.EndReason, keepCurrent bool) (Ended, error) {
	if err := s.users.SetSessionsValidAfter(ctx, u.ID, s.now()); err != nil {
		return Ended{}, unavailable(DepDatabase, err)
	}
	if s.outOfReach {
		return Ended{Deferred: true}, nil
	}
	var n int
	var err error
	if keepCurrent {
		n, err = s.sessions.RevokeOthers(ctx, reason)
	} else {
		n, err = s.sessions.RevokeUser(ctx, u.ID, reason)
	}
	if err != nil {
		return Ended{}, unavailable(DepSessions, err)
	}
	return Ended{Sessions: n}, nil
}

// isCurrentUser reports whether the request of ctx is signed in as userID.
func (s *Service) isCurrentUser(ctx context.Context, userID int64) bool {
	info, ok := s.sessions.Current(ctx)
	return ok && info.UserID == userID
}

// EndAllSessions signs a user out everywhere, as an administrator or from
// the command line. An administrator doing it to themself keeps the session
// they asked from, on a fresh token.
func (s *Service) EndAllSessions(ctx context.Context, a Actor, userID int64) (Ended, error) {
	if !a.IsAdmin() {
		return Ended{}, ErrForbidden
	}
	if err := s.requireProof(ctx, a); err != nil {
		return Ended{}, err
	}
	u, err := s.user(ctx, userID)
	if err != nil {
		return Ended{}, err
	}
	self := s.isCurrentUser(ctx, u.ID)
	ended, err := s.endAll(ctx, u, session.EndedByAdmin, self)
	if err != nil {
		return Ended{}, err
	}
	s.record(ctx, a, audit.Event{Action: audit.SessionsRevokedAll, TargetUserID: u.ID, TargetName: u.Username, Detail: "signed out everywhere"})
	if self {
		return ended, signedOutIfRevoked(s.startSession(ctx, a, u, s.now()))
	}
	return ended, nil
}

// SetDisabled disables an account — it cannot sign in, and every session
// of it ends at once — or enables it again, as an administrator or from the
// command line. Administrators cannot disable their own account
// (ErrOwnAccount), and nobody, the command line included, can disable the
// last enabled administrator (ErrLastAdmin): the user store decides that
// atomically, so two administrators disabling each other at once leave one.
func (s *Service) SetDisabled(ctx context.Context, a Actor, userID int64, disabled bool) (user.User, Ended, error) {
	if !a.IsAdmin() {
		return user.User{}, Ended{}, ErrForbidden
	}
	if err := s.requireProof(ctx, a); err != nil {
		return user.User{}, Ended{}, err
	}
	u, err := s.user(ctx, userID)
	if err != nil {
		return user.User{}, Ended{}, err
	}
	if disabled && !a.commandLine && a.UserID == u.ID {
		return u, Ended{}, ErrOwnAccount
	}
	if err := s.users.SetDisabled(ctx, u.ID, disabled); errors.Is(err, user.ErrLastAdmin) {
		return u, Ended{}, ErrLastAdmin
	} else if err != nil {
		return u, Ended{}, unavailable(DepDatabase, err)
	}
	u.Disabled = disabled
	if !disabled {
		s.record(ctx, a, audit.Event{Action: audit.UserEnabled, TargetUserID: u.ID, TargetName: u.Username})
		return u, Ended{}, nil
	}
	ended, err := s.endAll(ctx, u, session.EndedDisabled, false)
	if err != nil {
		return u, Ended{}, err
	}
	s.record(ctx, a, audit.Event{Action: audit.UserDisabled, TargetUserID: u.ID, TargetName: u.Username})
	return u, ended, nil
}

// EndMySession signs out one of the signed-in user's own sessions by its
// public ID. Their current session is a sign-out (current is then true). A
// session that is not theirs, or already over, is ErrNotFound: another
// user's ID is never acted on.
func (s *Service) EndMySession(ctx context.Context, a Actor, publicID string) (current bool, err error) {
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return false, ErrNotSignedIn
	}
	if own, ok := s.sessions.CurrentPublicID(ctx); ok && own == publicID {
		return true, s.SignOut(ctx, a)
	}
	ended, err := s.sessions.Revoke(ctx, info.UserID, publicID, session.EndedFromOtherDevice)
	if err != nil {
		return false, unavailable(DepSessions, err)
	}
	if !ended {
		return false, ErrNotFound
	}
	s.record(ctx, a, audit.Event{Action: audit.SessionRevoked, TargetUserID: info.UserID, TargetName: info.Username, Detail: "session " + publicID})
	return false, nil
}

// EndOtherSessions signs out every session of the signed-in user but the
// current one, and returns how many it ended.
func (s *Service) EndOtherSessions(ctx context.Context, a Actor) (int, error) {
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return 0, ErrNotSignedIn
	}
	if err := s.requireProof(ctx, a); err != nil {
		return 0, err
	}
	n, err := s.sessions.RevokeOthers(ctx, session.EndedFromOtherDevice)
	if err != nil {
		return 0, unavailable(DepSessions, err)
	}
	s.record(ctx, a, audit.Event{Action: audit.SessionsRevokedAll, TargetUserID: info.UserID, TargetName: info.Username,
		Detail: strconv.Itoa(n) + " other session(s) signed out by the user"})
	return n, nil
}

// EndUserSession signs out any user's session by its public ID, as an
// administrator or from the command line. It returns the session's user;
// a session that is already over is ErrNotFound, with the user still
// returned when they exist.
func (s *Service) EndUserSession(ctx context.Context, a Actor, publicID string) (user.User, error) {
	if !a.IsAdmin() {
		return user.User{}, ErrForbidden
	}
	if err := s.requireProof(ctx, a); err != nil {
		return user.User{}, err
	}
	if s.outOfReach {
		return user.User{}, ErrSessionsOutOfReach
	}
	uid, ok := session.UserOfPublicID(publicID)
	if !ok {
		return user.User{}, ErrNotFound
	}
	u, err := s.user(ctx, uid)
	if err != nil {
		return user.User{}, err
	}
	ended, err := s.sessions.Revoke(ctx, uid, publicID, session.EndedByAdmin)
	if err != nil {
		return u, unavailable(DepSessions, err)
	}
	if !ended {
		return u, ErrNotFound
	}
	s.record(ctx, a, audit.Event{Action: audit.SessionRevoked, TargetUserID: u.ID, TargetName: u.Username, Detail: "session " + publicID})
	return u, nil
}

// CheckSession is the check the session manager runs when it refreshes a
// session (session.ManagerOptions.CheckUser): the durable record of
// revocations in the user database. A session ends if its user is gone or
// disabled, or if it was created before the user's sessions-valid-after
// time (set by every "sign out everywhere", password change and disable),
// so a revocation that a Redis failover lost cannot keep a session alive for
// longer than one refresh interval.
func (s *Service) CheckSession(ctx context.Context, userID int64, created time.Time) (session.EndReason, error) {
	u, err := s.users.ByID(ctx, userID)
	switch {
	case errors.Is(err, user.ErrNotFound):
		return session.EndedDisabled, nil
	case err != nil:
		return "", unavailable(DepDatabase, err)
	case u.Disabled:
		return session.EndedDisabled, nil
	case created.Before(u.SessionsValidAfter.Truncate(time.Millisecond)):
		// Sessions keep their creation time in whole milliseconds: a
		// session created in the same millisecond as the revocation (the
		// fresh token of the device that asked for it) must survive.
		return session.EndedRevoked, nil
	}
	return "", nil
}

// signedOutIfRevoked turns ErrRevokedInFlight from re-issuing a signed-in
// session's token into ErrNotSignedIn: the session was ended while the
// request ran, so the request is answered as a signed-out one.
func signedOutIfRevoked(err error) error {
	if errors.Is(err, ErrRevokedInFlight) {
		return ErrNotSignedIn
	}
	return err
}
