package web

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/requestid"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
	"github.com/hallpass/hallpass/web"
)

// retryAfterSeconds is what a 503 asks clients to wait.
const retryAfterSeconds = 5

// fail answers a request whose use case failed: the one place that maps the
// account service's errors to a status and a page. A handler deals itself
// only with the errors its own form shows (a wrong password, a field
// message); everything else comes here. A dependency failure is a 503 that
// keeps the session cookie; anything unexpected is a bug, a 500 whose page
// shows the request ID its log line carries.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var throttled *account.ThrottledError
	switch {
	case errors.Is(err, account.ErrUnavailable):
		s.unavailable(w, r, err)
	case errors.As(err, &throttled):
		s.tooManyAttempts(w, r, throttled)
	case errors.Is(err, account.ErrNotFound):
		s.notFound(w, r)
	case errors.Is(err, account.ErrForbidden):
		s.clientError(w, r, http.StatusForbidden, "Not allowed", "Your account cannot do this.")
	case errors.Is(err, account.ErrOwnAccount):
		s.clientError(w, r, http.StatusConflict, "Not allowed", "You cannot disable your own account: ask another administrator.")
	case errors.Is(err, account.ErrLastAdmin):
		s.clientError(w, r, http.StatusConflict, "Not allowed",
			"This is the last enabled administrator: enable or create another administrator first.")
	case errors.Is(err, account.ErrRevokedInFlight):
		s.clientError(w, r, http.StatusConflict, "Sign in again",
			"This account was signed out everywhere (its password changed, it was disabled, or an administrator ended its sessions) while you were signing in. Sign in again.")
	case errors.Is(err, account.ErrNotSignedIn):
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	case errors.Is(err, account.ErrReauthRequired):
		s.sudoPrompt(w, r, http.StatusForbidden, "")
	case errors.Is(err, account.ErrMustEnrol):
		http.Redirect(w, r, "/account/security", http.StatusSeeOther)
	case errors.Is(err, account.ErrSignInExpired):
		s.signInExpired(w, r)
	case errors.Is(err, account.ErrFactorsOff):
		s.notFound(w, r)
	case errors.Is(err, account.ErrFactorRequired):
		s.clientError(w, r, http.StatusConflict, "A second factor is required",
			"Your account must keep a second factor. Add a passkey or another authenticator app before removing this one.")
	case errors.Is(err, account.ErrBadCode):
		s.clientError(w, r, http.StatusUnauthorized, "Incorrect code", badCodeMessage)
	default:
		s.serverError(w, r, err)
	}
}

// signInExpired sends a browser whose half-finished sign-in is missing,
// expired or forged back to the sign-in page, keeping where it was going.
func (s *Server) signInExpired(w http.ResponseWriter, r *http.Request) {
	s.clearPendingCookie(w)
	next := r.PostForm.Get("next")
	if next == "" {
		next = r.URL.Query().Get("next")
	}
	q := url.Values{"reason": {signInExpiredReason}}
	if next = safeNext(next); next != "/" {
		q.Set("next", next)
	}
	http.Redirect(w, r, "/login?"+q.Encode(), http.StatusSeeOther)
}

// serverError logs err with its chain and answers a 500 page that shows
// the request ID, so a report can be matched to the log. The error text
// never reaches the visitor.
func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.Logger.LogAttrs(r.Context(), slog.LevelError, "server error",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong",
		"Hallpass hit an unexpected error. It has been logged; please try again.")
}

// unavailable answers 503 when a dependency (session store, database,
// password hashing capacity) cannot serve the request right now. The session
// cookie is left alone: a store outage is not a sign-out. It is also the
// session middleware's answer to a store that fails on load or save.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	level := slog.LevelWarn
	if ue := (*account.UnavailableError)(nil); errors.As(err, &ue) && ue.Dependency == account.DepHashing {
		level = slog.LevelInfo // a sign-in flood, not an outage
	}
	s.Logger.LogAttrs(r.Context(), level, "dependency unavailable",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	if sessionWriteRefused(err) {
		// The session store takes no writes (its primary is being
		// replaced) or cannot confirm them, while pages that only read a
		// session may still be served: say what is paused.
		s.errorPage(w, r, http.StatusServiceUnavailable, "Temporarily unavailable", sessionWritesPaused)
		return
	}
	s.errorPage(w, r, http.StatusServiceUnavailable, "Temporarily unavailable",
		"Hallpass cannot reach one of its services right now. You have not been signed out; please try again in a few seconds.")
}

// sessionWriteRefused reports whether err is the session store refusing
// or failing to confirm a write: no primary takes writes, no replica
// confirmed one, or the sign-in attempt counters, which live in the same
// Redis and are written before any sign-in, could not be counted.
func sessionWriteRefused(err error) bool {
	var ue *account.UnavailableError
	return errors.Is(err, session.ErrNoPrimary) || errors.Is(err, session.ErrNotReplicated) ||
		errors.As(err, &ue) && ue.Dependency == account.DepThrottle
}

// sessionWritesPaused is the 503 page's message for a sign-in, sign-out or
// other change to sessions that the session store could not take or
// confirm: unlike a page view, such a change must not be answered as done
// when it may be lost.
const sessionWritesPaused = "Signing in, signing out and ending sessions are paused while Hallpass's session store recovers, " +
	"so what you asked for could not be confirmed. You have not been signed out; please try again in a few seconds."

// tooManyAttempts answers 429 with Retry-After and a page that says how
// long to wait.
func (s *Server) tooManyAttempts(w http.ResponseWriter, r *http.Request, e *account.ThrottledError) {
	secs := int(math.Ceil(e.Wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.clientError(w, r, http.StatusTooManyRequests, "Too many attempts",
		"There were too many attempts from here or for this account. Wait "+humanWait(secs)+" and try again.")
}

// humanWait says a number of seconds in words.
func humanWait(secs int) string {
	switch {
	case secs <= 1:
		return "a second"
	case secs < 90:
		return strconv.Itoa(secs) + " seconds"
	default:
		return web.Plural((secs+59)/60, "minute")
	}
}

// clientError answers a 4xx page with a message meant for the visitor.
func (s *Server) clientError(w http.ResponseWriter, r *http.Request, status int, heading, message string) {
	s.errorPage(w, r, status, heading, message)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.clientError(w, r, http.StatusNotFound, "Page not found", "There is no page at this address.")
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	s.clientError(w, r, http.StatusMethodNotAllowed, "Method not allowed", "This page does not accept "+r.Method+" requests.")
}

// errorPage renders the error template, with the account header when the
// request carries a signed-in session (never for a 503: the session may be
// what failed), and the request ID on a 5xx.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, message string) {
	data := pageData{Title: heading, Replica: s.ReplicaID, Status: status, Heading: heading, Message: message, Path: r.URL.Path,
		FactorsOn: s.Account != nil && s.Account.FactorsEnabled()}
	if status >= 500 {
		data.RequestID = requestid.From(r.Context())
	}
	if status != http.StatusServiceUnavailable {
		if info, ok := s.Sessions.Current(r.Context()); ok {
			data.User = &info
			data.IsAdmin = info.Role == string(user.RoleAdmin)
		}
	}
	var buf bytes.Buffer
	if t, ok := s.pages.byName["error"]; !ok || t.ExecuteTemplate(&buf, "layout", data) != nil {
		buf.Reset()
		buf.WriteString(strings.Join([]string{strconv.Itoa(status), heading, message}, " - "))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}
