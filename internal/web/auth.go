package web

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/device"
	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// loginFailedMessage is the one answer to every failed sign-in, so the page
// does not tell whether the username exists.
const loginFailedMessage = "Incorrect username or password."

// endNotices explain on the login page why a browser was signed out.
var endNotices = map[string]string{
	string(session.EndedIdle):            "You were signed out after a period of inactivity. Please sign in again.",
	string(session.EndedLifetime):        "Your session reached its maximum length. Please sign in again.",
	string(session.EndedUnknown):         "Your session has ended. Please sign in again.",
	string(session.EndedSignedOut):       "You have signed out.",
	string(session.EndedByAdmin):         "An administrator signed you out. Please sign in again.",
	string(session.EndedFromOtherDevice): "You signed this device out from another device.",
	string(session.EndedTooMany):         "You were signed out because your account signed in on too many devices.",
	string(session.EndedPasswordChanged): "Your password was changed, so you were signed out. Sign in with the new password.",
	string(session.EndedDisabled):        "Your account has been disabled.",
	string(session.EndedRevoked):         "Your session was ended. Please sign in again.",
}

type loginForm struct {
	Username string
	Next     string
	Error    string
}

type signupForm struct {
	Username    string
	Error       string
	FieldErrors map[string]string
}

// handleLoginGet handles "GET /login".
func (s *Server) handleLoginGet(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if _, ok := s.sessions.Current(r.Context()); ok {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	d := s.newPageData(r, "Sign in")
	d.Notice = endNotices[r.URL.Query().Get("reason")]
	d.Form = loginForm{Next: next}
	s.render(w, r, http.StatusOK, "login", d)
}

// handleLoginPost handles "POST /login". Under the reject session-limit
// policy the form may also carry end_session, the public ID of one of the
// user's sessions to sign out so this sign-in fits under the limit.
func (s *Server) handleLoginPost(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	form := loginForm{
		Username: strings.TrimSpace(r.PostForm.Get("username")),
		Next:     safeNext(r.PostForm.Get("next")),
	}
	pw := r.PostForm.Get("password")
	fail := func(status int, msg string) {
		form.Error = msg
		d := s.newPageData(r, "Sign in")
		d.Form = form
		s.render(w, r, status, "login", d)
	}
	if form.Username == "" || pw == "" {
		fail(http.StatusUnprocessableEntity, "Enter your username and password.")
		return
	}
	if !utf8.ValidString(form.Username) || len(form.Username) > user.MaxUsernameLength {
		form.Username = ""
	}
	accountKey, clientKey := s.loginKeys(r, form.Username)
	if wait := s.waitFor(r, s.loginPolicy, accountKey, clientKey); wait > 0 {
		s.record(r, audit.Event{Action: audit.LoginFailed, TargetName: form.Username, Detail: "throttled"})
		s.metrics.Throttled("login")
		s.metrics.Login("throttled")
		s.tooManyAttempts(w, r, wait)
		return
	}

	u, err := s.users.ByUsername(r.Context(), form.Username)
	switch {
	case errors.Is(err, user.ErrNotFound) || form.Username == "":
		// Same work as a real check, so timing does not reveal the username.
		hctx, cancel := s.hashContext(r)
		defer cancel()
		if err := s.hasher.VerifyDummy(hctx, pw); errors.Is(err, password.ErrBusy) {
			s.unavailable(w, r, err)
			return
		}
		s.record(r, audit.Event{Action: audit.LoginFailed, TargetName: form.Username, Detail: "unknown user"})
		s.metrics.Login("failed")
		s.countFailure(r, s.loginPolicy, accountKey, clientKey)
		fail(http.StatusUnauthorized, loginFailedMessage)
		return
	case err != nil:
		s.unavailable(w, r, err)
		return
	}
	hctx, cancel := s.hashContext(r)
	defer cancel()
	ok, rehash, err := s.hasher.Verify(hctx, pw, u.PasswordHash)
	switch {
	case errors.Is(err, password.ErrBusy):
		s.unavailable(w, r, err)
		return
	case errors.Is(err, password.ErrTooLong):
		ok = false
	case err != nil:
		s.serverError(w, r, err)
		return
	}
	if !ok {
		s.record(r, audit.Event{Action: audit.LoginFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "wrong password"})
		s.metrics.Login("failed")
		s.countFailure(r, s.loginPolicy, accountKey, clientKey)
		fail(http.StatusUnauthorized, loginFailedMessage)
		return
	}
	if u.Disabled {
		s.record(r, audit.Event{Action: audit.LoginFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "account disabled"})
		s.metrics.Login("disabled")
		fail(http.StatusForbidden, "This account is disabled. Ask an administrator to enable it.")
		return
	}
	if err := s.throttle.Reset(r.Context(), accountKey); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "throttle reset failed", slog.Any("error", err))
	}
	if rehash {
		s.upgradeHash(r, u, pw)
	}
	if end := r.PostForm.Get("end_session"); end != "" {
		if _, err := s.sessions.Revoke(r.Context(), u.ID, end, session.EndedFromOtherDevice); err != nil {
			s.unavailable(w, r, err)
			return
		}
		s.record(r, audit.Event{ActorID: u.ID, ActorName: u.Username, Action: audit.SessionRevoked, TargetUserID: u.ID, TargetName: u.Username, Detail: "to sign in under the session limit"})
	}
	s.signIn(w, r, u, form.Next)
}

// signIn starts a session for u and redirects to next. Under the reject
// policy a user at the limit is shown their sessions to end one instead. It
// reports whether the user is now signed in.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, u user.User, next string) bool {
	client := session.Client{IP: s.clientIP.ClientIP(r), Device: device.Label(r.UserAgent())}
	evicted, err := s.sessions.Login(r.Context(), session.Identity{UserID: u.ID, Username: u.Username, Role: string(u.Role)}, client)
	switch {
	case errors.Is(err, session.ErrTooManySessions):
		s.record(r, audit.Event{ActorID: u.ID, ActorName: u.Username, Action: audit.LoginFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "session limit reached"})
		s.metrics.Login("limited")
		s.renderTooMany(w, r, u, next)
		return false
	case err != nil:
		s.unavailable(w, r, err)
		return false
	}
	s.record(r, audit.Event{Action: audit.LoginSucceeded, TargetUserID: u.ID, TargetName: u.Username, Detail: client.Device})
	s.metrics.Login("succeeded")
	if evicted > 0 {
		s.record(r, audit.Event{Action: audit.SessionEvicted, TargetUserID: u.ID, TargetName: u.Username,
			Detail: strconv.Itoa(evicted) + " oldest session(s) signed out: too many devices"})
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "login succeeded", slog.Int64("user_id", u.ID), slog.Int("evicted", evicted))
	http.Redirect(w, r, next, http.StatusSeeOther)
	return true
}

// tooManyData is the content of the session-limit page.
type tooManyData struct {
	Username string
	Next     string
	Sessions []session.Record
}

// renderTooMany shows a user at the session limit their sessions, so they
// can sign one out and go on instead of meeting a dead end. The password is
// asked again with the choice: nothing about the half-finished sign-in is
// kept anywhere.
func (s *Server) renderTooMany(w http.ResponseWriter, r *http.Request, u user.User, next string) {
	recs, err := s.sessions.ListUser(r.Context(), u.ID)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	d := s.newPageData(r, "Too many devices")
	d.Data = tooManyData{Username: u.Username, Next: next, Sessions: recs}
	s.render(w, r, http.StatusConflict, "too_many", d)
}

// upgradeHash re-hashes a password whose stored parameters are weaker than
// the current ones. A failure is logged and does not stop the sign-in.
func (s *Server) upgradeHash(r *http.Request, u user.User, pw string) {
	hctx, cancel := s.hashContext(r)
	defer cancel()
	hash, err := s.hasher.Hash(hctx, pw)
	if err == nil {
		err = s.users.SetPasswordHash(r.Context(), u.ID, hash)
	}
	if err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "password rehash failed", slog.Int64("user_id", u.ID), slog.Any("error", err))
	}
}

// handleLogoutGet handles "GET /logout": a confirmation form only, so a link
// or a prefetch can never sign anyone out.
func (s *Server) handleLogoutGet(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.sessions.Current(r.Context()); !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "logout", s.newPageData(r, "Sign out"))
}

// handleLogoutPost handles "POST /logout".
func (s *Server) handleLogoutPost(w http.ResponseWriter, r *http.Request) {
	if info, ok := s.sessions.Current(r.Context()); ok {
		s.record(r, audit.Event{Action: audit.Logout, TargetUserID: info.UserID, TargetName: info.Username})
		if err := s.sessions.Logout(r.Context()); err != nil {
			s.unavailable(w, r, err)
			return
		}
	}
	w.Header().Set("Clear-Site-Data", `"cache", "storage"`)
	http.Redirect(w, r, "/login?reason=signed-out", http.StatusSeeOther)
}

// handleSignupGet handles "GET /signup".
func (s *Server) handleSignupGet(w http.ResponseWriter, r *http.Request) {
	if !s.signupOpen {
		s.notFound(w, r)
		return
	}
	d := s.newPageData(r, "Create an account")
	d.Form = signupForm{}
	s.render(w, r, http.StatusOK, "signup", d)
}

// handleSignupPost handles "POST /signup": create the account, then sign in.
func (s *Server) handleSignupPost(w http.ResponseWriter, r *http.Request) {
	if !s.signupOpen {
		s.notFound(w, r)
		return
	}
	if !s.parseForm(w, r) {
		return
	}
	signupKey := "signup:ip:" + s.clientIP.ClientIP(r)
	if wait := s.waitFor(r, s.signupPolicy, signupKey); wait > 0 {
		s.metrics.Throttled("signup")
		s.tooManyAttempts(w, r, wait)
		return
	}
	form := signupForm{Username: strings.TrimSpace(r.PostForm.Get("username")), FieldErrors: map[string]string{}}
	pw, confirm := r.PostForm.Get("password"), r.PostForm.Get("confirm_password")
	if err := user.ValidateUsername(form.Username); err != nil {
		form.FieldErrors["username"] = "Use 3 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit."
	}
	switch err := password.Validate(pw); {
	case errors.Is(err, password.ErrTooShort):
		form.FieldErrors["password"] = "Use at least 8 characters."
	case errors.Is(err, password.ErrTooLong):
		form.FieldErrors["password"] = "Use at most 256 bytes."
	case !utf8.ValidString(pw):
		form.FieldErrors["password"] = "The password contains characters that are not valid text."
	}
	if pw != confirm && form.FieldErrors["password"] == "" {
		form.FieldErrors["confirm_password"] = "The two passwords do not match."
	}
	if !utf8.ValidString(form.Username) {
		form.Username = ""
	}
	rerender := func() {
		d := s.newPageData(r, "Create an account")
		d.Form = form
		s.render(w, r, http.StatusUnprocessableEntity, "signup", d)
	}
	if len(form.FieldErrors) > 0 {
		rerender()
		return
	}
	hctx, cancel := s.hashContext(r)
	defer cancel()
	hash, err := s.hasher.Hash(hctx, pw)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	u, err := s.users.Create(r.Context(), user.NewUser{Username: form.Username, PasswordHash: hash, Role: user.RoleUser})
	switch {
	case errors.Is(err, user.ErrDuplicateUsername):
		form.FieldErrors["username"] = "That username is taken. Choose another."
		rerender()
		return
	case err != nil:
		s.unavailable(w, r, err)
		return
	}
	s.countFailure(r, s.signupPolicy, signupKey) // every sign-up counts against the address
	s.record(r, audit.Event{ActorID: u.ID, ActorName: u.Username, Action: audit.SignupCompleted, TargetUserID: u.ID, TargetName: u.Username})
	s.signIn(w, r, u, "/")
}

// parseForm parses a urlencoded form body, answering 413 for an oversized
// one and 400 for a malformed one. It reports whether the handler may go on.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	err := r.ParseForm()
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		s.clientError(w, r, http.StatusRequestEntityTooLarge, "Too much data", "The form sent more data than Hallpass accepts.")
		return false
	}
	s.clientError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read. Reload the page and try again.")
	return false
}
