package web

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/web"
)

// routes maps Hallpass's whole URL surface and its middleware chains.
func (s *Server) routes() (http.Handler, error) {
	static, err := web.Static()
	if err != nil {
		return nil, fmt.Errorf("open embedded static files: %w", err)
	}
	r := chi.NewRouter()
	// Outer chain, every response: served-by, request ID + log + metrics,
	// panic recovery (inside the log, so a panic is logged as its 500),
	// security headers, cross-origin refusal for state-changing requests.
	r.Use(s.servedBy, s.logRequests, s.recoverPanics, s.securityHeaders, s.refuseCrossOrigin)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)

	// Public: no session is loaded.
	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	r.Handle("/static/*", http.StripPrefix("/static/", s.staticFiles(static)))

	// The open tabs' event stream: the session is loaded without counting
	// as activity, so a stream never keeps a session alive by itself.
	r.With(noStore, session.Passive, s.Sessions.LoadAndSave(s.unavailable)).Get("/events", s.handleEvents)

	// Dynamic: the session is loaded and saved, pages are never cached.
	r.Group(func(r chi.Router) {
		r.Use(noStore, s.limitBody, s.Sessions.LoadAndSave(s.unavailable))
		r.Get("/login", s.handleLoginGet)
		r.Post("/login", s.handleLoginPost)
		r.Get("/logout", s.handleLogoutGet)
		r.Post("/logout", s.handleLogoutPost)
		r.Get("/signup", s.handleSignupGet)
		r.Post("/signup", s.handleSignupPost)
		// The second step of a sign-in (password right, second factor
		// awaited), and passkey sign-in with or without a password.
		r.Get("/login/verify", s.handleLoginVerifyGet)
		r.Post("/login/verify", s.handleLoginVerifyPost)
		r.Post("/login/passkey/options", s.handlePasskeyLoginOptions)
		r.Post("/login/passkey", s.handlePasskeyLogin)

		// Protected: a signed-in user is required, and one who must enrol
		// a second factor reaches only the pages for it.
		r.Group(func(r chi.Router) {
			r.Use(s.requireUser, s.enrolFirst)
			r.Get("/", s.handleHome)
			r.Get("/account/sessions", s.handleAccountSessions)
			r.Post("/account/sessions/revoke-others", s.handleAccountRevokeOthers)
			r.Post("/account/keepalive", s.handleKeepAlive)
			r.Post("/account/sessions/{id}/revoke", s.handleAccountSessionRevoke)
			r.Get("/account/password", s.handleAccountPasswordGet)
			r.Post("/account/password", s.handleAccountPasswordPost)
			// Second factors and sudo mode.
			r.Get("/account/security", s.handleAccountSecurity)
			r.Get("/account/totp", s.handleTOTPGet)
			r.Post("/account/totp", s.handleTOTPPost)
			r.Post("/account/totp/remove", s.handleTOTPRemove)
			r.Post("/account/recovery-codes", s.handleRecoveryCodesRegenerate)
			r.Post("/account/passkeys/options", s.handlePasskeyRegisterOptions)
			r.Post("/account/passkeys", s.handlePasskeyRegister)
			r.Post("/account/passkeys/{id}/remove", s.handlePasskeyRemove)
			r.Post("/sudo", s.handleSudoPost)
			r.Post("/sudo/passkey/options", s.handlePasskeySudoOptions)
			r.Post("/sudo/passkey", s.handlePasskeySudo)

			// Admin: the administrator role is required.
			r.Group(func(r chi.Router) {
				r.Use(s.requireAdmin)
				r.Get("/admin", s.handleAdminHome)
				r.Get("/admin/users", s.handleAdminUsers)
				r.Get("/admin/users/{id}", s.handleAdminUser)
				r.Post("/admin/users/{id}/revoke-all", s.handleAdminRevokeAll)
				r.Post("/admin/users/{id}/disable", s.handleAdminDisable)
				r.Post("/admin/users/{id}/enable", s.handleAdminEnable)
				r.Post("/admin/sessions/{id}/revoke", s.handleAdminSessionRevoke)
				r.Post("/admin/sign-out-everyone", s.handleAdminSignOutEveryone)
				r.Get("/admin/audit", s.handleAdminAudit)
			})
		})
	})
	return r, nil
}
