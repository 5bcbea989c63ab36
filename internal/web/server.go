// Package web is Hallpass's HTTP surface: routes, middleware, handlers and
// page rendering. Handlers parse input, call one domain method and render;
// the rules live in the session, user and password packages.
package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
	"github.com/hallpass/hallpass/web"
)

// UserStore is what the web layer needs of the user database.
type UserStore interface {
	Create(ctx context.Context, u user.NewUser) (user.User, error)
	ByUsername(ctx context.Context, name string) (user.User, error)
	SetPasswordHash(ctx context.Context, id int64, hash string) error
	Ping(ctx context.Context) error
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
	pages        *pages
}

// NewServer builds the whole HTTP service. It fails only if the embedded
// templates do not parse.
func NewServer(d Deps) (http.Handler, error) {
	tfs, err := web.Templates()
	if err != nil {
		return nil, fmt.Errorf("open embedded templates: %w", err)
	}
	p, err := parsePages(tfs)
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
		pages:        p,
	}
	return s.routes()
}
