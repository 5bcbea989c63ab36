package web

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/web"
)

// Throttle is what the web layer needs of the shared attempt counters.
type Throttle interface {
	Check(ctx context.Context, key string, p throttle.Policy) (time.Duration, error)
	Fail(ctx context.Context, key string, p throttle.Policy) (time.Duration, error)
	Reset(ctx context.Context, key string) error
}

// loginKeys are the counters a sign-in attempt is judged by: the account
// (lower-cased, so case variants share it) and the client address.
func (s *Server) loginKeys(r *http.Request, username string) (account, client string) {
	return "login:user:" + strings.ToLower(username), "login:ip:" + s.clientIP.ClientIP(r)
}

// waitFor returns the longest wait in force on any of keys. Throttling
// fails open: a counter store that cannot answer is logged, and the attempt
// goes on (a Redis outage already answers 503 through the session store).
func (s *Server) waitFor(r *http.Request, p throttle.Policy, keys ...string) time.Duration {
	var wait time.Duration
	for _, k := range keys {
		w, err := s.throttle.Check(r.Context(), k, p)
		if err != nil {
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "throttle check failed", slog.Any("error", err))
			continue
		}
		wait = max(wait, w)
	}
	return wait
}

// countFailure records a failed attempt on every key.
func (s *Server) countFailure(r *http.Request, p throttle.Policy, keys ...string) {
	for _, k := range keys {
		if _, err := s.throttle.Fail(r.Context(), k, p); err != nil {
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "throttle record failed", slog.Any("error", err))
		}
	}
}

// tooManyAttempts answers 429 with Retry-After and a page that says how
// long to wait.
func (s *Server) tooManyAttempts(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.clientError(w, r, http.StatusTooManyRequests, "Too many attempts",
		"There were too many attempts from here or for this account. Wait "+humanWait(secs)+" and try again.")
}

// humanWait says a number of seconds in words.
func humanWait(secs int) string {
	switch {
	case secs <= 1:
		return "a second"
	case secs < 90:
		return strconv.Itoa(secs) + " seconds"
	default:
		return web.Plural((secs+59)/60, "minute")
	}
}
