package web

import (
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/device"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
	"github.com/hallpass/hallpass/web"
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
	string(session.EndedEveryone):        "An administrator signed everyone out, for security. Please sign in again.",
	string(session.EndedRevoked):         "Your session was ended. Please sign in again.",
	// Not a session's end: a sign-in whose second step took too long.
	signInExpiredReason: "Your sign-in took too long or could not be finished. Please sign in again.",
}

// signInExpiredReason is the login page's ?reason= after a half-finished
// sign-in expired (or its cookie was missing or tampered with).
const signInExpiredReason = "signin-expired"

type loginForm struct {
	Username string
	Next     string
	Error    string
	// Remember is the "keep me signed in" box, ticked again when the form
	// comes back with an error.
	Remember bool
}

type signupForm struct {
	Username    string
	Error       string
	FieldErrors map[string]string
}

// actor is who sends the request, as the account service sees them: the
// signed-in user if any, with the client's address and device.
func (s *Server) actor(r *http.Request) account.Actor {
	a := account.Actor{IP: s.ClientIP.ClientIP(r), Device: device.Label(r.UserAgent())}
	if c, err := r.Cookie(s.deviceCookieName()); err == nil {
		a.DeviceToken = c.Value
	}
	if info, ok := s.Sessions.Current(r.Context()); ok {
		a.UserID, a.Username, a.Role = info.UserID, info.Username, user.Role(info.Role)
	}
	return a
}

// deviceCookieLifetime is how long a browser keeps its device token: the
// most browsers allow (Chrome caps cookies at 400 days).
const deviceCookieLifetime = 400 * 24 * time.Hour

// deviceCookieName names the device-token cookie, with the __Host- prefix
// when cookies are Secure, like the session cookie.
func (s *Server) deviceCookieName() string {
	if s.CookieSecure {
		return "__Host-hallpass-device"
	}
	return "hallpass-device"
}

// setDeviceCookie gives the browser the device token of its sign-in. It is
// sent only with same-site requests (SameSite=Strict: sign-in is a form of
// this site) and never to scripts.
func (s *Server) setDeviceCookie(w http.ResponseWriter, token string) {
	if token == "" {
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.deviceCookieName(), Value: token, Path: "/",
		MaxAge: int(deviceCookieLifetime / time.Second), HttpOnly: true, Secure: s.CookieSecure, SameSite: http.SameSiteStrictMode,
	})
}

// handleLoginGet handles "GET /login".
func (s *Server) handleLoginGet(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if _, ok := s.Sessions.Current(r.Context()); ok {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	d := s.loginPage(r, loginForm{Next: next})
	d.Notice = endNotices[r.URL.Query().Get("reason")]
	s.render(w, r, http.StatusOK, "login", d)
}

// rememberOffer is what the sign-in form says of "keep me signed in".
type rememberOffer struct {
	RememberFor string // "30 days"
	IdleFor     string // the plain session's idle timeout, "30 minutes"
}

// loginPage is the sign-in page's data for form, with the "keep me signed
// in" box when the option is on.
func (s *Server) loginPage(r *http.Request, form loginForm) pageData {
	d := s.newPageData(r, "Sign in")
	d.Form = form
	if s.RememberFor > 0 {
		d.Data = rememberOffer{RememberFor: web.Duration(s.RememberFor), IdleFor: web.Duration(s.IdleTimeout)}
	}
	return d
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
		Remember: s.RememberFor > 0 && r.PostForm.Get("remember") == "on",
	}
	pw := r.PostForm.Get("password")
	fail := func(status int, msg string) {
		if !utf8.ValidString(form.Username) || len(form.Username) > user.MaxUsernameLength {
			form.Username = ""
		}
		form.Error = msg
		s.render(w, r, status, "login", s.loginPage(r, form))
	}
	if form.Username == "" || pw == "" {
		fail(http.StatusUnprocessableEntity, "Enter your username and password.")
		return
	}
	done, err := s.Account.SignIn(r.Context(), s.actor(r), form.Username, pw,
		account.SignInOptions{EndSession: r.PostForm.Get("end_session"), Remember: form.Remember})
	var limited *account.SessionLimitError
	switch {
	case err == nil && done.SecondFactor != nil:
		// The password was right; no session yet. The browser keeps the
		// sealed half-finished sign-in while it gives the second factor.
		s.setPendingCookie(w, done.SecondFactor)
		http.Redirect(w, r, verifyPath(form.Next), http.StatusSeeOther)
	case err == nil && done.MustEnrol:
		// Signed in, but the policy requires a second factor first.
		s.setDeviceCookie(w, done.DeviceToken)
		http.Redirect(w, r, "/account/security", http.StatusSeeOther)
	case err == nil:
		s.setDeviceCookie(w, done.DeviceToken)
		http.Redirect(w, r, form.Next, http.StatusSeeOther)
	case errors.Is(err, account.ErrBadCredentials), errors.Is(err, account.ErrDisabled):
		// A disabled account gets the answer of a wrong password: telling
		// them apart would confirm a guessed password to whoever guessed it.
		fail(http.StatusUnauthorized, loginFailedMessage)
	case errors.As(err, &limited):
		s.renderTooMany(w, r, limited, form)
	default:
		s.fail(w, r, err)
	}
}

// tooManyData is the content of the session-limit page.
type tooManyData struct {
	Username string
	Next     string
	Remember bool
	Sessions []session.Record
}

// renderTooMany shows a user at the session limit their sessions, so they
// can sign one out and go on instead of meeting a dead end. The password is
// asked again with the choice: nothing about the half-finished sign-in is
// kept anywhere.
func (s *Server) renderTooMany(w http.ResponseWriter, r *http.Request, e *account.SessionLimitError, form loginForm) {
	d := s.newPageData(r, "Too many devices")
	d.Data = tooManyData{Username: e.User.Username, Next: form.Next, Remember: form.Remember, Sessions: e.Sessions}
	s.render(w, r, http.StatusConflict, "too_many", d)
}

// handleLogoutGet handles "GET /logout": a confirmation form only, so a link
// or a prefetch can never sign anyone out.
func (s *Server) handleLogoutGet(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.Sessions.Current(r.Context()); !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "logout", s.newPageData(r, "Sign out"))
}

// handleLogoutPost handles "POST /logout".
func (s *Server) handleLogoutPost(w http.ResponseWriter, r *http.Request) {
	if err := s.Account.SignOut(r.Context(), s.actor(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	s.signedOut(w, r)
}

// signedOut sends a browser whose session just ended to the login page,
// clearing what it may have kept of the signed-in pages.
func (s *Server) signedOut(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Clear-Site-Data", `"cache", "storage"`)
	http.Redirect(w, r, "/login?reason=signed-out", http.StatusSeeOther)
}

// handleSignupGet handles "GET /signup".
func (s *Server) handleSignupGet(w http.ResponseWriter, r *http.Request) {
	if !s.SignupOpen {
		s.notFound(w, r)
		return
	}
	d := s.newPageData(r, "Create an account")
	d.Form = signupForm{}
	s.render(w, r, http.StatusOK, "signup", d)
}

// handleSignupPost handles "POST /signup": create the account, then sign in.
func (s *Server) handleSignupPost(w http.ResponseWriter, r *http.Request) {
	if !s.SignupOpen {
		s.notFound(w, r)
		return
	}
	if !s.parseForm(w, r) {
		return
	}
	form := signupForm{Username: strings.TrimSpace(r.PostForm.Get("username"))}
	_, err := s.Account.SignUp(r.Context(), s.actor(r), form.Username, r.PostForm.Get("password"), r.PostForm.Get("confirm_password"))
	var invalid *account.ValidationError
	switch {
	case err == nil:
		http.Redirect(w, r, "/", http.StatusSeeOther)
	case errors.As(err, &invalid):
		if !utf8.ValidString(form.Username) {
			form.Username = ""
		}
		form.FieldErrors = fieldErrors(invalid, nil)
		d := s.newPageData(r, "Create an account")
		d.Form = form
		s.render(w, r, http.StatusUnprocessableEntity, "signup", d)
	default:
		s.fail(w, r, err)
	}
}

// fieldErrors turns a ValidationError into the messages a form template
// shows by input name; rename maps a field to the form's own input name
// where they differ.
func fieldErrors(e *account.ValidationError, rename map[account.Field]string) map[string]string {
	out := make(map[string]string, len(e.Fields))
	for f, msg := range e.Fields {
		name, ok := rename[f]
		if !ok {
			name = string(f)
		}
		out[name] = msg
	}
	return out
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
