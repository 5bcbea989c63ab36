package web

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/hallpass/hallpass/internal/account"
)

// badCodeMessage is the one answer to a wrong, used or stale code: which
// of them it was is never said.
const badCodeMessage = "That code is incorrect or has already been used. Try the next code your app shows."

// pendingCookieName names the cookie that carries a half-finished sign-in
// (password right, second factor awaited), with the __Host- prefix when
// cookies are Secure, like the session cookie.
func (s *Server) pendingCookieName() string {
	if s.CookieSecure {
		return "__Host-hallpass-pending"
	}
	return "hallpass-pending"
}

// setPendingCookie gives the browser its half-finished sign-in. The token
// is sealed and expires by itself (account.SecondStepTimeout); the cookie
// lives as long, is never readable by scripts and is sent only by this
// site's own pages.
func (s *Server) setPendingCookie(w http.ResponseWriter, step *account.SecondStep) {
	http.SetCookie(w, &http.Cookie{
		Name: s.pendingCookieName(), Value: step.Token, Path: "/",
		MaxAge: int(account.SecondStepTimeout / time.Second), HttpOnly: true, Secure: s.CookieSecure, SameSite: http.SameSiteStrictMode,
	})
}

// clearPendingCookie removes the half-finished sign-in from the browser,
// once it is finished or no good any more.
func (s *Server) clearPendingCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: s.pendingCookieName(), Value: "", Path: "/",
		MaxAge: -1, HttpOnly: true, Secure: s.CookieSecure, SameSite: http.SameSiteStrictMode,
	})
}

// pendingToken is the half-finished sign-in the browser sent, or "".
func (s *Server) pendingToken(r *http.Request) string {
	if c, err := r.Cookie(s.pendingCookieName()); err == nil {
		return c.Value
	}
	return ""
}

// verifyPath is the second step's address, keeping where the sign-in goes
// next.
func verifyPath(next string) string {
	if next == "/" {
		return "/login/verify"
	}
	return "/login/verify?" + url.Values{"next": {next}}.Encode()
}

// verifyForm is the second-step form.
type verifyForm struct {
	Next  string
	Error string
}

// handleLoginVerifyGet handles "GET /login/verify": the form for the
// second factor of a sign-in whose password was right.
func (s *Server) handleLoginVerifyGet(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if _, ok := s.Sessions.Current(r.Context()); ok {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.renderVerify(w, r, http.StatusOK, verifyForm{Next: next})
}

// handleLoginVerifyPost handles "POST /login/verify": an authenticator
// code or a recovery code (the field "code") finishes the sign-in.
func (s *Server) handleLoginVerifyPost(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	form := verifyForm{Next: safeNext(r.PostForm.Get("next"))}
	token := s.pendingToken(r)
	if token == "" {
		s.fail(w, r, account.ErrSignInExpired)
		return
	}
	done, err := s.Account.CompleteSignIn(r.Context(), s.actor(r), token, r.PostForm.Get("code"))
	var limited *account.SessionLimitError
	switch {
	case err == nil:
		s.clearPendingCookie(w)
		s.setDeviceCookie(w, done.DeviceToken)
		if done.Method == account.MethodPasswordRecovery {
			// The user has lost their authenticator, or will soon run out
			// of codes: the security page says how many are left.
			http.Redirect(w, r, "/account/security?used=recovery", http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, form.Next, http.StatusSeeOther)
	case errors.Is(err, account.ErrBadCode):
		form.Error = badCodeMessage
		s.renderVerify(w, r, http.StatusUnauthorized, form)
	case errors.Is(err, account.ErrDisabled):
		// The answer of a wrong password at the first step, as there.
		s.clearPendingCookie(w)
		s.render(w, r, http.StatusUnauthorized, "login", s.loginPage(r, loginForm{Next: form.Next, Error: loginFailedMessage}))
	case errors.As(err, &limited):
		// Under the reject limit policy: choose a device to sign out, and
		// give the password (and the code) again.
		s.clearPendingCookie(w)
		s.renderTooMany(w, r, limited, loginForm{Next: form.Next})
	default:
		s.fail(w, r, err)
	}
}

// verifyData is the second-step page's content: which factors the account
// can finish with.
type verifyData struct {
	account.SecondStep
}

// renderVerify shows the second-step form for the browser's half-finished
// sign-in; one that is missing or no good goes back to the sign-in page.
func (s *Server) renderVerify(w http.ResponseWriter, r *http.Request, status int, form verifyForm) {
	token := s.pendingToken(r)
	if token == "" {
		s.fail(w, r, account.ErrSignInExpired)
		return
	}
	step, err := s.Account.PendingSignIn(r.Context(), token)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	step.Token = "" // the cookie carries it; the page need not
	d := s.newPageData(r, "Two-step verification")
	d.Form = form
	d.Data = verifyData{SecondStep: step}
	s.render(w, r, status, "login_verify", d)
}
