package account

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/factor"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
)

// Passkeys are WebAuthn credentials kept by the user's authenticator
// (discoverable, with user verification: a passkey alone is two factors).
// They sign in without a username, finish a password sign-in as its second
// factor, and prove a sign-in again for sudo mode.
//
// Every ceremony is two requests: the options (a challenge) and the
// browser's answer. Nothing is stored between them: the library's session
// data goes to the browser sealed under HALLPASS_SECRET_KEY, for one purpose
// and CeremonyTimeout, and comes back with the answer, so the answer may
// reach any replica. Each ceremony is answered once (see openCeremony): the
// shared attempt counters remember its challenge for longer than it lives.

// CeremonyTimeout is how long a browser has between asking for a passkey
// prompt's options and sending the authenticator's answer.
const CeremonyTimeout = 5 * time.Minute

// Purposes bind sealed ceremonies to their use: a sudo ceremony cannot
// finish a sign-in, nor a sign-in a registration.
const (
	passkeySignInPurpose   = "hallpass passkey sign-in"
	passkeySecondPurpose   = "hallpass passkey second factor"
	passkeyRegisterPurpose = "hallpass passkey registration"
	passkeySudoPurpose     = "hallpass passkey sudo"
)

// Passkey names: what the owner calls it ("Work laptop"), trimmed.
const (
	// MaxPasskeyName is the longest name, in characters.
	MaxPasskeyName = 64
	// DefaultPasskeyName is the name of a passkey added without one.
	DefaultPasskeyName = "Passkey"
	// FieldPasskeyName is the passkey name in a ValidationError.
	FieldPasskeyName Field = "name"
)

// Errors of the passkey use cases; check them with errors.Is.
var (
	// ErrPasskeyRefused: the authenticator's answer did not verify (wrong
	// challenge, origin or signature, user not verified, a credential of
	// another account, a sign count that went backwards). Which one is in
	// the audit trail, never in the answer.
	ErrPasskeyRefused = errors.New("the passkey was not accepted")
	// ErrPasskeyUnknown: the passkey is not registered here (any more): its
	// owner removed it, or it belongs to another site. Sign in another way.
	ErrPasskeyUnknown = errors.New("this passkey is not registered")
	// ErrPasskeyExpired: the sealed ceremony the browser sent back is too
	// old, forged, or for another purpose or user; ask for new options.
	ErrPasskeyExpired = errors.New("the passkey prompt took too long; try again")
	// ErrPasskeyRegistered: the authenticator already holds a passkey
	// registered here.
	ErrPasskeyRegistered = errors.New("this passkey is already registered")
)

// NewWebAuthn returns the relying party of the passkeys: rpID is the site's
// domain ("example.com"), origins the origins its pages are served from
// ("https://login.example.com"), displayName what authenticators show ("" is
// "Hallpass"). Each origin must be https, or http on localhost (browsers
// offer passkeys to secure contexts only), and its host must be rpID or a
// subdomain of it (or browsers refuse the ceremony): a mistake here is a
// start-up error rather than passkeys that fail for everyone.
func NewWebAuthn(rpID string, origins []string, displayName string) (*webauthn.WebAuthn, error) {
	if err := protocol.ValidateRPID(rpID); err != nil || strings.ContainsAny(rpID, ":/") {
		return nil, fmt.Errorf("passkeys: relying party ID %q is not a domain name", rpID)
	}
	if len(origins) == 0 {
		return nil, errors.New("passkeys: no origin")
	}
	var problems []error
	for _, o := range origins {
		if err := checkOrigin(rpID, o); err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("passkeys: %w", errors.Join(problems...))
	}
	w, err := webauthn.New(&webauthn.Config{
		RPID:          rpID,
		RPDisplayName: cmp.Or(displayName, "Hallpass"),
		RPOrigins:     origins,
		// No attestation: Hallpass trusts any authenticator that verifies
		// its user, and asking for attestation only adds a prompt.
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: protocol.ResidentKeyRequired(),
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		},
		// The browser's own timeout; the server's is the sealed ceremony's
		// expiry, on the service's clock.
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: CeremonyTimeout, TimeoutUVD: CeremonyTimeout},
			Registration: webauthn.TimeoutConfig{Timeout: CeremonyTimeout, TimeoutUVD: CeremonyTimeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	return w, nil
}

// checkOrigin checks one origin against the relying party ID.
func checkOrigin(rpID, origin string) error {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q is not an origin (scheme://host[:port])", origin)
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (host == "localhost" || strings.HasSuffix(host, ".localhost")):
	default:
		return fmt.Errorf("%q must use https (http only on localhost): browsers offer passkeys to secure origins only", origin)
	}
	if rp := strings.ToLower(rpID); host != rp && !strings.HasSuffix(host, "."+rp) {
		return fmt.Errorf("%q is not on the relying party ID %q (its host must be that domain or a subdomain of it)", origin, rpID)
	}
	return nil
}

// PasskeyCeremony is a passkey prompt for the browser: the options to pass
// to navigator.credentials.create or .get, and the sealed ceremony to send
// back with the authenticator's answer.
type PasskeyCeremony struct {
	// Options is the library's CredentialCreation or CredentialAssertion
	// as JSON: {"publicKey": {…}} with binary values in base64url.
	Options json.RawMessage
	// State is the ceremony sealed under HALLPASS_SECRET_KEY.
	State   string
	Expires time.Time
}

// ceremony is what a sealed ceremony carries besides the library's session
// data: whose it is and the choices that came with it.
type ceremony struct {
	Session webauthn.SessionData `json:"s"`
	// UserID: the user the ceremony was begun for (all but the
	// username-less sign-in, where the answer names the user).
	UserID int64 `json:"u,omitempty"`
	// Began (Unix ms) is when a username-less sign-in began: a whole-user
	// revocation after it voids the sign-in.
	Began    int64  `json:"b,omitempty"`
	Remember bool   `json:"r,omitempty"`
	Name     string `json:"n,omitempty"`
}

// passkeysOn fails with ErrFactorsOff when passkeys are not set up.
func (s *Service) passkeysOn() error {
	if err := s.factorsOn(); err != nil {
		return err
	}
	if s.webauthn == nil {
		return ErrFactorsOff
	}
	return nil
}

// PasskeysEnabled reports whether passkeys are set up on this server.
func (s *Service) PasskeysEnabled() bool { return s.passkeysOn() == nil }

// sealCeremony seals c for purpose, with the options for the browser.
func (s *Service) sealCeremony(purpose string, c ceremony, options any) (PasskeyCeremony, error) {
	opts, err := json.Marshal(options)
	if err != nil {
		return PasskeyCeremony{}, fmt.Errorf("encode passkey options: %w", err)
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return PasskeyCeremony{}, fmt.Errorf("encode passkey ceremony: %w", err)
	}
	expires := s.now().Add(CeremonyTimeout)
	return PasskeyCeremony{Options: opts, State: s.box.SealString(purpose, plain, expires), Expires: expires}, nil
}

// openCeremony opens what sealCeremony sealed for purpose: ErrPasskeyExpired
// if it is expired, forged, sealed for another purpose, or already
// answered. Each ceremony is answered once, on whichever replica: many
// authenticators (synced passkeys) keep no signature counter, so an answer
// captured in flight could otherwise be sent again with its state for as
// long as the state lasts.
func (s *Service) openCeremony(ctx context.Context, purpose, state string) (ceremony, error) {
	plain, err := s.box.OpenString(purpose, state, s.now())
	if err != nil {
		return ceremony{}, ErrPasskeyExpired
	}
	var c ceremony
	if err := json.Unmarshal(plain, &c); err != nil || c.Session.Challenge == "" {
		return ceremony{}, ErrPasskeyExpired
	}
	if err := s.answerOnce(ctx, c.Session.Challenge); err != nil {
		return ceremony{}, err
	}
	return c, nil
}

// challengeAnswered is the attempt-counter policy that lets a ceremony's
// challenge be answered once: the first attempt is free and starts a wait
// longer than the ceremony lives, so every later one is refused.
var challengeAnswered = throttle.Policy{
	Limit: 0, Window: time.Millisecond,
	BaseDelay: CeremonyTimeout + time.Minute, MaxDelay: CeremonyTimeout + time.Minute,
}

// answerOnce records that the challenge was answered, on every replica at
// once (the attempt counters are shared through Redis): ErrPasskeyExpired
// for a second answer, ErrUnavailable (failing closed) when the counters
// cannot count.
func (s *Service) answerOnce(ctx context.Context, challenge string) error {
	v, err := s.throttle.Attempt(ctx, "passkey:challenge:"+challenge, challengeAnswered)
	if err != nil {
		return unavailable(DepThrottle, err)
	}
	if v.Wait > 0 {
		return ErrPasskeyExpired
	}
	return nil
}

// passkeyUser is a user as the WebAuthn library sees them: a user handle
// and the credentials of their passkeys.
type passkeyUser struct {
	user   user.User
	handle []byte
	keys   []factor.Passkey
	creds  []webauthn.Credential
}

func (p *passkeyUser) WebAuthnID() []byte                         { return p.handle }
func (p *passkeyUser) WebAuthnName() string                       { return p.user.Username }
func (p *passkeyUser) WebAuthnDisplayName() string                { return p.user.Username }
func (p *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

// passkey returns the stored passkey with the credential ID.
func (p *passkeyUser) passkey(credentialID []byte) (factor.Passkey, bool) {
	for _, k := range p.keys {
		if bytes.Equal(k.CredentialID, credentialID) {
			return k, true
		}
	}
	return factor.Passkey{}, false
}

// passkeyUser loads u's user handle (made on first use) and passkeys.
func (s *Service) passkeyUser(ctx context.Context, u user.User) (*passkeyUser, error) {
	handle, err := s.factors.WebAuthnHandle(ctx, u.ID)
	if err != nil {
		return nil, unavailable(DepDatabase, err)
	}
	keys, err := s.factors.Passkeys(ctx, u.ID)
	if err != nil {
		return nil, unavailable(DepDatabase, err)
	}
	p := &passkeyUser{user: u, handle: handle, keys: keys, creds: make([]webauthn.Credential, 0, len(keys))}
	for _, k := range keys {
		var c webauthn.Credential
		if err := json.Unmarshal(k.Credential, &c); err != nil {
			return nil, fmt.Errorf("decode passkey %d of user %d: %w", k.ID, u.ID, err)
		}
		p.creds = append(p.creds, c)
	}
	return p, nil
}

// refusal says in a few words why the library refused an answer, for the
// audit trail: its short description, never the data it was given.
func refusal(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		return pe.Details
	}
	return "not verified"
}

// loginOptions are the options of every assertion: the user must be
// verified (PIN, biometrics), so a passkey is two factors in one.
func loginOptions() []webauthn.LoginOption {
	return []webauthn.LoginOption{webauthn.WithUserVerification(protocol.VerificationRequired)}
}

// BeginPasskeySignIn starts a passkey sign-in. Without pendingToken it is a
// sign-in without a username: any passkey of this site may answer, and the
// answer says whose it is. With the token of a half-finished sign-in
// (SignedIn.SecondFactor) it is that sign-in's second factor: only the
// account's passkeys may answer (ErrNotFound if it has none). opts are the
// sign-in form's choices (a second step keeps the password step's).
func (s *Service) BeginPasskeySignIn(ctx context.Context, a Actor, pendingToken string, opts SignInOptions) (PasskeyCeremony, error) {
	if err := s.passkeysOn(); err != nil {
		return PasskeyCeremony{}, err
	}
	if pendingToken == "" {
		assertion, sd, err := s.webauthn.BeginDiscoverableLogin(loginOptions()...)
		if err != nil {
			return PasskeyCeremony{}, fmt.Errorf("begin passkey sign-in: %w", err)
		}
		return s.sealCeremony(passkeySignInPurpose, ceremony{Session: *sd, Began: s.now().UnixMilli(), Remember: opts.Remember}, assertion)
	}
	p, err := s.openPending(pendingToken)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	u, err := s.user(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return PasskeyCeremony{}, ErrSignInExpired
	} else if err != nil {
		return PasskeyCeremony{}, err
	}
	pu, err := s.passkeyUser(ctx, u)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	if len(pu.creds) == 0 {
		return PasskeyCeremony{}, ErrNotFound
	}
	assertion, sd, err := s.webauthn.BeginLogin(pu, loginOptions()...)
	if err != nil {
		return PasskeyCeremony{}, fmt.Errorf("begin passkey second factor: %w", err)
	}
	return s.sealCeremony(passkeySecondPurpose, ceremony{Session: *sd, UserID: u.ID}, assertion)
}

// FinishPasskeySignIn finishes a passkey sign-in begun by
// BeginPasskeySignIn (with the same pendingToken) with the authenticator's
// answer (the PublicKeyCredential as JSON), and starts the session. It goes
// through the checks of a password sign-in: the attempt counters
// (ErrThrottled), the answer (ErrPasskeyRefused, ErrPasskeyUnknown), the
// account (ErrDisabled), then the session under the session limit, voided
// by a whole-user revocation since the sign-in began (ErrRevokedInFlight):
// for a sign-in without a username, since the options were issued; for a
// second factor, since the password step.
func (s *Service) FinishPasskeySignIn(ctx context.Context, a Actor, pendingToken, state string, response []byte) (SignedIn, error) {
	if err := s.passkeysOn(); err != nil {
		return SignedIn{}, err
	}
	if pendingToken != "" {
		return s.finishPasskeySecondStep(ctx, a, pendingToken, state, response)
	}
	c, err := s.openCeremony(ctx, passkeySignInPurpose, state)
	if err != nil {
		return SignedIn{}, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return SignedIn{}, fmt.Errorf("%w: passkey answer: %s", ErrInvalid, refusal(err))
	}
	// Nobody is named before the answer is checked, so only the client's
	// counter applies; a guess is as hopeless as forging a signature, but
	// a flood of answers still costs database reads.
	client := clientKey(a.IP)
	var throttled *ThrottledError
	switch err := s.reserve(ctx, s.loginPolicy, client); {
	case errors.As(err, &throttled):
		if worthRecording(throttled.Refused) {
			s.record(ctx, a, audit.Event{Action: audit.LoginFailed, Detail: "passkey sign-in: throttled"})
		}
		s.metrics.Throttled("login")
		s.metrics.Login("throttled")
		return SignedIn{}, err
	case err != nil:
		return SignedIn{}, err
	}
	var (
		owner     *passkeyUser
		lookupErr error
	)
	lookup := func(_, userHandle []byte) (webauthn.User, error) {
		id, err := s.factors.UserByWebAuthnHandle(ctx, userHandle)
		if err != nil {
			if !errors.Is(err, factor.ErrNotFound) {
				lookupErr = unavailable(DepDatabase, err)
			}
			return nil, err
		}
		u, err := s.users.ByID(ctx, id)
		if err != nil {
			if !errors.Is(err, user.ErrNotFound) {
				lookupErr = unavailable(DepDatabase, err)
			}
			return nil, err
		}
		if owner, err = s.passkeyUser(ctx, u); err != nil {
			lookupErr = err
			return nil, err
		}
		return owner, nil
	}
	_, cred, err := s.webauthn.ValidatePasskeyLogin(lookup, c.Session, parsed)
	if lookupErr != nil {
		s.giveBack(ctx, s.loginPolicy, client)
		return SignedIn{}, lookupErr
	}
	if err != nil {
		s.metrics.Login("failed")
		if owner == nil {
			s.record(ctx, a, audit.Event{Action: audit.FactorFailed, Detail: "passkey sign-in: passkey not registered"})
			return SignedIn{}, ErrPasskeyUnknown
		}
		u := owner.user
		if _, ok := owner.passkey(parsed.RawID); !ok {
			s.record(ctx, a, audit.Event{Action: audit.FactorFailed, TargetUserID: u.ID, TargetName: u.Username,
				Detail: "passkey sign-in: passkey not registered (removed?)"})
			return SignedIn{}, ErrPasskeyUnknown
		}
		s.record(ctx, a, audit.Event{Action: audit.FactorFailed, TargetUserID: u.ID, TargetName: u.Username,
			Detail: "passkey sign-in: passkey not accepted: " + refusal(err)})
		return SignedIn{}, ErrPasskeyRefused
	}
	u := owner.user
	key, _ := owner.passkey(cred.ID) // the library found it among owner's
	if u.Disabled {
		s.record(ctx, a, audit.Event{Action: audit.LoginFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "account disabled (passkey)"})
		s.metrics.Login("disabled")
		return SignedIn{}, ErrDisabled
	}
	if err := s.usePasskey(ctx, a, u, key, cred, "passkey sign-in"); err != nil {
		if !errors.Is(err, ErrPasskeyRefused) && !errors.Is(err, ErrPasskeyUnknown) {
			s.giveBack(ctx, s.loginPolicy, client)
		}
		return SignedIn{}, err
	}
	s.giveBack(ctx, s.loginPolicy, client)
	self := Actor{UserID: u.ID, Username: u.Username, Role: u.Role, IP: a.IP, Device: a.Device}
	return s.finishSignIn(ctx, a, self, u, time.UnixMilli(c.Began), "", newSession{remember: c.Remember, method: MethodPasskey})
}

// finishPasskeySecondStep finishes a half-finished sign-in with a passkey.
func (s *Service) finishPasskeySecondStep(ctx context.Context, a Actor, pendingToken, state string, response []byte) (SignedIn, error) {
	p, err := s.openPending(pendingToken)
	if err != nil {
		return SignedIn{}, err
	}
	c, err := s.openCeremony(ctx, passkeySecondPurpose, state)
	if err != nil {
		return SignedIn{}, err
	}
	if c.UserID != p.UserID {
		return SignedIn{}, ErrPasskeyExpired
	}
	u, err := s.pendingUser(ctx, a, p)
	if err != nil {
		return SignedIn{}, err
	}
	if _, err := s.checkPasskey(ctx, a, u, c, response, "sign-in"); err != nil {
		if errors.Is(err, ErrPasskeyRefused) || errors.Is(err, ErrPasskeyUnknown) {
			s.metrics.Login("failed")
		}
		return SignedIn{}, err
	}
	self := Actor{UserID: u.ID, Username: u.Username, Role: u.Role, IP: a.IP, Device: a.Device}
	return s.finishSignIn(ctx, a, self, u, time.UnixMilli(p.Began), p.EndSession,
		newSession{remember: p.Remember, method: MethodPasswordPasskey})
}

// checkPasskey checks an answer to a ceremony begun for u (second factor,
// sudo) under the attempt counters of u's second factor and of the client,
// and records the outcome for purpose ("sign-in", "sudo").
func (s *Service) checkPasskey(ctx context.Context, a Actor, u user.User, c ceremony, response []byte, purpose string) (factor.Passkey, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return factor.Passkey{}, fmt.Errorf("%w: passkey answer: %s", ErrInvalid, refusal(err))
	}
	account, client := factorKey(u.ID), clientKey(a.IP)
	var throttled *ThrottledError
	switch err := s.reserve(ctx, s.loginPolicy, account, client); {
	case errors.As(err, &throttled):
		if worthRecording(throttled.Refused) {
			s.record(ctx, a, audit.Event{Action: audit.FactorFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: purpose + ": throttled"})
		}
		s.metrics.Throttled("factor")
		return factor.Passkey{}, err
	case err != nil:
		return factor.Passkey{}, err
	}
	pu, err := s.passkeyUser(ctx, u)
	if err != nil {
		s.giveBack(ctx, s.loginPolicy, account, client)
		return factor.Passkey{}, err
	}
	cred, err := s.webauthn.ValidateLogin(pu, c.Session, parsed)
	if err != nil {
		if _, ok := pu.passkey(parsed.RawID); !ok {
			s.record(ctx, a, audit.Event{Action: audit.FactorFailed, TargetUserID: u.ID, TargetName: u.Username,
				Detail: purpose + ": passkey not registered to this account"})
			return factor.Passkey{}, ErrPasskeyUnknown
		}
		s.record(ctx, a, audit.Event{Action: audit.FactorFailed, TargetUserID: u.ID, TargetName: u.Username,
			Detail: purpose + ": passkey not accepted: " + refusal(err)})
		return factor.Passkey{}, ErrPasskeyRefused
	}
	key, _ := pu.passkey(cred.ID) // the library found it among u's
	if err := s.usePasskey(ctx, a, u, key, cred, purpose); err != nil {
		if !errors.Is(err, ErrPasskeyRefused) && !errors.Is(err, ErrPasskeyUnknown) {
			s.giveBack(ctx, s.loginPolicy, account, client)
		}
		return factor.Passkey{}, err
	}
	s.clearAccount(ctx, account, client)
	return key, nil
}

// usePasskey accepts a verified answer of key: unless its sign count went
// backwards (a cloned authenticator: refused and recorded), the new count
// and flags are stored, with the time of use, and the use is recorded.
func (s *Service) usePasskey(ctx context.Context, a Actor, u user.User, key factor.Passkey, cred *webauthn.Credential, purpose string) error {
	if cred.Authenticator.CloneWarning {
		s.record(ctx, a, audit.Event{Action: audit.FactorFailed, TargetUserID: u.ID, TargetName: u.Username,
			Detail: purpose + ": passkey " + key.Name + " refused: its signature counter went backwards (a cloned authenticator?)"})
		return ErrPasskeyRefused
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return fmt.Errorf("encode passkey credential: %w", err)
	}
	switch err := s.factors.UsePasskey(ctx, key.ID, b, s.now()); {
	case errors.Is(err, factor.ErrNotFound):
		// Removed while its answer was being checked.
		return ErrPasskeyUnknown
	case err != nil:
		return unavailable(DepDatabase, err)
	}
	s.record(ctx, a, audit.Event{Action: audit.FactorUsed, TargetUserID: u.ID, TargetName: u.Username, Detail: purpose + ": passkey " + key.Name})
	return nil
}

// BeginPasskeySudo starts proving the signed-in user's sign-in again with
// one of their passkeys (ErrNotFound if they have none).
func (s *Service) BeginPasskeySudo(ctx context.Context, a Actor) (PasskeyCeremony, error) {
	if err := s.passkeysOn(); err != nil {
		return PasskeyCeremony{}, err
	}
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return PasskeyCeremony{}, ErrNotSignedIn
	}
	u, err := s.user(ctx, info.UserID)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	pu, err := s.passkeyUser(ctx, u)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	if len(pu.creds) == 0 {
		return PasskeyCeremony{}, ErrNotFound
	}
	assertion, sd, err := s.webauthn.BeginLogin(pu, loginOptions()...)
	if err != nil {
		return PasskeyCeremony{}, fmt.Errorf("begin passkey sudo: %w", err)
	}
	return s.sealCeremony(passkeySudoPurpose, ceremony{Session: *sd, UserID: u.ID}, assertion)
}

// FinishPasskeySudo finishes BeginPasskeySudo with the authenticator's
// answer: the session may do sensitive things for the sudo window. Attempts
// share the counters of the account's second factor.
func (s *Service) FinishPasskeySudo(ctx context.Context, a Actor, state string, response []byte) error {
	if err := s.passkeysOn(); err != nil {
		return err
	}
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return ErrNotSignedIn
	}
	c, err := s.openCeremony(ctx, passkeySudoPurpose, state)
	if err != nil {
		return err
	}
	if c.UserID != info.UserID {
		return ErrPasskeyExpired
	}
	u, err := s.user(ctx, info.UserID)
	if err != nil {
		return err
	}
	if _, err := s.checkPasskey(ctx, a, u, c, response, "sudo"); err != nil {
		if errors.Is(err, ErrPasskeyRefused) || errors.Is(err, ErrPasskeyUnknown) {
			s.record(ctx, a, audit.Event{Action: audit.SudoFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "passkey not accepted"})
		}
		return err
	}
	return s.proven(ctx, a, u.ID, u.Username, "passkey")
}

// passkeyName checks a passkey's name: trimmed, DefaultPasskeyName if
// empty, at most MaxPasskeyName characters, no control characters.
func passkeyName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return DefaultPasskeyName, nil
	case !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", &ValidationError{Fields: map[Field]string{FieldPasskeyName: "Use letters, digits, spaces and punctuation."}}
	case utf8.RuneCountInString(name) > MaxPasskeyName:
		return "", &ValidationError{Fields: map[Field]string{FieldPasskeyName: fmt.Sprintf("Use at most %d characters.", MaxPasskeyName)}}
	}
	return name, nil
}

// BeginPasskeyRegistration starts adding a passkey named name to the
// signed-in user's account: a sensitive action (sudo mode), which a session
// that must enrol a factor may do. The options exclude the passkeys the
// account has, so an authenticator is not registered twice.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, a Actor, name string) (PasskeyCeremony, error) {
	if err := s.passkeysOn(); err != nil {
		return PasskeyCeremony{}, err
	}
	name, err := passkeyName(name)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	u, err := s.factorOwner(ctx, a)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	pu, err := s.passkeyUser(ctx, u)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	creation, sd, err := s.webauthn.BeginRegistration(pu,
		webauthn.WithExclusions(webauthn.Credentials(pu.creds).CredentialDescriptors()))
	if err != nil {
		return PasskeyCeremony{}, fmt.Errorf("begin passkey registration: %w", err)
	}
	return s.sealCeremony(passkeyRegisterPurpose, ceremony{Session: *sd, UserID: u.ID, Name: name}, creation)
}

// FinishPasskeyRegistration finishes BeginPasskeyRegistration with the
// authenticator's answer and keeps the passkey. The first factor of an
// account comes with recovery codes, returned to be shown once (nil if the
// account has codes already). A session that had to enrol is free to go on.
func (s *Service) FinishPasskeyRegistration(ctx context.Context, a Actor, state string, response []byte) (codes []string, err error) {
	if err := s.passkeysOn(); err != nil {
		return nil, err
	}
	u, err := s.factorOwner(ctx, a)
	if err != nil {
		return nil, err
	}
	c, err := s.openCeremony(ctx, passkeyRegisterPurpose, state)
	if err != nil {
		return nil, err
	}
	if c.UserID != u.ID {
		return nil, ErrPasskeyExpired
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, fmt.Errorf("%w: passkey answer: %s", ErrInvalid, refusal(err))
	}
	pu, err := s.passkeyUser(ctx, u)
	if err != nil {
		return nil, err
	}
	cred, err := s.webauthn.CreateCredential(pu, c.Session, parsed)
	if err != nil {
		s.record(ctx, a, audit.Event{Action: audit.FactorFailed, TargetUserID: u.ID, TargetName: u.Username,
			Detail: "enrolment: passkey not accepted: " + refusal(err)})
		return nil, ErrPasskeyRefused
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return nil, fmt.Errorf("encode passkey credential: %w", err)
	}
	_, err = s.factors.AddPasskey(ctx, factor.Passkey{UserID: u.ID, Name: c.Name, CredentialID: cred.ID, Credential: b, CreatedAt: s.now()})
	switch {
	case errors.Is(err, factor.ErrDuplicate):
		return nil, ErrPasskeyRegistered
	case err != nil:
		return nil, unavailable(DepDatabase, err)
	}
	s.record(ctx, a, audit.Event{Action: audit.FactorAdded, TargetUserID: u.ID, TargetName: u.Username, Detail: "passkey " + c.Name})
	codes, err = s.firstRecoveryCodes(ctx, a, u)
	if err != nil {
		return nil, err
	}
	return codes, s.enrolled(ctx)
}

// RemovePasskey removes one of the signed-in user's passkeys (ErrNotFound
// if they have none with the ID): a sensitive action (sudo mode). Refused
// with ErrFactorRequired if the policy requires a factor and it is the
// last; when no factor is left, the recovery codes go too.
func (s *Service) RemovePasskey(ctx context.Context, a Actor, id int64) error {
	if err := s.passkeysOn(); err != nil {
		return err
	}
	u, err := s.factorOwner(ctx, a)
	if err != nil {
		return err
	}
	keys, err := s.factors.Passkeys(ctx, u.ID)
	if err != nil {
		return unavailable(DepDatabase, err)
	}
	var key *factor.Passkey
	for i := range keys {
		if keys[i].ID == id {
			key = &keys[i]
		}
	}
	if key == nil {
		return ErrNotFound
	}
	sum, err := s.factors.Summary(ctx, u.ID)
	if err != nil {
		return unavailable(DepDatabase, err)
	}
	if sum.Passkeys <= 1 && !sum.TOTP && s.requireMFA.Requires(u.Role) {
		return ErrFactorRequired
	}
	removed, err := s.factors.RemovePasskey(ctx, u.ID, id)
	switch {
	case err != nil:
		return unavailable(DepDatabase, err)
	case !removed:
		return ErrNotFound // removed meanwhile, from another tab
	}
	s.record(ctx, a, audit.Event{Action: audit.FactorRemoved, TargetUserID: u.ID, TargetName: u.Username, Detail: "passkey " + key.Name})
	return s.dropCodesIfNoFactor(ctx, a, u)
}
