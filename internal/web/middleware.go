package web

import (
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hallpass/hallpass/internal/requestid"
)

// maxFormBytes bounds every request body; larger ones get 413.
const maxFormBytes = 64 << 10

// fixedHeader is a response header whose value is the same on every
// response, built once when the middleware is: Header.Set would allocate
// its one-element value slice again on every request.
type fixedHeader struct {
	key   string
	value []string
}

func newFixedHeader(key, value string) fixedHeader {
	// The slice's capacity is 1, so a later Header.Add appends to a copy,
	// never to the array every response shares.
	return fixedHeader{key: http.CanonicalHeaderKey(key), value: []string{value}}
}

func (f fixedHeader) set(h http.Header) { h[f.key] = f.value }

// servedBy names the replica on every response, error pages included.
func (s *Server) servedBy(next http.Handler) http.Handler {
	header := newFixedHeader("X-Served-By", s.ReplicaID)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header.set(w.Header())
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic into a logged 500 page. It sits inside
// logRequests, so the panic shows in the access log as the 500 it became,
// with its request ID.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.serverError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status a handler wrote, for the request log.
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

func (sr *statusRecorder) Unwrap() http.ResponseWriter { return sr.ResponseWriter }

type requestIDKey struct{}

// logRequests gives each request an ID (also sent as X-Request-ID), logs one
// line when it ends and counts it in the metrics. Only the path is logged:
// query strings and bodies may carry credentials.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestid.New()
		w.Header().Set("X-Request-ID", id)
		r = r.WithContext(requestid.With(r.Context(), id))
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		took := time.Since(start)
		route := ""
		if rc := chi.RouteContext(r.Context()); rc != nil {
			route = rc.RoutePattern()
		}
		s.Metrics.Request(route, r.Method, rec.status, took)
		level := levelFor(rec.status)
		if level == slog.LevelInfo && (route == "/healthz" || route == "/readyz") {
			level = slog.LevelDebug // load balancers probe these every second
		}
		// The request ID comes from the context (package requestid), like
		// on every other line logged while serving the request.
		s.Logger.LogAttrs(r.Context(), level, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.String("route", route),
			slog.Duration("duration", took),
			slog.String("remote", r.RemoteAddr),
		)
	})
}

// securityHeaders sets the headers every page needs: a strict CSP with no
// inline script, no framing, no MIME sniffing, no referrer leaks.
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	headers := []fixedHeader{
		newFixedHeader("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
		newFixedHeader("X-Content-Type-Options", "nosniff"),
		newFixedHeader("X-Frame-Options", "DENY"),
		newFixedHeader("Referrer-Policy", "same-origin"),
		newFixedHeader("Cross-Origin-Opener-Policy", "same-origin"),
	}
	if s.CookieSecure {
		headers = append(headers, newFixedHeader("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for _, f := range headers {
			f.set(h)
		}
		next.ServeHTTP(w, r)
	})
}

// refuseCrossOrigin answers 403 to any state-changing request a browser sends
// from another origin (Fetch Metadata, falling back to Origin vs Host).
func (s *Server) refuseCrossOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.clientError(w, r, http.StatusForbidden, "Request refused", "This form was sent from another site, so it was not accepted. Go back, reload the page and try again.")
	}))
	return cop.Handler(next)
}

// noStore keeps pages that may show session data out of every cache.
func noStore(next http.Handler) http.Handler {
	header := newFixedHeader("Cache-Control", "no-store")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header.set(w.Header())
		next.ServeHTTP(w, r)
	})
}

// limitBody caps request bodies; the form parser then reports the excess.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxFormBytes {
			s.clientError(w, r, http.StatusRequestEntityTooLarge, "Too much data", "The form sent more data than Hallpass accepts.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		next.ServeHTTP(w, r)
	})
}

// requireUser sends visitors without a live session to the login page,
// remembering where they were going and why their session ended.
func (s *Server) requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.Sessions.Current(r.Context()); ok {
			next.ServeHTTP(w, r)
			return
		}
		q := url.Values{}
		q.Set("next", r.URL.RequestURI())
		if reason := s.Sessions.Ended(r.Context()); reason != "" {
			q.Set("reason", string(reason))
		}
		http.Redirect(w, r, "/login?"+q.Encode(), http.StatusSeeOther)
	})
}

// enrolFirst keeps a session that must enrol a second factor (the policy
// requires one, and the account had none at sign-in) to the pages that
// enrol one, prove the sign-in for it, or sign out: every other signed-in
// page sends it to the security page. Sign-out, the event stream and static
// files are outside the signed-in routes, so reachable anyway. The account
// service refuses sensitive actions of such a session too (ErrMustEnrol);
// this keeps every other page from showing it.
func (s *Server) enrolFirst(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := s.Sessions.Current(r.Context()); ok && info.MustEnrol && !enrolmentPath(r.URL.Path) {
			http.Redirect(w, r, "/account/security", http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// enrolmentPath reports whether a session that must enrol a second factor
// may open path.
func enrolmentPath(path string) bool {
	switch path {
	case "/account/security", "/account/totp", "/account/recovery-codes", "/account/passkeys", "/sudo", "/logout",
		"/account/keepalive": // "Stay signed in" while enrolling
		return true
	}
	for _, prefix := range [...]string{"/account/totp/", "/account/passkeys/", "/sudo/"} {
		if strings.HasPrefix(path, prefix) {
			return true
		}
	}
	return false
}

// staticFiles serves the embedded static files, with no directory listings.
func (s *Server) staticFiles(files fs.FS) http.Handler {
	server := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := path.Clean("/" + r.URL.Path)[1:]
		if st, err := fs.Stat(files, name); err != nil || st.IsDir() {
			s.notFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		server.ServeHTTP(w, r)
	})
}

// levelFor logs server errors louder than ordinary traffic.
func levelFor(status int) slog.Level {
	if status >= 500 {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
