package web

import (
	"errors"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// accountNotices confirm what an account action did, after its redirect.
var accountNotices = map[string]string{
	"revoked":         "The device was signed out.",
	"revoked-others":  "All your other devices were signed out.",
	"password":        "Your password was changed and your other devices were signed out.",
	"already-revoked": "That device was already signed out.",
}

// sessionsData is the content of the sessions pages.
type sessionsData struct {
	Sessions []session.Record
}

// handleAccountSessions handles "GET /account/sessions".
func (s *Server) handleAccountSessions(w http.ResponseWriter, r *http.Request) {
	info, _ := s.sessions.Current(r.Context())
	recs, err := s.sessions.ListUser(r.Context(), info.UserID)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	d := s.newPageData(r, "Your devices")
	d.Notice = accountNotices[r.URL.Query().Get("done")]
	d.Data = sessionsData{Sessions: recs}
	s.render(w, r, http.StatusOK, "account_sessions", d)
}

// handleAccountSessionRevoke handles "POST /account/sessions/{id}/revoke".
func (s *Server) handleAccountSessionRevoke(w http.ResponseWriter, r *http.Request) {
	info, _ := s.sessions.Current(r.Context())
	id := r.PathValue("id")
	if own, ok := s.currentPublicID(r); ok && own == id {
		// Signing out this very device is a sign-out.
		s.handleLogoutPost(w, r)
		return
	}
	revoked, err := s.sessions.Revoke(r.Context(), info.UserID, id, session.EndedFromOtherDevice)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	if !revoked {
		http.Redirect(w, r, "/account/sessions?done=already-revoked", http.StatusSeeOther)
		return
	}
	s.record(r, audit.Event{Action: audit.SessionRevoked, TargetUserID: info.UserID, TargetName: info.Username, Detail: "session " + id})
	http.Redirect(w, r, "/account/sessions?done=revoked", http.StatusSeeOther)
}

// currentPublicID is the public ID of the request's own session.
func (s *Server) currentPublicID(r *http.Request) (string, bool) {
	info, ok := s.sessions.Current(r.Context())
	if !ok {
		return "", false
	}
	recs, err := s.sessions.ListUser(r.Context(), info.UserID)
	if err != nil {
		return "", false
	}
	for _, rec := range recs {
		if rec.Current {
			return rec.PublicID, true
		}
	}
	return "", false
}

// handleAccountRevokeOthers handles "POST /account/sessions/revoke-others".
func (s *Server) handleAccountRevokeOthers(w http.ResponseWriter, r *http.Request) {
	info, _ := s.sessions.Current(r.Context())
	n, err := s.sessions.RevokeOthers(r.Context(), session.EndedFromOtherDevice)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.record(r, audit.Event{Action: audit.SessionsRevokedAll, TargetUserID: info.UserID, TargetName: info.Username,
		Detail: strconv.Itoa(n) + " other session(s) signed out by the user"})
	http.Redirect(w, r, "/account/sessions?done=revoked-others", http.StatusSeeOther)
}

type passwordForm struct {
	Error       string
	FieldErrors map[string]string
}

// handleAccountPasswordGet handles "GET /account/password".
func (s *Server) handleAccountPasswordGet(w http.ResponseWriter, r *http.Request) {
	d := s.newPageData(r, "Change password")
	d.Notice = accountNotices[r.URL.Query().Get("done")]
	d.Form = passwordForm{FieldErrors: map[string]string{}}
	s.render(w, r, http.StatusOK, "account_password", d)
}

// handleAccountPasswordPost handles "POST /account/password": check the
// current password, store the new one, end every other session and give
// this one a fresh token.
func (s *Server) handleAccountPasswordPost(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	info, _ := s.sessions.Current(r.Context())
	form := passwordForm{FieldErrors: map[string]string{}}
	current, next, confirm := r.PostForm.Get("current_password"), r.PostForm.Get("new_password"), r.PostForm.Get("confirm_password")
	rerender := func() {
		d := s.newPageData(r, "Change password")
		d.Form = form
		s.render(w, r, http.StatusUnprocessableEntity, "account_password", d)
	}
	u, err := s.users.ByID(r.Context(), info.UserID)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	hctx, cancel := s.hashContext(r)
	defer cancel()
	ok, _, err := s.hasher.Verify(hctx, current, u.PasswordHash)
	switch {
	case errors.Is(err, password.ErrBusy):
		s.unavailable(w, r, err)
		return
	case err != nil && !errors.Is(err, password.ErrTooLong):
		s.serverError(w, r, err)
		return
	}
	if !ok {
		form.FieldErrors["current_password"] = "That is not your current password."
	}
	switch err := password.Validate(next); {
	case errors.Is(err, password.ErrTooShort):
		form.FieldErrors["new_password"] = "Use at least 8 characters."
	case errors.Is(err, password.ErrTooLong):
		form.FieldErrors["new_password"] = "Use at most 256 bytes."
	case !utf8.ValidString(next):
		form.FieldErrors["new_password"] = "The password contains characters that are not valid text."
	}
	if next != confirm && form.FieldErrors["new_password"] == "" {
		form.FieldErrors["confirm_password"] = "The two passwords do not match."
	}
	if len(form.FieldErrors) > 0 {
		rerender()
		return
	}
	hashCtx, cancelHash := s.hashContext(r)
	defer cancelHash()
	hash, err := s.hasher.Hash(hashCtx, next)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	if err := s.users.SetPasswordHash(r.Context(), u.ID, hash); err != nil {
		s.unavailable(w, r, err)
		return
	}
	if !s.endUserSessions(w, r, u, session.EndedPasswordChanged, true) {
		return
	}
	s.record(r, audit.Event{Action: audit.PasswordChanged, TargetUserID: u.ID, TargetName: u.Username, Detail: "by the user; other sessions signed out"})
	// A privilege-relevant change: this device goes on with a fresh token.
	s.signIn(w, r, u, "/account/password?done=password")
}

// endUserSessions ends u's sessions — all of them, or all but the request's
// own — first durably in the database, so no session from before now can
// come back even if the session store loses the revocation, then in the
// session store, at once on every replica. It answers the request itself
// and returns false on failure.
func (s *Server) endUserSessions(w http.ResponseWriter, r *http.Request, u user.User, reason session.EndReason, keepCurrent bool) bool {
	if err := s.users.SetSessionsValidAfter(r.Context(), u.ID, s.now()); err != nil {
		s.unavailable(w, r, err)
		return false
	}
	var err error
	if keepCurrent {
		_, err = s.sessions.RevokeOthers(r.Context(), reason)
	} else {
		_, err = s.sessions.RevokeUser(r.Context(), u.ID, reason)
	}
	if err != nil {
		s.unavailable(w, r, err)
		return false
	}
	return true
}
