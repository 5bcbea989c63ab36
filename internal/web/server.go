// Package web is Hallpass's HTTP surface: routes, middleware, handlers and
// page rendering. Handlers parse input, call one domain method and render;
// the rules live in the session, user and password packages.
package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/clientip"
	"github.com/hallpass/hallpass/internal/metrics"
	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
	"github.com/hallpass/hallpass/web"
)

// UserStore is what the web layer needs of the user database.
type UserStore interface {
	Create(ctx context.Context, u user.NewUser) (user.User, error)
	ByID(ctx context.Context, id int64) (user.User, error)
	ByUsername(ctx context.Context, name string) (user.User, error)
	List(ctx context.Context, opts user.ListOptions) ([]user.User, error)
	Count(ctx context.Context) (int, error)
	SetPasswordHash(ctx context.Context, id int64, hash string) error
	SetDisabled(ctx context.Context, id int64, disabled bool) error
	SetSessionsValidAfter(ctx context.Context, id int64, t time.Time) error
	Ping(ctx context.Context) error
}

// AuditLog is what the web layer needs of the audit log.
type AuditLog interface {
	Record(ctx context.Context, ev audit.Event) error
	List(ctx context.Context, opts audit.ListOptions) ([]audit.Event, error)
	Count(ctx context.Context, opts audit.ListOptions) (int, error)
}

// Pinger is a dependency whose reachability /readyz reports.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are everything the HTTP server needs, passed in by main.
type Deps struct {
	Logger       *slog.Logger
	ReplicaID    string
	SignupOpen   bool
	CookieSecure bool
	IdleTimeout  time.Duration
	Sessions     *session.Manager
	SessionStore Pinger
	Users        UserStore
	Hasher       *password.Hasher
	Audit        AuditLog
	// ClientIP finds the client's address, trusting X-Forwarded-For only
	// from the configured proxies.
	ClientIP *clientip.Resolver
	// Now is the clock for times the pages show and record; nil means
	// time.Now.
	Now func() time.Time
	// HashWait bounds how long a request waits for a free password-hashing
	// slot before it is answered 503; zero means two seconds.
	HashWait time.Duration
	// Throttle holds the attempt counters shared by all replicas.
	Throttle Throttle
	// LoginPolicy and SignupPolicy say when attempts are slowed down.
	LoginPolicy, SignupPolicy throttle.Policy
	// Metrics counts requests and sign-ins; nil counts nothing.
	Metrics *metrics.Metrics
	// Draining reports that the process is shutting down, so /readyz sends
	// the load balancer elsewhere while in-flight requests finish; nil
	// means never.
	Draining func() bool
}

// Server holds the dependencies its handlers share.
type Server struct {
	log          *slog.Logger
	replicaID    string
	signupOpen   bool
	cookieSecure bool
	idleTimeout  time.Duration
	sessions     *session.Manager
	sessionStore Pinger
	users        UserStore
	hasher       *password.Hasher
	audit        AuditLog
	clientIP     *clientip.Resolver
	now          func() time.Time
	metrics      *metrics.Metrics
	throttle     Throttle
	hashWait     time.Duration
	loginPolicy  throttle.Policy
	signupPolicy throttle.Policy
	draining     func() bool
	pages        *pages
}

// NewServer builds the whole HTTP service. It fails only if the embedded
// templates do not parse.
func NewServer(d Deps) (http.Handler, error) {
	tfs, err := web.Templates()
	if err != nil {
		return nil, fmt.Errorf("open embedded templates: %w", err)
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	if d.Draining == nil {
		d.Draining = func() bool { return false }
	}
	p, err := parsePages(tfs, now)
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:          d.Logger,
		replicaID:    d.ReplicaID,
		signupOpen:   d.SignupOpen,
		cookieSecure: d.CookieSecure,
		idleTimeout:  d.IdleTimeout,
		sessions:     d.Sessions,
		sessionStore: d.SessionStore,
		users:        d.Users,
		hasher:       d.Hasher,
		audit:        d.Audit,
		clientIP:     d.ClientIP,
		now:          now,
		metrics:      d.Metrics,
		throttle:     d.Throttle,
		hashWait:     cmp.Or(d.HashWait, 2*time.Second),
		loginPolicy:  d.LoginPolicy,
		signupPolicy: d.SignupPolicy,
		draining:     d.Draining,
		pages:        p,
	}
	return s.routes()
}

// UserCheck returns the check a session.Manager runs when it refreshes a
// session: the durable record of revocations in the user database. A
// session ends if its user is gone or disabled, or if it was created before
// the user's sessions-valid-after time (set by "sign out everywhere", a
// password change or disabling), so a revocation that a Redis failover lost
// cannot bring a session back for longer than one refresh interval.
func UserCheck(users UserStore) func(ctx context.Context, userID int64, created time.Time) (session.EndReason, error) {
	return func(ctx context.Context, userID int64, created time.Time) (session.EndReason, error) {
		u, err := users.ByID(ctx, userID)
		switch {
		case errors.Is(err, user.ErrNotFound):
			return session.EndedDisabled, nil
		case err != nil:
			return "", err
		case u.Disabled:
			return session.EndedDisabled, nil
		case created.Before(u.SessionsValidAfter):
			return session.EndedRevoked, nil
		}
		return "", nil
	}
}

// hashContext bounds the wait for a password-hashing slot: when every slot
// is busy for that long (a login flood), the request gets 503 with
// Retry-After instead of queueing without end.
func (s *Server) hashContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.hashWait)
}
