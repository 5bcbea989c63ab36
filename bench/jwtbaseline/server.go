package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/hallpass/hallpass/web"

	"github.com/go-chi/chi/v5"
)

// config is what the flags set.
type config struct {
	addr     string
	replica  string
	idle     time.Duration
	lifetime time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("jwtbaseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8090", "listen address")
	fs.StringVar(&c.replica, "replica", "jwt-1", "replica name sent as X-Served-By and shown on the page")
	fs.DurationVar(&c.idle, "idle-timeout", 30*time.Minute, "idle timeout the page mentions (a token cannot enforce it)")
	fs.DurationVar(&c.lifetime, "lifetime", 12*time.Hour, "token lifetime")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() != 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, nil
}

// serve listens on cfg.addr until ctx ends.
func serve(ctx context.Context, cfg config, stderr io.Writer) error {
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return fmt.Errorf("make signing key: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With(slog.String("replica", cfg.replica))
	app, err := newApp(log, cfg, secret[:], time.Now)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           app.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	log.Info("serving", slog.String("addr", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// app is the baseline server's dependencies.
type app struct {
	log    *slog.Logger
	cfg    config
	tokens *tokens
	home   *homePage
	now    func() time.Time
	// idleText is the idle timeout in words, worked out once as Hallpass
	// does.
	idleText string
}

func newApp(log *slog.Logger, cfg config, secret []byte, now func() time.Time) (*app, error) {
	home, err := parseHome(now)
	if err != nil {
		return nil, err
	}
	return &app{log: log, cfg: cfg, tokens: newTokens(secret, cfg.lifetime, now), home: home, now: now, idleText: web.Duration(cfg.idle)}, nil
}

// routes mirrors the shape of Hallpass's: the same outer chain, then the
// dynamic pages with no-store, then the protected home page.
func (a *app) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(a.servedBy, a.recoverPanics, a.logRequests, a.securityHeaders, http.NewCrossOriginProtection().Handler)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	r.Group(func(r chi.Router) {
		r.Use(noStore)
		r.Post("/login", a.handleLoginPost)
		r.Group(func(r chi.Router) {
			r.Use(a.requireToken)
			r.Get("/", a.handleHome)
		})
	})
	return r
}

// handleLoginPost handles "POST /login": a token for the named user, no
// password asked (see the package comment).
func (a *app) handleLoginPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	name := r.PostFormValue("username")
	if name == "" {
		http.Error(w, "username required", http.StatusUnprocessableEntity)
		return
	}
	tok, err := a.tokens.issue(identity{ID: 42, Username: name, Role: "user", Replica: a.cfg.replica})
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: tok, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// handleHome handles "GET /": the same page as Hallpass's home.
func (a *app) handleHome(w http.ResponseWriter, r *http.Request) {
	c := claimsFrom(r.Context())
	now := a.now()
	admin := c.Role == "admin"
	initial := c.Name
	if _, n := utf8.DecodeRuneInString(c.Name); n > 0 {
		initial = c.Name[:n]
	}
	data := pageData{
		Title:   "Home",
		Replica: a.cfg.replica,
		Path:    r.URL.Path,
		Account: &accountView{Username: c.Name, Initial: initial, Admin: admin, Security: true, AtHome: r.URL.Path == "/"},
		Data: homeView{
			Username:       c.Name,
			Initial:        initial,
			Admin:          admin,
			SignedIn:       newTimeView(c.IssuedAt.Time, now),
			IdleExpiry:     newTimeView(now.Add(a.cfg.idle), now),
			AbsoluteExpiry: newTimeView(c.ExpiresAt.Time, now),
			IdleTimeout:    a.idleText,
			SessionReplica: c.Replica,
		},
	}
	var buf bytes.Buffer
	if err := a.home.render(&buf, data); err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = buf.WriteTo(w)
}

func (a *app) serverError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.LogAttrs(r.Context(), slog.LevelError, "server error", slog.Any("error", err))
	http.Error(w, "internal error", http.StatusInternalServerError)
}

type claimsKey struct{}

func claimsFrom(ctx context.Context) *claims { return ctx.Value(claimsKey{}).(*claims) }

// requireToken is the whole of a stateless app's "session load": verify the
// token's signature and claims, no store asked. A missing or bad token is
// sent to /login, as Hallpass does.
func (a *app) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Cookie")
		ck, err := r.Cookie(cookieName)
		if err != nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		c, err := a.tokens.verify(ck.Value)
		if err != nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, c)))
	})
}

func (a *app) servedBy(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", a.cfg.replica)
		next.ServeHTTP(w, r)
	})
}

func (a *app) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.serverError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (sr *statusRecorder) WriteHeader(code int) {
	if sr.status == 0 {
		sr.status = code
	}
	sr.ResponseWriter.WriteHeader(code)
}

func (sr *statusRecorder) Write(b []byte) (int, error) {
	if sr.status == 0 {
		sr.status = http.StatusOK
	}
	return sr.ResponseWriter.Write(b)
}

// logRequests writes the same access-log line as Hallpass's.
func (a *app) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-ID", id)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		route := ""
		if rc := chi.RouteContext(r.Context()); rc != nil {
			route = rc.RoutePattern()
		}
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.String("route", route),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		)
	})
}

func (a *app) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		next.ServeHTTP(w, r)
	})
}

func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
