package web

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/user"
)

// retryAfterSeconds is what a 503 asks clients to wait.
const retryAfterSeconds = 5

// serverError logs err and answers a plain 500 page. The error text never
// reaches the visitor.
func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.LogAttrs(r.Context(), slog.LevelError, "server error",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong",
		"Hallpass hit an unexpected error. It has been logged; please try again.")
}

// unavailable answers 503 when a dependency (session store, database,
// password hashing capacity) cannot serve the request right now. The session
// cookie is left alone: a store outage is not a sign-out.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	level := slog.LevelWarn
	if errors.Is(err, password.ErrBusy) {
		level = slog.LevelInfo
	}
	s.log.LogAttrs(r.Context(), level, "dependency unavailable",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	s.errorPage(w, r, http.StatusServiceUnavailable, "Temporarily unavailable",
		"Hallpass cannot reach one of its services right now. You have not been signed out; please try again in a few seconds.")
}

// clientError answers a 4xx page with a message meant for the visitor.
func (s *Server) clientError(w http.ResponseWriter, r *http.Request, status int, heading, message string) {
	s.errorPage(w, r, status, heading, message)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.clientError(w, r, http.StatusNotFound, "Page not found", "There is no page at this address.")
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	s.clientError(w, r, http.StatusMethodNotAllowed, "Method not allowed", "This page does not accept "+r.Method+" requests.")
}

// errorPage renders the error template, with the account header when the
// request carries a signed-in session (never for a 503: the session may be
// what failed).
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, message string) {
	data := pageData{Title: heading, Replica: s.replicaID, Status: status, Heading: heading, Message: message, Path: r.URL.Path}
	if status != http.StatusServiceUnavailable {
		if info, ok := s.sessions.Current(r.Context()); ok {
			data.User = &info
			data.IsAdmin = info.Role == string(user.RoleAdmin)
		}
	}
	var buf bytes.Buffer
	if t, ok := s.pages.byName["error"]; !ok || t.ExecuteTemplate(&buf, "layout", data) != nil {
		buf.Reset()
		buf.WriteString(strings.Join([]string{strconv.Itoa(status), heading, message}, " - "))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}
