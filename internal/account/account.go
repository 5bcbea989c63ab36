// Package account holds Hallpass's use cases: signing in and up, changing
// passwords, ending sessions (one, all others, all — by the user, an
// administrator or the command line — or every user's at once), disabling
// accounts, the periodic check that keeps a session honest, and the lists
// the account and admin pages show. Each rule lives here once: the web
// handlers and the command line call the same methods, so the same action
// leaves the same audit record and the same effect on sessions wherever it
// starts.
//
// The Service owns the order of the steps (throttle → verify → audit →
// session), takes a clock, and answers with the sentinel errors of errors.go:
// a dependency that fails is ErrUnavailable; anything else unexpected is a
// bug and is returned as it is.
package account

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/devicetrust"
	"github.com/hallpass/hallpass/internal/factor"
	"github.com/hallpass/hallpass/internal/secretbox"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
)

// Users is what the use cases need of the user database.
type Users interface {
	Create(ctx context.Context, u user.NewUser) (user.User, error)
	ByID(ctx context.Context, id int64) (user.User, error)
	ByUsername(ctx context.Context, name string) (user.User, error)
	List(ctx context.Context, opts user.ListOptions) ([]user.User, error)
	Count(ctx context.Context) (int, error)
	SetPasswordHash(ctx context.Context, id int64, hash string) error
	SetDisabled(ctx context.Context, id int64, disabled bool) error
	SetSessionsValidAfter(ctx context.Context, id int64, t time.Time) error
	SetAllSessionsValidAfter(ctx context.Context, t time.Time) (int, error)
	ListIDs(ctx context.Context, afterID int64, limit int) ([]int64, error)
}

// Sessions is what the use cases need of the session manager. The methods
// that take a request's context (Login, Logout, Current, CurrentPublicID,
// RevokeOthers, and RevokeEveryone's keeping of the request's own session)
// work only inside its LoadAndSave middleware.
type Sessions interface {
	Login(ctx context.Context, id session.Identity, client session.Client) (evicted int, err error)
	Logout(ctx context.Context) error
	Current(ctx context.Context) (session.Info, bool)
	StillLive(ctx context.Context) (bool, error)
	CurrentPublicID(ctx context.Context) (string, bool)
	ListUser(ctx context.Context, userID int64) ([]session.Record, error)
	CountUsers(ctx context.Context, userIDs []int64) (map[int64]int, error)
	Revoke(ctx context.Context, userID int64, publicID string, reason session.EndReason) (bool, error)
	RevokeOthers(ctx context.Context, reason session.EndReason) (int, error)
	RevokeUser(ctx context.Context, userID int64, reason session.EndReason) (int, error)
	RevokeEveryone(ctx context.Context, userIDs []int64, reason session.EndReason) (int, error)
	Count(ctx context.Context) (int, error)
	Recent(ctx context.Context, offset, limit int) ([]session.Record, error)
	MarkReauthenticated(ctx context.Context) error
	ClearMustEnrol(ctx context.Context) error
}

// Hasher hashes and verifies passwords (package password), running a
// bounded number of hashes at once.
type Hasher interface {
	Hash(ctx context.Context, plain string) (string, error)
	Verify(ctx context.Context, plain, encoded string) (ok, needsRehash bool, err error)
	VerifyDummy(ctx context.Context, plain string) error
}

// Throttle holds the attempt counters shared by all replicas.
type Throttle interface {
	Attempt(ctx context.Context, key string, p throttle.Policy) (throttle.Verdict, error)
	Forgive(ctx context.Context, key string, p throttle.Policy) error
	Reset(ctx context.Context, key string) error
}

// AuditLog is the audit trail.
type AuditLog interface {
	Record(ctx context.Context, ev audit.Event) error
	List(ctx context.Context, opts audit.ListOptions) ([]audit.Event, error)
	Count(ctx context.Context, opts audit.ListOptions) (int, error)
}

// Metrics counts what the use cases decide; *metrics.Metrics fits, and a
// nil one counts nothing.
type Metrics interface {
	Login(result string)
	Throttled(kind string)
}

// Options are the Service's dependencies and settings.
type Options struct {
	Users    Users
	Sessions Sessions
	Hasher   Hasher
	Throttle Throttle
	Audit    AuditLog
	// Metrics counts sign-in results; nil counts nothing.
	Metrics Metrics
	// Logger receives what a use case cannot answer with an error (an audit
	// write or a hash upgrade that failed after the action happened).
	Logger *slog.Logger
	// Now is the clock for revocation times and audit records; nil means
	// time.Now.
	Now func() time.Time
	// Replica names this process in audit records.
	Replica string
	// HashWait bounds how long a use case waits for a free password-hashing
	// slot before it gives up with ErrUnavailable; zero means two seconds.
	HashWait time.Duration
	// HashesPerClient bounds how many password hashes one client (an IPv4
	// address, an IPv6 /64) runs at once in this process, so one client
	// cannot hold every hashing slot: its further requests wait their turn
	// (at most HashWait, then ErrUnavailable). Zero means two; negative, no
	// bound.
	HashesPerClient int
	// LoginPolicy and SignupPolicy say when attempts are slowed down; zero
	// means the throttle package's defaults.
	LoginPolicy, SignupPolicy throttle.Policy
	// DeviceTrust signs and checks device tokens: a browser that signed in
	// to an account before gets an attempt budget of its own for it, so an
	// attacker elsewhere cannot lock the owner out. Nil turns them off.
	DeviceTrust *devicetrust.Signer
	// SessionsOutOfReach says the session store lives inside another
	// process (the embedded default, seen from the command line): ending a
	// user's sessions then relies on the durable record in the user
	// database alone, which each session checks at its next refresh, and
	// single sessions cannot be listed or ended.
	SessionsOutOfReach bool
	// SignedIn, if set, is told of every new session a password sign-in
	// starts (the open tabs of the account's other sessions show "New
	// sign-in … Was this you?"). It must not block for long.
	SignedIn func(ctx context.Context, n SignInNotice)
	// Factors keeps second factors; nil (with Secrets) turns second factors
	// off: sign-in is by password alone and the factor pages answer
	// ErrFactorsOff.
	Factors factor.Store
	// Secrets seals the half-finished sign-ins and ceremonies handed to
	// browsers (the key from HALLPASS_SECRET_KEY); nil turns factors off.
	Secrets *secretbox.Box
	// RequireMFA says whose accounts must have a second factor; "" means
	// none.
	RequireMFA MFAPolicy
	// Issuer names this service in authenticator apps; "" means "Hallpass".
	Issuer string
	// SudoWindow is how long a proof of sign-in lets a session do
	// sensitive things; zero means DefaultSudoWindow.
	SudoWindow time.Duration
	// WebAuthn is the passkeys' relying party (NewWebAuthn); nil, or
	// factors off, turns passkeys off.
	WebAuthn *webauthn.WebAuthn
}

// SignInNotice describes a new session for the account's other sessions.
type SignInNotice struct {
	UserID   int64
	PublicID string
	Device   string
	IP       string
	At       time.Time
}

// Service runs the use cases. It is safe for concurrent use.
type Service struct {
	users        Users
	sessions     Sessions
	hasher       Hasher
	throttle     Throttle
	audit        AuditLog
	metrics      Metrics
	log          *slog.Logger
	now          func() time.Time
	replica      string
	hashWait     time.Duration
	loginPolicy  throttle.Policy
	signupPolicy throttle.Policy
	outOfReach   bool
	shares       *hashShares
	devices      *devicetrust.Signer
	signedIn     func(ctx context.Context, n SignInNotice)
	factors      factor.Store
	box          *secretbox.Box
	requireMFA   MFAPolicy
	issuer       string
	sudoWindow   time.Duration
	webauthn     *webauthn.WebAuthn
}

// New returns a Service over the given dependencies.
func New(o Options) *Service {
	s := &Service{
		users:        o.Users,
		sessions:     o.Sessions,
		hasher:       o.Hasher,
		throttle:     o.Throttle,
		audit:        o.Audit,
		metrics:      o.Metrics,
		log:          cmp.Or(o.Logger, slog.New(slog.DiscardHandler)),
		now:          o.Now,
		replica:      o.Replica,
		hashWait:     cmp.Or(o.HashWait, 2*time.Second),
		loginPolicy:  o.LoginPolicy,
		signupPolicy: o.SignupPolicy,
		outOfReach:   o.SessionsOutOfReach,
		devices:      o.DeviceTrust,
		signedIn:     o.SignedIn,
		factors:      o.Factors,
		box:          o.Secrets,
		requireMFA:   cmp.Or(o.RequireMFA, RequireMFANone),
		issuer:       cmp.Or(o.Issuer, "Hallpass"),
		sudoWindow:   cmp.Or(o.SudoWindow, DefaultSudoWindow),
		webauthn:     o.WebAuthn,
		shares:       &hashShares{max: cmp.Or(o.HashesPerClient, 2), clients: map[string]*clientShare{}},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	if s.loginPolicy == (throttle.Policy{}) {
		s.loginPolicy = throttle.DefaultLoginPolicy()
	}
	if s.signupPolicy == (throttle.Policy{}) {
		s.signupPolicy = throttle.DefaultSignupPolicy()
	}
	return s
}

type noMetrics struct{}

func (noMetrics) Login(string)     {}
func (noMetrics) Throttled(string) {}

// commandLineName is the actor name audit records give the command line.
const commandLineName = "cli"

// Actor is who asks for a use case and from where: a visitor (UserID 0), a
// signed-in user, an administrator, or the command line.
type Actor struct {
	UserID   int64
	Username string
	Role     user.Role
	// IP is the client's address, as resolved behind trusted proxies.
	IP string
	// Device is a readable label of the client's browser.
	Device string
	// DeviceToken is the device token the browser presented, if any (see
	// Options.DeviceTrust).
	DeviceToken string

	commandLine bool
}

// CommandLine is the actor of `hallpass` subcommands: an operator with
// shell access to the deployment, who may do what an administrator may.
func CommandLine() Actor {
	return Actor{Username: commandLineName, Role: user.RoleAdmin, commandLine: true}
}

// IsAdmin reports whether the actor may manage other users and their
// sessions.
func (a Actor) IsAdmin() bool { return a.commandLine || a.Role == user.RoleAdmin }

// client is the actor's browser, as a new session records it.
func (a Actor) client() session.Client { return session.Client{IP: a.IP, Device: a.Device} }

// record writes a security event with the actor, their address and this
// replica, unless the event names its own actor. A failed write is logged,
// never returned: the action it describes has already happened.
func (s *Service) record(ctx context.Context, a Actor, ev audit.Event) {
	if ev.ActorID == 0 && ev.ActorName == "" {
		ev.ActorID, ev.ActorName = a.UserID, a.Username
	}
	ev.IP = a.IP
	ev.Replica = s.replica
	if err := s.audit.Record(ctx, ev); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "audit record failed",
			slog.String("action", string(ev.Action)), slog.Any("error", err))
	}
}

// hashContext bounds the wait for a password-hashing slot: when every slot
// is busy for that long (a sign-in flood), the use case answers
// ErrUnavailable instead of queueing without end.
func (s *Service) hashContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.hashWait)
}
