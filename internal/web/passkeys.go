package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/requestid"
)

// The passkey endpoints speak JSON with web/static/passkey.js: it asks for
// a prompt's options, hands them to navigator.credentials, and posts the
// authenticator's answer back with the sealed state it was given. Errors
// are JSON too ({"error": "…"}), with the status failJSON picks.

// passkeyRequest is what passkey.js posts: the options requests use Mode,
// Remember and Name; the answers State, Credential and Next.
type passkeyRequest struct {
	// Mode is "second" on the second step of a password sign-in (the
	// pending sign-in cookie names the account), "" for a sign-in without
	// a username.
	Mode     string `json:"mode"`
	Remember bool   `json:"remember"`
	// Name is a new passkey's name.
	Name  string `json:"name"`
	State string `json:"state"`
	// Credential is the PublicKeyCredential, as JSON, handed to the
	// account service as it came.
	Credential json.RawMessage `json:"credential"`
	// Next is where to go once signed in (or once sudo mode is on).
	Next string `json:"next"`
}

// passkeyOptions answers an options request.
type passkeyOptions struct {
	Options json.RawMessage `json:"options"`
	State   string          `json:"state"`
}

// passkeyDone answers a finished ceremony: where to go, and for the first
// factor of an account its recovery codes, to show once.
type passkeyDone struct {
	Redirect      string   `json:"redirect"`
	RecoveryCodes []string `json:"recoveryCodes,omitempty"`
}

// modeSecond is passkeyRequest.Mode on the second step of a sign-in.
const modeSecond = "second"

// pendingFor returns the pending sign-in token a request in mode speaks
// for: none for a sign-in without a username. ErrSignInExpired if the
// second step has lost its cookie.
func (s *Server) pendingFor(r *http.Request, mode string) (string, error) {
	if mode != modeSecond {
		return "", nil
	}
	token := s.pendingToken(r)
	if token == "" {
		return "", account.ErrSignInExpired
	}
	return token, nil
}

// handlePasskeyLoginOptions handles "POST /login/passkey/options".
func (s *Server) handlePasskeyLoginOptions(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeJSON(w, r)
	if !ok {
		return
	}
	pending, err := s.pendingFor(r, req.Mode)
	if err != nil {
		s.failJSON(w, r, err)
		return
	}
	c, err := s.Account.BeginPasskeySignIn(r.Context(), s.actor(r), pending,
		account.SignInOptions{Remember: s.RememberFor > 0 && req.Remember})
	if err != nil {
		s.failJSON(w, r, err)
		return
	}
	s.encodeJSON(w, r, http.StatusOK, passkeyOptions{Options: c.Options, State: c.State})
}

// handlePasskeyLogin handles "POST /login/passkey": signed in with a
// passkey, alone or after the password.
func (s *Server) handlePasskeyLogin(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeJSON(w, r)
	if !ok {
		return
	}
	pending, err := s.pendingFor(r, req.Mode)
	if err != nil {
		s.failJSON(w, r, err)
		return
	}
	done, err := s.Account.FinishPasskeySignIn(r.Context(), s.actor(r), pending, req.State, req.Credential)
	if err != nil {
		s.failJSON(w, r, err)
		return
	}
	s.setDeviceCookie(w, done.DeviceToken)
	if pending != "" {
		s.clearPendingCookie(w)
	}
	s.encodeJSON(w, r, http.StatusOK, passkeyDone{Redirect: safeNext(req.Next)})
}

// handlePasskeyRegisterOptions handles "POST /account/passkeys/options".
// Posted as a plain form, it is the way through the sudo prompt: adding a
// passkey needs a fresh proof of sign-in, which the prompt asks for, carrying
// this form; once proven, the browser comes back to the security page to
// add the passkey with one more click (the authenticator wants a click of
// its own anyway).
func (s *Server) handlePasskeyRegisterOptions(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r) {
		if !s.parseForm(w, r) {
			return
		}
		if _, err := s.Account.BeginPasskeyRegistration(r.Context(), s.actor(r), r.PostForm.Get("name")); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/account/security?done=confirmed#passkeys", http.StatusSeeOther)
		return
	}
	req, ok := s.decodeJSON(w, r)
	if !ok {
		return
	}
	c, err := s.Account.BeginPasskeyRegistration(r.Context(), s.actor(r), req.Name)
	if err != nil {
		s.failJSON(w, r, err)
		return
	}
	s.encodeJSON(w, r, http.StatusOK, passkeyOptions{Options: c.Options, State: c.State})
}

// handlePasskeyRegister handles "POST /account/passkeys".
func (s *Server) handlePasskeyRegister(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeJSON(w, r)
	if !ok {
		return
	}
	codes, err := s.Account.FinishPasskeyRegistration(r.Context(), s.actor(r), req.State, req.Credential)
	if err != nil {
		s.failJSON(w, r, err)
		return
	}
	s.encodeJSON(w, r, http.StatusOK, passkeyDone{Redirect: "/account/security?done=passkey-added", RecoveryCodes: codes})
}

// handlePasskeyRemove handles "POST /account/passkeys/{id}/remove", a plain
// form on the security page.
func (s *Server) handlePasskeyRemove(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.notFound(w, r)
		return
	}
	if err := s.Account.RemovePasskey(r.Context(), s.actor(r), id); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/account/security?done=passkey-removed", http.StatusSeeOther)
}

// handlePasskeySudoOptions handles "POST /sudo/passkey/options".
func (s *Server) handlePasskeySudoOptions(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.decodeJSON(w, r); !ok {
		return
	}
	c, err := s.Account.BeginPasskeySudo(r.Context(), s.actor(r))
	if err != nil {
		s.failJSON(w, r, err)
		return
	}
	s.encodeJSON(w, r, http.StatusOK, passkeyOptions{Options: c.Options, State: c.State})
}

// handlePasskeySudo handles "POST /sudo/passkey".
func (s *Server) handlePasskeySudo(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeJSON(w, r)
	if !ok {
		return
	}
	if err := s.Account.FinishPasskeySudo(r.Context(), s.actor(r), req.State, req.Credential); err != nil {
		s.failJSON(w, r, err)
		return
	}
	s.encodeJSON(w, r, http.StatusOK, passkeyDone{Redirect: safeNext(req.Next)})
}

// isJSON reports whether the request's body is JSON (passkey.js) rather
// than a form.
func isJSON(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
}

// decodeJSON reads a passkey request body: 413 if too large, 400 if it is
// not JSON. It reports whether the handler may go on.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request) (passkeyRequest, bool) {
	var req passkeyRequest
	err := json.NewDecoder(r.Body).Decode(&req)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return req, true
	case errors.As(err, &tooBig):
		s.jsonError(w, r, http.StatusRequestEntityTooLarge, "The request was too large.")
	default:
		s.jsonError(w, r, http.StatusBadRequest, "The request could not be read. Reload the page and try again.")
	}
	return passkeyRequest{}, false
}

// encodeJSON answers v as JSON. It is marshalled first, so a failure is a
// clean 500.
func (s *Server) encodeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// jsonFailure is the body of every JSON error.
type jsonFailure struct {
	// Error is a message for the person, shown by passkey.js.
	Error string `json:"error"`
	// Sudo: confirm it is you (the sudo prompt), then try again.
	Sudo bool `json:"sudo,omitempty"`
	// Field names the input Error speaks of, for a form.
	Field string `json:"field,omitempty"`
}

func (s *Server) jsonError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.encodeJSON(w, r, status, jsonFailure{Error: msg})
}

// failJSON is fail for the JSON endpoints: the account service's errors
// mapped to a status and a message. 400: the request is bad or stale; 401:
// the passkey or the account was refused; 403: sudo mode is needed; 409:
// the state of the account stands in the way; 429: throttled; 503: a
// dependency is down. Anything unexpected is a logged 500 with the request
// ID; no error text reaches the browser.
func (s *Server) failJSON(w http.ResponseWriter, r *http.Request, err error) {
	var (
		throttled *account.ThrottledError
		invalid   *account.ValidationError
	)
	switch {
	case errors.Is(err, account.ErrUnavailable):
		s.Logger.LogAttrs(r.Context(), slog.LevelWarn, "dependency unavailable",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		s.jsonError(w, r, http.StatusServiceUnavailable, "Hallpass cannot reach one of its services right now. Try again in a few seconds.")
	case errors.As(err, &throttled):
		secs := int(math.Ceil(throttled.Wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.jsonError(w, r, http.StatusTooManyRequests, "There were too many attempts from here or for this account. Wait "+humanWait(secs)+" and try again.")
	case errors.As(err, &invalid):
		for f, msg := range invalid.Fields {
			s.encodeJSON(w, r, http.StatusBadRequest, jsonFailure{Error: msg, Field: string(f)})
			return
		}
		s.jsonError(w, r, http.StatusBadRequest, "The request could not be read. Reload the page and try again.")
	case errors.Is(err, account.ErrInvalid):
		s.jsonError(w, r, http.StatusBadRequest, "Your browser's answer could not be read. Try again.")
	case errors.Is(err, account.ErrPasskeyExpired):
		s.jsonError(w, r, http.StatusBadRequest, "The passkey prompt took too long. Try again.")
	case errors.Is(err, account.ErrSignInExpired):
		s.jsonError(w, r, http.StatusBadRequest, "The sign-in took too long. Start again from the sign-in page.")
	case errors.Is(err, account.ErrPasskeyUnknown):
		s.jsonError(w, r, http.StatusUnauthorized, "This passkey is not registered with Hallpass (it may have been removed). Sign in with your password.")
	case errors.Is(err, account.ErrPasskeyRefused):
		s.jsonError(w, r, http.StatusUnauthorized, "The passkey was not accepted. Try again, or sign in another way.")
	case errors.Is(err, account.ErrDisabled):
		s.jsonError(w, r, http.StatusUnauthorized, "This account is disabled.")
	case errors.Is(err, account.ErrNotSignedIn):
		s.jsonError(w, r, http.StatusUnauthorized, "You are not signed in any more. Sign in again.")
	case errors.Is(err, account.ErrReauthRequired):
		s.encodeJSON(w, r, http.StatusForbidden, jsonFailure{Error: "Confirm it is you first, then try again.", Sudo: true})
	case errors.Is(err, account.ErrMustEnrol):
		s.jsonError(w, r, http.StatusForbidden, "Add a second factor first.")
	case errors.Is(err, account.ErrForbidden):
		s.jsonError(w, r, http.StatusForbidden, "Your account cannot do this.")
	case errors.Is(err, account.ErrFactorsOff):
		s.jsonError(w, r, http.StatusNotFound, "Passkeys are not enabled on this server.")
	case errors.Is(err, account.ErrNotFound):
		s.jsonError(w, r, http.StatusNotFound, "This account has no passkey.")
	case errors.Is(err, account.ErrPasskeyRegistered):
		s.jsonError(w, r, http.StatusConflict, "This passkey is already registered.")
	case errors.Is(err, account.ErrFactorRequired):
		s.jsonError(w, r, http.StatusConflict, "Your account must keep a second factor: add another before removing this one.")
	case errors.Is(err, account.ErrTooManySessions):
		s.jsonError(w, r, http.StatusConflict, "You are signed in on too many devices. Sign in with your password to choose one to sign out.")
	case errors.Is(err, account.ErrRevokedInFlight):
		s.jsonError(w, r, http.StatusConflict, "This account was signed out everywhere while you were signing in. Sign in again.")
	default:
		s.Logger.LogAttrs(r.Context(), slog.LevelError, "server error",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
		s.jsonError(w, r, http.StatusInternalServerError, "Hallpass hit an unexpected error (request "+requestid.From(r.Context())+"). Please try again.")
	}
}
