package account

import (
	"context"
	"fmt"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// everyoneBatch is how many users SignOutEveryone reads from the database
// and hands the session store at a time: few enough that a page of IDs is a
// small read and a store call a short one (at 100 sessions a user, 50 000
// sessions, about half a second of Redis's time here), enough that the calls
// themselves cost nothing next to the work.
const everyoneBatch = 500

// SignOutEveryone ends every session of every user at once, for incident
// response, as an administrator or from the command line. An administrator
// keeps the session they asked from, on a fresh token; their other sessions
// end with everyone else's. It returns how many sessions the store ended.
//
// The durable record comes first: one statement sets every user's
// sessions-valid-after time, so every session from before now ends at its
// next refresh (see CheckSession) even if the session store loses the rest,
// or fails half-way. Then the store ends the sessions at once, on every
// replica, a page of users at a time (keyset paging on user IDs, so the
// millionth user costs what the first does); each page also voids the
// sign-ins of its users still in flight (see session.Origin).
//
// With the session store out of reach (the command line beside the embedded
// store), the durable record alone ends the sessions, within a refresh
// interval (Ended.Deferred). One audit record says what was done, also when
// the store failed part-way, since the durable record has by then taken
// effect.
func (s *Service) SignOutEveryone(ctx context.Context, a Actor) (Ended, error) {
	if !a.IsAdmin() {
		return Ended{}, ErrForbidden
	}
	if err := s.requireProof(ctx, a); err != nil {
		return Ended{}, err
	}
	// The administrator's own session, when the request has one: read now,
	// so a database outage fails before anything has changed.
	var self user.User
	info, keep := s.sessions.Current(ctx)
	if keep {
		var err error
		if self, err = s.user(ctx, info.UserID); err != nil {
			return Ended{}, err
		}
	}
	at := s.now()
	if _, err := s.users.SetAllSessionsValidAfter(ctx, at); err != nil {
		return Ended{}, unavailable(DepDatabase, err)
	}
	ended, err := s.revokeEveryone(ctx)
	detail := fmt.Sprintf("%d session(s) of every user signed out", ended.Sessions)
	switch {
	case ended.Deferred:
		detail = "every user's sessions revoked in the database; they end at their next refresh"
	case err != nil:
		detail = fmt.Sprintf("every user's sessions revoked in the database; stopped after ending %d in the session store, the rest end at their next refresh", ended.Sessions)
	}
	s.record(ctx, a, audit.Event{Action: audit.SessionsRevokedEveryone, Detail: detail})
	if err != nil {
		return Ended{}, err
	}
	if keep {
		// The durable record just voided this session too: it goes on, as
		// after a password change, on a token issued after the record.
		return ended, signedOutIfRevoked(s.startSession(ctx, a, self, s.now()))
	}
	return ended, nil
}

// revokeEveryone ends the sessions of every user in the session store but
// the request's own, a page of users at a time, and returns how many it
// ended, including when a page fails.
func (s *Service) revokeEveryone(ctx context.Context) (Ended, error) {
	if s.outOfReach {
		return Ended{Deferred: true}, nil
	}
	var ended Ended
	after := int64(0)
	for {
		ids, err := s.users.ListIDs(ctx, after, everyoneBatch)
		if err != nil {
			return ended, unavailable(DepDatabase, err)
		}
		if len(ids) == 0 {
			return ended, nil
		}
		n, err := s.sessions.RevokeEveryone(ctx, ids, session.EndedEveryone)
		ended.Sessions += n
		if err != nil {
			return ended, unavailable(DepSessions, err)
		}
		if len(ids) < everyoneBatch {
			return ended, nil
		}
		after = ids[len(ids)-1]
	}
}
