// Package web is Hallpass's HTTP surface: routes, middleware, handlers and
// page rendering. Handlers parse input, call one method of the account
// service, and render or redirect; the rules live in package account, and
// errors.go maps its errors to statuses and pages in one place.
package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/clientip"
	"github.com/hallpass/hallpass/internal/live"
	"github.com/hallpass/hallpass/internal/metrics"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/web"
)

// Sessions is what the web layer needs of the session manager: loading and
// saving the request's session, and reading it. Everything that changes
// sessions goes through the account service.
type Sessions interface {
	LoadAndSave(onStoreError func(w http.ResponseWriter, r *http.Request, err error)) func(http.Handler) http.Handler
	Current(ctx context.Context) (session.Info, bool)
	Ended(ctx context.Context) session.EndReason
	// For the open tabs' event stream: the session's store key and public
	// ID, a fresh look at a session, and "Stay signed in".
	CurrentKey(ctx context.Context) (string, bool)
	CurrentPublicID(ctx context.Context) (string, bool)
	Lookup(ctx context.Context, key string) (session.Record, session.EndReason, error)
	Refresh(ctx context.Context) error
}

// Check is a dependency /readyz reports on.
type Check struct {
	// Name says what it is in /readyz's answer ("session store").
	Name string
	Ping func(ctx context.Context) error
}

// Deps are everything the HTTP server needs, passed in by main.
type Deps struct {
	Logger       *slog.Logger
	ReplicaID    string
	SignupOpen   bool
	CookieSecure bool
	IdleTimeout  time.Duration
	// RememberFor is the lifetime of a "keep me signed in" session, shown
	// on the sign-in form's box; zero hides the box.
	RememberFor time.Duration
	Sessions    Sessions
	Account     *account.Service
	// ClientIP finds the client's address, trusting X-Forwarded-For only
	// from the configured proxies.
	ClientIP *clientip.Resolver
	// Ready are the dependencies /readyz checks.
	Ready []Check
	// Now is the clock for the times pages show; nil means time.Now.
	Now func() time.Time
	// Metrics counts requests; nil counts nothing.
	Metrics *metrics.Metrics
	// Draining reports that the process is shutting down, so /readyz sends
	// the load balancer elsewhere while in-flight requests finish; nil
	// means never.
	Draining func() bool
	// Live holds the open tabs' event streams (GET /events); nil builds
	// one that looks each stream's session up every second, which suits a
	// single process without Redis.
	Live *live.Hub
}

// Server holds the dependencies its handlers share.
type Server struct {
	Deps
	pages *pages
	// idleTimeout is Deps.IdleTimeout in words, for the home page.
	idleTimeout string
}

// NewServer builds the whole HTTP service. It fails only if the embedded
// templates do not parse.
func NewServer(d Deps) (http.Handler, error) {
	tfs, err := web.Templates()
	if err != nil {
		return nil, fmt.Errorf("open embedded templates: %w", err)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Draining == nil {
		d.Draining = func() bool { return false }
	}
	if d.Live == nil {
		d.Live = live.New(live.Options{Sessions: d.Sessions, PollEvery: time.Second, Now: d.Now, Logger: d.Logger})
	}
	p, err := parsePages(tfs, d.Now)
	if err != nil {
		return nil, err
	}
	s := &Server{Deps: d, pages: p, idleTimeout: web.Duration(d.IdleTimeout)}
	return s.routes()
}
