package account

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/throttle"
)

// loginKeys are the counters a sign-in attempt is judged by: the account
// (lower-cased, so case variants share it) and the client address.
func loginKeys(username, ip string) (account, client string) {
	return "login:user:" + strings.ToLower(username), "login:ip:" + ip
}

// waitFor returns the longest wait in force on any of keys. Throttling
// fails open: a counter store that cannot answer is logged, and the attempt
// goes on.
func (s *Service) waitFor(ctx context.Context, p throttle.Policy, keys ...string) time.Duration {
	var wait time.Duration
	for _, k := range keys {
		w, err := s.throttle.Check(ctx, k, p)
		if err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "throttle check failed", slog.Any("error", err))
			continue
		}
		wait = max(wait, w)
	}
	return wait
}

// countFailure records a failed attempt on every key.
func (s *Service) countFailure(ctx context.Context, p throttle.Policy, keys ...string) {
	for _, k := range keys {
		if _, err := s.throttle.Fail(ctx, k, p); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "throttle record failed", slog.Any("error", err))
		}
	}
}
