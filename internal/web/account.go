package web

import (
	"errors"
	"net/http"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/session"
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
	recs, err := s.Account.MySessions(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := s.newPageData(r, "Your devices")
	d.Notice = accountNotices[r.URL.Query().Get("done")]
	d.Data = sessionsData{Sessions: recs}
	s.render(w, r, http.StatusOK, "account_sessions", d)
}

// handleAccountSessionRevoke handles "POST /account/sessions/{id}/revoke".
// Signing out this very device is a sign-out.
func (s *Server) handleAccountSessionRevoke(w http.ResponseWriter, r *http.Request) {
	current, err := s.Account.EndMySession(r.Context(), s.actor(r), r.PathValue("id"))
	switch {
	case errors.Is(err, account.ErrNotFound):
		http.Redirect(w, r, "/account/sessions?done=already-revoked", http.StatusSeeOther)
	case err != nil:
		s.fail(w, r, err)
	case current:
		s.signedOut(w, r)
	default:
		http.Redirect(w, r, "/account/sessions?done=revoked", http.StatusSeeOther)
	}
}

// handleAccountRevokeOthers handles "POST /account/sessions/revoke-others".
func (s *Server) handleAccountRevokeOthers(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Account.EndOtherSessions(r.Context(), s.actor(r)); err != nil {
		s.fail(w, r, err)
		return
	}
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

// handleAccountPasswordPost handles "POST /account/password": the current
// password and a new one; every other session ends and this one goes on
// with a fresh token.
func (s *Server) handleAccountPasswordPost(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	err := s.Account.ChangePassword(r.Context(), s.actor(r),
		r.PostForm.Get("current_password"), r.PostForm.Get("new_password"), r.PostForm.Get("confirm_password"))
	var invalid *account.ValidationError
	switch {
	case err == nil:
		http.Redirect(w, r, "/account/password?done=password", http.StatusSeeOther)
	case errors.As(err, &invalid):
		d := s.newPageData(r, "Change password")
		d.Form = passwordForm{FieldErrors: fieldErrors(invalid, map[account.Field]string{account.FieldPassword: "new_password"})}
		s.render(w, r, http.StatusUnprocessableEntity, "account_password", d)
	default:
		s.fail(w, r, err)
	}
}
