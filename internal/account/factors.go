package account

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/factor"
	"github.com/hallpass/hallpass/internal/user"
)

// TOTP parameters: what every authenticator app understands (RFC 6238's
// defaults), with a 160-bit secret as RFC 4226 recommends.
const (
	totpPeriod      = 30 * time.Second
	totpDigits      = otp.DigitsSix
	totpSecretBytes = 20
	// totpSkew accepts the codes of one period either side of now, for
	// clocks that drift and users who type slowly.
	totpSkew = 1
)

// Recovery codes: RecoveryCodeCount codes of 16 base32 characters (80
// bits each) shown as four groups of four. 80 bits make a plain SHA-256
// enough to store them: nobody can enumerate 2^80 candidates from a
// database dump, unlike a password, which is why no slow hash is needed.
const (
	RecoveryCodeCount   = 10
	recoveryCodeLetters = 16
)

var (
	recoveryAlphabet = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	totpEncoding     = base32.StdEncoding.WithPadding(base32.NoPadding)
)

// factorsOn fails with ErrFactorsOff when second factors are not set up.
func (s *Service) factorsOn() error {
	if s.factors == nil || s.box == nil {
		return ErrFactorsOff
	}
	return nil
}

// checkCode checks a code of u: six digits are an authenticator code,
// sixteen letters (with or without dashes and spaces) a recovery code when
// recovery allows one. Any mismatch, replay or unknown shape is ErrBadCode.
func (s *Service) checkCode(ctx context.Context, u user.User, code string, recovery bool) (method string, left int, err error) {
	c := normalizeCode(code)
	switch {
	case len(c) == int(totpDigits) && allDigits(c):
		secret, err := s.factors.TOTP(ctx, u.ID)
		switch {
		case errors.Is(err, factor.ErrNotFound):
			return "", 0, ErrBadCode
		case err != nil:
			return "", 0, unavailable(DepDatabase, err)
		}
		now := s.now()
		step, ok := matchTOTP(secret, c, now)
		if !ok {
			return "", 0, ErrBadCode
		}
		// Accepted once: of two requests with the same code — a replay, or
		// the same code sent twice at once to two replicas — one wins.
		fresh, err := s.factors.UseTOTPStep(ctx, u.ID, step, now)
		switch {
		case errors.Is(err, factor.ErrNotFound):
			return "", 0, ErrBadCode
		case err != nil:
			return "", 0, unavailable(DepDatabase, err)
		case !fresh:
			return "", 0, ErrBadCode
		}
		return MethodPasswordTOTP, 0, nil
	case recovery && len(c) == recoveryCodeLetters:
		used, left, err := s.factors.UseRecoveryCode(ctx, u.ID, hashRecoveryCode(c), s.now())
		switch {
		case err != nil:
			return "", 0, unavailable(DepDatabase, err)
		case !used:
			return "", 0, ErrBadCode
		}
		return MethodPasswordRecovery, left, nil
	}
	return "", 0, ErrBadCode
}

// normalizeCode drops what people type around codes (spaces, dashes) and
// lower-cases recovery codes.
func normalizeCode(code string) string {
	if len(code) > 64 {
		return ""
	}
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		if r != ' ' && r != '-' && r != '\t' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// totpStep is the TOTP time step of t.
func totpStep(t time.Time) int64 { return t.Unix() / int64(totpPeriod/time.Second) }

// matchTOTP finds the step, within the skew of now, whose code is code.
func matchTOTP(secret []byte, code string, now time.Time) (int64, bool) {
	key := totpEncoding.EncodeToString(secret)
	current := totpStep(now)
	for step := current + totpSkew; step >= current-totpSkew; step-- {
		want, err := hotp.GenerateCodeCustom(key, uint64(step), hotp.ValidateOpts{Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// hashRecoveryCode is how a normalized recovery code is stored.
func hashRecoveryCode(normalized string) []byte {
	h := sha256.Sum256([]byte("hallpass recovery code\x00" + normalized))
	return h[:]
}

// newRecoveryCodes makes RecoveryCodeCount fresh codes, as shown to the user,
// and their hashes, as stored.
func newRecoveryCodes() (codes []string, hashes [][]byte) {
	for range RecoveryCodeCount {
		raw := make([]byte, recoveryCodeLetters*5/8)
		_, _ = rand.Read(raw) // crypto/rand.Read never fails (Go 1.24+)
		c := recoveryAlphabet.EncodeToString(raw)
		codes = append(codes, c[0:4]+"-"+c[4:8]+"-"+c[8:12]+"-"+c[12:16])
		hashes = append(hashes, hashRecoveryCode(c))
	}
	return codes, hashes
}

// TOTPEnrolment is what the enrolment page shows.
type TOTPEnrolment struct {
	// Secret is the base32 secret, in groups of four, for typing into an
	// app by hand.
	Secret string
	// URL is the otpauth:// URL the QR code holds.
	URL string
	// QRCode is the QR code as a data: URL of a PNG, rendered here so no
	// third party ever sees the secret.
	QRCode string
}

// BeginTOTP starts (or restarts) enrolling an authenticator app: a fresh
// secret is kept, unconfirmed, until ConfirmTOTP. Adding a factor is a
// sensitive action (sudo mode).
func (s *Service) BeginTOTP(ctx context.Context, a Actor) (TOTPEnrolment, error) {
	u, err := s.factorOwner(ctx, a)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	secret := make([]byte, totpSecretBytes)
	_, _ = rand.Read(secret)
	if err := s.factors.PutPendingTOTP(ctx, u.ID, secret, s.now()); err != nil {
		return TOTPEnrolment{}, unavailable(DepDatabase, err)
	}
	return s.totpEnrolment(u, secret)
}

// PendingTOTP returns the enrolment begun by BeginTOTP, to show the page
// again (after a wrong code); ErrNotFound if there is none.
func (s *Service) PendingTOTP(ctx context.Context, a Actor) (TOTPEnrolment, error) {
	u, err := s.factorOwner(ctx, a)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	secret, err := s.factors.PendingTOTP(ctx, u.ID)
	switch {
	case errors.Is(err, factor.ErrNotFound):
		return TOTPEnrolment{}, ErrNotFound
	case err != nil:
		return TOTPEnrolment{}, unavailable(DepDatabase, err)
	}
	return s.totpEnrolment(u, secret)
}

func (s *Service) totpEnrolment(u user.User, secret []byte) (TOTPEnrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: s.issuer, AccountName: u.Username, Secret: secret,
		Period: uint(totpPeriod / time.Second), Digits: totpDigits, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("make TOTP key: %w", err)
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("draw TOTP QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return TOTPEnrolment{}, fmt.Errorf("encode TOTP QR code: %w", err)
	}
	plain := key.Secret()
	var grouped strings.Builder
	for i := 0; i < len(plain); i += 4 {
		if i > 0 {
			grouped.WriteByte(' ')
		}
		grouped.WriteString(plain[i:min(i+4, len(plain))])
	}
	return TOTPEnrolment{
		Secret: grouped.String(),
		URL:    key.URL(),
		QRCode: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()),
	}, nil
}

// ConfirmTOTP finishes enrolling an authenticator app with a code it shows.
// The first factor of an account comes with RecoveryCodeCount recovery
// codes, returned here to be shown once; an account that already has codes
// keeps them (codes is nil). A session that had to enrol is free to go on.
func (s *Service) ConfirmTOTP(ctx context.Context, a Actor, code string) (codes []string, err error) {
	u, err := s.factorOwner(ctx, a)
	if err != nil {
		return nil, err
	}
	secret, err := s.factors.PendingTOTP(ctx, u.ID)
	switch {
	case errors.Is(err, factor.ErrNotFound):
		return nil, ErrNotFound
	case err != nil:
		return nil, unavailable(DepDatabase, err)
	}
	account, client := factorKey(u.ID), clientKey(a.IP)
	if err := s.reserve(ctx, s.loginPolicy, account, client); err != nil {
		return nil, err
	}
	now := s.now()
	step, ok := matchTOTP(secret, normalizeCode(code), now)
	if !ok {
		s.record(ctx, a, audit.Event{Action: audit.FactorFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "enrolment: wrong code"})
		return nil, ErrBadCode
	}
	s.clearAccount(ctx, account, client)
	if err := s.factors.ConfirmTOTP(ctx, u.ID, step, now); err != nil {
		if errors.Is(err, factor.ErrNotFound) {
			return nil, ErrNotFound // confirmed meanwhile, from another tab
		}
		return nil, unavailable(DepDatabase, err)
	}
	s.record(ctx, a, audit.Event{Action: audit.FactorAdded, TargetUserID: u.ID, TargetName: u.Username, Detail: "totp"})
	codes, err = s.firstRecoveryCodes(ctx, a, u)
	if err != nil {
		return nil, err
	}
	return codes, s.enrolled(ctx)
}

// firstRecoveryCodes gives an account that has none its recovery codes.
func (s *Service) firstRecoveryCodes(ctx context.Context, a Actor, u user.User) ([]string, error) {
	sum, err := s.factors.Summary(ctx, u.ID)
	if err != nil {
		return nil, unavailable(DepDatabase, err)
	}
	if sum.RecoveryCodesLeft > 0 {
		return nil, nil
	}
	return s.replaceRecoveryCodes(ctx, a, u, "recovery codes")
}

func (s *Service) replaceRecoveryCodes(ctx context.Context, a Actor, u user.User, detail string) ([]string, error) {
	codes, hashes := newRecoveryCodes()
	if err := s.factors.ReplaceRecoveryCodes(ctx, u.ID, hashes, s.now()); err != nil {
		return nil, unavailable(DepDatabase, err)
	}
	s.record(ctx, a, audit.Event{Action: audit.FactorAdded, TargetUserID: u.ID, TargetName: u.Username, Detail: detail})
	return codes, nil
}

// enrolled lets a session that had to enrol a second factor go on.
func (s *Service) enrolled(ctx context.Context) error {
	if info, ok := s.sessions.Current(ctx); ok && info.MustEnrol {
		if err := s.sessions.ClearMustEnrol(ctx); err != nil {
			return unavailable(DepSessions, err)
		}
	}
	return nil
}

// RegenerateRecoveryCodes replaces the signed-in user's recovery codes by
// fresh ones, returned to be shown once; the old ones stop working. It
// needs a second factor to recover (ErrNotFound without one) and a fresh
// proof of sign-in.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, a Actor) ([]string, error) {
	u, err := s.factorOwner(ctx, a)
	if err != nil {
		return nil, err
	}
	sum, err := s.factors.Summary(ctx, u.ID)
	if err != nil {
		return nil, unavailable(DepDatabase, err)
	}
	if !sum.Any() {
		return nil, ErrNotFound
	}
	return s.replaceRecoveryCodes(ctx, a, u, "recovery codes regenerated")
}

// RemoveTOTP removes the signed-in user's authenticator app. When no
// factor is left, the recovery codes go too (there is nothing left to
// recover). Refused with ErrFactorRequired if the policy requires a factor
// and this is the last.
func (s *Service) RemoveTOTP(ctx context.Context, a Actor) error {
	u, err := s.factorOwner(ctx, a)
	if err != nil {
		return err
	}
	sum, err := s.factors.Summary(ctx, u.ID)
	if err != nil {
		return unavailable(DepDatabase, err)
	}
	if !sum.TOTP {
		return ErrNotFound
	}
	if sum.Passkeys == 0 && s.requireMFA.Requires(u.Role) {
		return ErrFactorRequired
	}
	if _, err := s.factors.RemoveTOTP(ctx, u.ID); err != nil {
		return unavailable(DepDatabase, err)
	}
	s.record(ctx, a, audit.Event{Action: audit.FactorRemoved, TargetUserID: u.ID, TargetName: u.Username, Detail: "totp"})
	return s.dropCodesIfNoFactor(ctx, a, u)
}

// dropCodesIfNoFactor removes the recovery codes of an account left with
// no factor.
func (s *Service) dropCodesIfNoFactor(ctx context.Context, a Actor, u user.User) error {
	sum, err := s.factors.Summary(ctx, u.ID)
	if err != nil {
		return unavailable(DepDatabase, err)
	}
	if sum.Any() || sum.RecoveryCodesLeft == 0 {
		return nil
	}
	n, err := s.factors.RemoveRecoveryCodes(ctx, u.ID)
	if err != nil {
		return unavailable(DepDatabase, err)
	}
	s.record(ctx, a, audit.Event{Action: audit.FactorRemoved, TargetUserID: u.ID, TargetName: u.Username,
		Detail: "recovery codes (" + strconv.Itoa(n) + " unused): no factor left"})
	return nil
}

// factorOwner is the signed-in user changing their own factors, after the
// checks every such change needs: factors on, a session, a fresh proof of
// sign-in (sudo mode).
func (s *Service) factorOwner(ctx context.Context, a Actor) (user.User, error) {
	if err := s.factorsOn(); err != nil {
		return user.User{}, err
	}
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return user.User{}, ErrNotSignedIn
	}
	if err := s.requireProofTo(ctx, a, true); err != nil {
		return user.User{}, err
	}
	return s.user(ctx, info.UserID)
}

// Security is what the account's security page shows.
type Security struct {
	factor.Summary
	Passkeys []factor.Passkey
	// Required: the policy requires this account to have a factor.
	Required bool
	// MustEnrol: this session may only enrol a factor.
	MustEnrol bool
	// ProofUntil is when the session's sudo mode ends (zero if over).
	ProofUntil time.Time
	// Method is how this session signed in.
	Method string
}

// MySecurity returns the signed-in user's factors and this session's state.
func (s *Service) MySecurity(ctx context.Context, a Actor) (Security, error) {
	if err := s.factorsOn(); err != nil {
		return Security{}, err
	}
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return Security{}, ErrNotSignedIn
	}
	sum, err := s.factors.Summary(ctx, info.UserID)
	if err != nil {
		return Security{}, unavailable(DepDatabase, err)
	}
	keys, err := s.factors.Passkeys(ctx, info.UserID)
	if err != nil {
		return Security{}, unavailable(DepDatabase, err)
	}
	sec := Security{Summary: sum, Passkeys: keys, Required: s.requireMFA.Requires(user.Role(info.Role)),
		MustEnrol: info.MustEnrol, Method: info.Method}
	if until := info.ReauthenticatedAt.Add(s.sudoWindow); s.now().Before(until) {
		sec.ProofUntil = until
	}
	return sec, nil
}

// FactorsEnabled reports whether second factors are set up on this server.
func (s *Service) FactorsEnabled() bool { return s.factorsOn() == nil }

// ResetFactors removes every second factor of a user (an operator helping
// someone who lost their phone and their codes): the command line, or an
// administrator with a fresh proof of sign-in. Their sessions are left
// alone; with a policy that requires a factor, their next sign-in asks
// them to enrol again.
func (s *Service) ResetFactors(ctx context.Context, a Actor, userID int64) (factor.Summary, error) {
	if !a.IsAdmin() {
		return factor.Summary{}, ErrForbidden
	}
	// The secret key is not needed to remove factors: the command line
	// may do it without one.
	if s.factors == nil {
		return factor.Summary{}, ErrFactorsOff
	}
	if err := s.requireProof(ctx, a); err != nil {
		return factor.Summary{}, err
	}
	u, err := s.user(ctx, userID)
	if err != nil {
		return factor.Summary{}, err
	}
	had, err := s.factors.Reset(ctx, u.ID)
	if err != nil {
		return factor.Summary{}, unavailable(DepDatabase, err)
	}
	s.record(ctx, a, audit.Event{Action: audit.FactorsReset, TargetUserID: u.ID, TargetName: u.Username,
		Detail: fmt.Sprintf("totp %t, %d passkey(s), %d recovery code(s) removed", had.TOTP, had.Passkeys, had.RecoveryCodesLeft)})
	return had, nil
}
