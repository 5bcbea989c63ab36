package web

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/hallpass/hallpass/web"
)

// routes maps Hallpass's whole URL surface and its middleware chains.
func (s *Server) routes() (http.Handler, error) {
	static, err := web.Static()
	if err != nil {
		return nil, fmt.Errorf("open embedded static files: %w", err)
	}
	r := chi.NewRouter()
	// Outer chain, every response: served-by, panic recovery, request log,
	// security headers, cross-origin refusal for state-changing requests.
	r.Use(s.servedBy, s.recoverPanics, s.logRequests, s.securityHeaders, s.refuseCrossOrigin)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)

	// Public: no session is loaded.
	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	r.Handle("/static/*", http.StripPrefix("/static/", s.staticFiles(static)))

	// Dynamic: the session is loaded and saved, pages are never cached.
	r.Group(func(r chi.Router) {
		r.Use(noStore, s.limitBody, s.sessions.LoadAndSave(s.unavailable))
		r.Get("/login", s.handleLoginGet)
		r.Post("/login", s.handleLoginPost)
		r.Get("/logout", s.handleLogoutGet)
		r.Post("/logout", s.handleLogoutPost)
		r.Get("/signup", s.handleSignupGet)
		r.Post("/signup", s.handleSignupPost)

		// Protected: a signed-in user is required.
		r.Group(func(r chi.Router) {
			r.Use(s.requireUser)
			r.Get("/", s.handleHome)
		})
	})
	return r, nil
}
