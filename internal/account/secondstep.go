package account

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/factor"
	"github.com/hallpass/hallpass/internal/user"
)

// How a session was signed in, as sessions record it and the devices page
// shows it.
const (
	MethodPassword         = "password"
	MethodPasskey          = "passkey"
	MethodPasswordTOTP     = "password+totp"
	MethodPasswordPasskey  = "password+passkey"
	MethodPasswordRecovery = "password+recovery"
)

// MethodLabel says a sign-in method in words; sessions from before methods
// were recorded ("") were password sign-ins.
func MethodLabel(method string) string {
	switch method {
	case MethodPasskey:
		return "passkey"
	case MethodPasswordTOTP:
		return "password + authenticator code"
	case MethodPasswordPasskey:
		return "password + passkey"
	case MethodPasswordRecovery:
		return "password + recovery code"
	default:
		return "password"
	}
}

// MFAPolicy says whose accounts must have a second factor
// (HALLPASS_REQUIRE_MFA).
type MFAPolicy string

// The policies.
const (
	RequireMFANone   MFAPolicy = "none"
	RequireMFAAdmins MFAPolicy = "admins"
	RequireMFAAll    MFAPolicy = "all"
)

// Valid reports whether p is one of the policies.
func (p MFAPolicy) Valid() bool {
	return p == RequireMFANone || p == RequireMFAAdmins || p == RequireMFAAll
}

// Requires reports whether an account of the role must have a second factor.
func (p MFAPolicy) Requires(role user.Role) bool {
	return p == RequireMFAAll || p == RequireMFAAdmins && role == user.RoleAdmin
}

// SecondStepTimeout is how long a browser has, once the password was right,
// to give the second factor.
const SecondStepTimeout = 5 * time.Minute

// SecondStep is a half-finished sign-in: the password was right, the second
// factor is awaited.
type SecondStep struct {
	// Token is the sealed sign-in for the browser to send back (a cookie):
	// who, since when, with which choices. It is encrypted and
	// authenticated under HALLPASS_SECRET_KEY, and expires.
	Token   string
	Expires time.Time
	// What the account can finish with.
	TOTP, Passkey bool
	// RecoveryCodes: unused recovery codes remain.
	RecoveryCodes bool
}

// pendingPurpose binds sealed half-finished sign-ins to their use.
const pendingPurpose = "hallpass sign-in awaiting second factor"

// pendingSignIn is what a SecondStep token carries.
type pendingSignIn struct {
	UserID int64 `json:"u"`
	// Began is the sign-in's start (Unix ms): a whole-user revocation
	// after it voids the sign-in, however long the second step takes.
	Began      int64  `json:"b"`
	Remember   bool   `json:"r,omitempty"`
	EndSession string `json:"e,omitempty"`
}

// secondStep seals a half-finished sign-in of u.
func (s *Service) secondStep(u user.User, began time.Time, opts SignInOptions, sum factor.Summary) SecondStep {
	p := pendingSignIn{UserID: u.ID, Began: began.UnixMilli(), Remember: opts.Remember, EndSession: opts.EndSession}
	b, _ := json.Marshal(p) // plain fields: cannot fail
	expires := s.now().Add(SecondStepTimeout)
	return SecondStep{
		Token:   s.box.SealString(pendingPurpose, b, expires),
		Expires: expires,
		TOTP:    sum.TOTP, Passkey: sum.Passkeys > 0, RecoveryCodes: sum.RecoveryCodesLeft > 0,
	}
}

// openPending reads a SecondStep token: ErrSignInExpired if it is expired,
// forged or from another deployment.
func (s *Service) openPending(token string) (pendingSignIn, error) {
	if s.box == nil {
		return pendingSignIn{}, ErrFactorsOff
	}
	b, err := s.box.OpenString(pendingPurpose, token, s.now())
	if err != nil {
		return pendingSignIn{}, ErrSignInExpired
	}
	var p pendingSignIn
	if err := json.Unmarshal(b, &p); err != nil || p.UserID <= 0 {
		return pendingSignIn{}, ErrSignInExpired
	}
	return p, nil
}

// PendingSignIn describes a half-finished sign-in for the second-step page:
// which factors the account can finish with. ErrSignInExpired if the token
// is no good any more.
func (s *Service) PendingSignIn(ctx context.Context, token string) (SecondStep, error) {
	p, err := s.openPending(token)
	if err != nil {
		return SecondStep{}, err
	}
	sum, err := s.factors.Summary(ctx, p.UserID)
	if err != nil {
		return SecondStep{}, unavailable(DepDatabase, err)
	}
	return SecondStep{Token: token, TOTP: sum.TOTP, Passkey: sum.Passkeys > 0, RecoveryCodes: sum.RecoveryCodesLeft > 0}, nil
}

// factorKey is the counter of second-factor attempts at one account: codes
// are guessed like passwords, so they are counted like passwords, on every
// replica at once.
func factorKey(userID int64) string {
	return "login:factor:" + strconv.FormatInt(userID, 10)
}

// CompleteSignIn finishes a half-finished sign-in with an authenticator
// code or a recovery code, and starts the session. In order: the token
// (ErrSignInExpired), the account (gone or disabled: ErrSignInExpired and
// ErrDisabled), the attempt counters of the account's second factor and of
// the client (ErrThrottled), the code (ErrBadCode, counted; a code is
// accepted once), then the session exactly as after a password-only
// sign-in, including the revocation-in-flight check from the moment the
// password step began.
func (s *Service) CompleteSignIn(ctx context.Context, a Actor, token, code string) (SignedIn, error) {
	p, err := s.openPending(token)
	if err != nil {
		return SignedIn{}, err
	}
	u, err := s.pendingUser(ctx, a, p)
	if err != nil {
		return SignedIn{}, err
	}
	method, left, err := s.checkCodeThrottled(ctx, a, u, code, true, "sign-in")
	if err != nil {
		if errors.Is(err, ErrBadCode) {
			s.metrics.Login("failed")
		}
		return SignedIn{}, err
	}
	self := Actor{UserID: u.ID, Username: u.Username, Role: u.Role, IP: a.IP, Device: a.Device}
	done, err := s.finishSignIn(ctx, a, self, u, time.UnixMilli(p.Began), p.EndSession,
		newSession{remember: p.Remember, method: method})
	if err != nil {
		return SignedIn{}, err
	}
	done.RecoveryCodesLeft = left
	return done, nil
}

// pendingUser reads the user of a half-finished sign-in: gone is
// ErrSignInExpired, disabled since the password step ErrDisabled (audited).
func (s *Service) pendingUser(ctx context.Context, a Actor, p pendingSignIn) (user.User, error) {
	u, err := s.users.ByID(ctx, p.UserID)
	switch {
	case errors.Is(err, user.ErrNotFound):
		return user.User{}, ErrSignInExpired
	case err != nil:
		return user.User{}, unavailable(DepDatabase, err)
	case u.Disabled:
		s.record(ctx, a, audit.Event{Action: audit.LoginFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "account disabled"})
		s.metrics.Login("disabled")
		return user.User{}, ErrDisabled
	}
	return u, nil
}

// checkCodeThrottled checks a second-factor code of u under the attempt
// counters, and records the outcome for purpose ("sign-in", "sudo"). With
// recovery, a recovery code is accepted too (and used up). It returns the
// sign-in method the code proves and, for a recovery code, how many are
// left.
func (s *Service) checkCodeThrottled(ctx context.Context, a Actor, u user.User, code string, recovery bool, purpose string) (method string, left int, err error) {
	account, client := factorKey(u.ID), clientKey(a.IP)
	var throttled *ThrottledError
	switch err := s.reserve(ctx, s.loginPolicy, account, client); {
	case errors.As(err, &throttled):
		if worthRecording(throttled.Refused) {
			s.record(ctx, a, audit.Event{Action: audit.FactorFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: purpose + ": throttled"})
		}
		s.metrics.Throttled("factor")
		return "", 0, err
	case err != nil:
		return "", 0, err
	}
	method, left, err = s.checkCode(ctx, u, code, recovery)
	switch {
	case errors.Is(err, ErrBadCode):
		s.record(ctx, a, audit.Event{Action: audit.FactorFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: purpose + ": wrong or used code"})
		return "", 0, err
	case err != nil:
		s.giveBack(ctx, s.loginPolicy, account, client)
		return "", 0, err
	}
	s.clearAccount(ctx, account, client)
	detail := purpose + ": authenticator code"
	if method == MethodPasswordRecovery {
		detail = purpose + ": recovery code, " + strconv.Itoa(left) + " left"
	}
	s.record(ctx, a, audit.Event{Action: audit.FactorUsed, TargetUserID: u.ID, TargetName: u.Username, Detail: detail})
	return method, left, nil
}
