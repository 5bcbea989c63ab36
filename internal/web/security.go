package web

import (
	"errors"
	"html/template"
	"net/http"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/web"
)

// securityNotices confirm what a change of factors did, after its redirect.
var securityNotices = map[string]string{
	"totp":         "Your authenticator app is set up. Sign-ins now ask for its code after the password.",
	"totp-removed": "Your authenticator app was removed.",
	// Passkeys (passkeys.go).
	"passkey-added":   "Your passkey was added. You can sign in with it, without your password.",
	"passkey-removed": "The passkey was removed.",
	"confirmed":       "Confirmed. You can add your passkey now.",
}

// securityData is the security page's content.
type securityData struct {
	account.Security
	// MethodLabel says how this session signed in.
	MethodLabel string
	// ProofUntil is when this session's sudo mode ends; HasProof is
	// false when it has ended.
	ProofUntil timeView
	HasProof   bool
	// UsedRecovery: the user just signed in with a recovery code.
	UsedRecovery bool
	// RecoveryCodeCount is how many codes a fresh set has.
	RecoveryCodeCount int
}

// handleAccountSecurity handles "GET /account/security": the account's
// second factors, and what this session proved.
func (s *Server) handleAccountSecurity(w http.ResponseWriter, r *http.Request) {
	sec, err := s.Account.MySecurity(r.Context(), s.actor(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data := securityData{
		Security:          sec,
		MethodLabel:       account.MethodLabel(sec.Method),
		HasProof:          !sec.ProofUntil.IsZero(),
		UsedRecovery:      r.URL.Query().Get("used") == "recovery",
		RecoveryCodeCount: account.RecoveryCodeCount,
	}
	if data.HasProof {
		data.ProofUntil = newTimeView(sec.ProofUntil, s.Now())
	}
	d := s.newPageData(r, "Security")
	d.Notice = securityNotices[r.URL.Query().Get("done")]
	d.Data = data
	s.render(w, r, http.StatusOK, "account_security", d)
}

// totpData is the enrolment page's content.
type totpData struct {
	// QRCode is the otpauth URL as a PNG data: URL, made by the account
	// service itself, hence trusted as an image source.
	QRCode template.URL
	// Secret is the base32 secret in groups of four, for typing.
	Secret string
	// Replacing: the account has an authenticator app already, which the
	// new one replaces once confirmed.
	Replacing bool
}

// totpForm is the enrolment's confirmation form.
type totpForm struct {
	Error string
}

// handleTOTPGet handles "GET /account/totp": the secret of an
// authenticator app being enrolled, as a QR code and as text, and the form
// that confirms it. The enrolment begun earlier is shown again if there is
// one, so reloading the page does not change the secret just scanned;
// ?new=1 starts over with a fresh secret.
func (s *Server) handleTOTPGet(w http.ResponseWriter, r *http.Request) {
	var (
		e   account.TOTPEnrolment
		err error
	)
	if r.URL.Query().Get("new") == "" {
		e, err = s.Account.PendingTOTP(r.Context(), s.actor(r))
	}
	if r.URL.Query().Get("new") != "" || errors.Is(err, account.ErrNotFound) {
		e, err = s.Account.BeginTOTP(r.Context(), s.actor(r))
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderTOTP(w, r, http.StatusOK, e, totpForm{})
}

// renderTOTP shows the enrolment page for e.
func (s *Server) renderTOTP(w http.ResponseWriter, r *http.Request, status int, e account.TOTPEnrolment, form totpForm) {
	sec, err := s.Account.MySecurity(r.Context(), s.actor(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := s.newPageData(r, "Set up an authenticator app")
	d.Form = form
	//nolint:gosec // The data: URL is the account service's own PNG, not client input.
	d.Data = totpData{QRCode: template.URL(e.QRCode), Secret: e.Secret, Replacing: sec.TOTP}
	s.render(w, r, status, "account_totp", d)
}

// handleTOTPPost handles "POST /account/totp": a code from the app
// confirms the enrolment. The account's first factor comes with recovery
// codes, shown once on the answer to this request and never again.
func (s *Server) handleTOTPPost(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	codes, err := s.Account.ConfirmTOTP(r.Context(), s.actor(r), r.PostForm.Get("code"))
	switch {
	case err == nil && len(codes) > 0:
		s.renderRecoveryCodes(w, r, codes, true)
	case err == nil:
		http.Redirect(w, r, "/account/security?done=totp", http.StatusSeeOther)
	case errors.Is(err, account.ErrBadCode):
		e, perr := s.Account.PendingTOTP(r.Context(), s.actor(r))
		if perr != nil {
			s.fail(w, r, perr)
			return
		}
		s.renderTOTP(w, r, http.StatusUnprocessableEntity, e,
			totpForm{Error: "That code does not match. Check the app's clock, and enter the code it shows now."})
	case errors.Is(err, account.ErrNotFound):
		// Nothing being enrolled: confirmed meanwhile in another tab, or
		// never begun.
		http.Redirect(w, r, "/account/security", http.StatusSeeOther)
	default:
		s.fail(w, r, err)
	}
}

// handleTOTPRemove handles "POST /account/totp/remove".
func (s *Server) handleTOTPRemove(w http.ResponseWriter, r *http.Request) {
	err := s.Account.RemoveTOTP(r.Context(), s.actor(r))
	switch {
	case err == nil, errors.Is(err, account.ErrNotFound):
		http.Redirect(w, r, "/account/security?done=totp-removed", http.StatusSeeOther)
	default:
		s.fail(w, r, err)
	}
}

// handleRecoveryCodesRegenerate handles "POST /account/recovery-codes": a
// fresh set replaces the old one, shown once.
func (s *Server) handleRecoveryCodesRegenerate(w http.ResponseWriter, r *http.Request) {
	codes, err := s.Account.RegenerateRecoveryCodes(r.Context(), s.actor(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderRecoveryCodes(w, r, codes, false)
}

// recoveryCodesData is the content of the page that shows recovery codes.
type recoveryCodesData struct {
	Codes []string
	// Enrolled: the codes come with a factor just added.
	Enrolled bool
	// Count is the number of codes, in words.
	Count string
}

// renderRecoveryCodes shows fresh recovery codes, once: they are stored
// only hashed, and the page is never cached (noStore).
func (s *Server) renderRecoveryCodes(w http.ResponseWriter, r *http.Request, codes []string, enrolled bool) {
	d := s.newPageData(r, "Your recovery codes")
	d.Data = recoveryCodesData{Codes: codes, Enrolled: enrolled, Count: web.Plural(len(codes), "code")}
	s.render(w, r, http.StatusOK, "recovery_codes", d)
}
