package web

import (
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/hallpass/hallpass/internal/account"
)

// Sudo mode: a sensitive action whose session proved its sign-in too long
// ago (account.ErrReauthRequired) is answered with a prompt that carries
// the original request — its method, path and form fields — so that once
// the user proves it is them, the action goes on where it stopped instead
// of being lost.

// Fields of the sudo prompt. The original request's own fields travel
// under originalFieldPrefix, so none of them can collide with the
// prompt's (a TOTP enrolment's "code" and the prompt's "code", say).
const (
	sudoReturnMethod    = "return_method"
	sudoReturnTo        = "return_to"
	originalFieldPrefix = "orig."
)

// maxCarriedFields bounds the fields carried through the prompt: no form
// of Hallpass has more than a handful.
const maxCarriedFields = 32

// formField is one carried form field.
type formField struct {
	Name, Value string
}

// sudoData is the sudo prompt's content.
type sudoData struct {
	// ReturnMethod ("GET" or "POST") and ReturnTo (a path on this site)
	// are the request to repeat.
	ReturnMethod string
	ReturnTo     string
	// Fields are the original request's form fields, passwords left out.
	Fields []formField
	// TOTP: the user can prove it with an authenticator code.
	TOTP bool
	// Passkey: the user can prove it with a passkey.
	Passkey bool
	// Window is how long the proof lasts, in words.
	Window string
	Error  string
	// PasswordTried: the error is about a password, so the password form
	// is shown open even when the code form comes first.
	PasswordTried bool
}

// carriedFields are the form fields of a request worth carrying through
// the prompt: everything but passwords, which are never written into a
// page, in a stable order.
func carriedFields(form map[string][]string) []formField {
	names := make([]string, 0, len(form))
	for name := range form {
		if !strings.Contains(strings.ToLower(name), "password") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []formField
	for _, name := range names {
		for _, v := range form[name] {
			if len(out) == maxCarriedFields {
				return out
			}
			out = append(out, formField{Name: name, Value: v})
		}
	}
	return out
}

// originalRequest is the request the prompt will repeat: this request
// when it is the one refused, or the one a failed prompt carries.
func originalRequest(r *http.Request) (method, path string, fields []formField) {
	if r.URL.Path == "/sudo" {
		return returnMethod(r.PostForm.Get(sudoReturnMethod)), safeNext(r.PostForm.Get(sudoReturnTo)), promptCarried(r)
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return http.MethodGet, safeNext(r.URL.RequestURI()), nil
	}
	// A handler that never read its form leaves the body for us; one that
	// did has it parsed already. Query values are not form fields.
	_ = r.ParseForm()
	return http.MethodPost, safeNext(r.URL.RequestURI()), carriedFields(r.PostForm)
}

// promptCarried reads back the fields a sudo prompt carried.
func promptCarried(r *http.Request) []formField {
	carried := map[string][]string{}
	for name, values := range r.PostForm {
		if orig, ok := strings.CutPrefix(name, originalFieldPrefix); ok && orig != "" {
			carried[orig] = values
		}
	}
	return carriedFields(carried)
}

// returnMethod accepts the methods a prompt may repeat: GET and POST.
func returnMethod(m string) string {
	if m == http.MethodPost {
		return http.MethodPost
	}
	return http.MethodGet
}

// sudoPrompt asks the signed-in user to prove it is them, carrying the
// request to repeat; errMsg says why an earlier try failed.
func (s *Server) sudoPrompt(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	method, path, fields := originalRequest(r)
	data := sudoData{ReturnMethod: method, ReturnTo: path, Fields: fields, Error: errMsg,
		Window:        humanWait(int(s.Account.SudoWindow().Seconds())),
		PasswordTried: r.URL.Path == "/sudo" && r.PostForm.Get("password") != ""}
	if s.Account.FactorsEnabled() {
		sec, err := s.Account.MySecurity(r.Context(), s.actor(r))
		if err != nil && !errors.Is(err, account.ErrFactorsOff) {
			s.fail(w, r, err)
			return
		}
		data.TOTP, data.Passkey = sec.TOTP, sec.Summary.Passkeys > 0
	}
	d := s.newPageData(r, "Confirm it is you")
	d.Data = data
	s.render(w, r, status, "sudo", d)
}

// handleSudoPost handles "POST /sudo": the password or an authenticator
// code proves the sign-in again, then the carried request goes on — a GET
// by redirect, a POST through a page that sends its form again.
func (s *Server) handleSudoPost(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	code := strings.TrimSpace(r.PostForm.Get("code"))
	pw := r.PostForm.Get("password")
	if code == "" && pw == "" {
		s.sudoPrompt(w, r, http.StatusUnprocessableEntity, "Enter your password.")
		return
	}
	err := s.Account.Reauthenticate(r.Context(), s.actor(r), pw, code)
	switch {
	case err == nil:
		method, path, fields := originalRequest(r)
		if method == http.MethodGet {
			http.Redirect(w, r, path, http.StatusSeeOther)
			return
		}
		d := s.newPageData(r, "Continue")
		d.Data = sudoData{ReturnMethod: method, ReturnTo: path, Fields: fields}
		s.render(w, r, http.StatusOK, "sudo_continue", d)
	case errors.Is(err, account.ErrBadCredentials):
		s.sudoPrompt(w, r, http.StatusUnauthorized, "Incorrect password.")
	case errors.Is(err, account.ErrBadCode):
		s.sudoPrompt(w, r, http.StatusUnauthorized, badCodeMessage)
	default:
		s.fail(w, r, err)
	}
}
