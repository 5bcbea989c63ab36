package account

import (
	"context"
	"log/slog"
	"strings"

	"github.com/hallpass/hallpass/internal/clientip"
	"github.com/hallpass/hallpass/internal/throttle"
)

// DepThrottle names the attempt counters in an UnavailableError.
const DepThrottle = "attempt counters"

// accountKey is the counter of attempts at one account's password from
// browsers it does not know: sign-in and the password change share it.
// Lower-cased, so case variants share it.
func accountKey(username string) string {
	return "login:user:" + strings.ToLower(username)
}

// clientKey is the counter of sign-in attempts from one client: its IPv4
// address, or its IPv6 /64.
func clientKey(ip string) string {
	return "login:ip:" + clientip.ThrottleKey(ip)
}

// attemptKeys are the counters a password attempt at username is judged
// by: the account's shared budget — or, for a browser whose device token
// vouches that it signed in to this account before, that device's own
// budget — and the client's address. An attacker who keeps the shared
// budget used up, from anywhere, then cannot lock out the owner's own
// browsers; one who steals a device token gets that device's budget only.
func (s *Service) attemptKeys(a Actor, username string) (account, client string) {
	if s.devices != nil && a.DeviceToken != "" {
		if id, ok := s.devices.Verify(a.DeviceToken, username); ok {
			return "login:device:" + id, clientKey(a.IP)
		}
	}
	return accountKey(username), clientKey(a.IP)
}

// signupKey is the counter of sign-ups from one client.
func signupKey(ip string) string {
	return "signup:ip:" + clientip.ThrottleKey(ip)
}

// reserve takes one attempt on every key under p before any password is
// checked, atomically per key and on every replica at once (Throttle.Attempt
// counts the attempt as a failure right away), so parallel guesses get no
// more checks than sequential ones. If any key must wait, the attempts
// already taken are given back and a ThrottledError says how long. It fails
// closed: a counter that cannot be read or written is ErrUnavailable, and
// the caller must not check the password, or a broken throttle would be an
// unlimited password oracle.
func (s *Service) reserve(ctx context.Context, p throttle.Policy, keys ...string) error {
	for i, k := range keys {
		v, err := s.throttle.Attempt(ctx, k, p)
		if err != nil {
			s.giveBack(ctx, p, keys[:i]...)
			return unavailable(DepThrottle, err)
		}
		if v.Wait > 0 {
			s.giveBack(ctx, p, keys[:i]...)
			return &ThrottledError{Wait: v.Wait, Refused: v.Refused}
		}
	}
	return nil
}

// worthRecording says whether the refusal number n of one wait gets an
// audit record: the first, then the 10th, 100th, 1000th… with the count so
// far. A flood of refused attempts costs nothing to send, and must not cost
// a database row each.
func worthRecording(n int) bool {
	for n >= 10 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}

// giveBack returns attempts reserve took that turned out not to be guesses:
// the password was right, or was never checked. A failure is logged: the
// count then stays one higher, the safe direction.
func (s *Service) giveBack(ctx context.Context, p throttle.Policy, keys ...string) {
	for _, k := range keys {
		if err := s.throttle.Forgive(ctx, k, p); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "throttle forgive failed", slog.Any("error", err))
		}
	}
}

// clearAccount forgets an account's failures once its password was given
// right; the client's other attempts still count.
func (s *Service) clearAccount(ctx context.Context, account, client string) {
	if err := s.throttle.Reset(ctx, account); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "throttle reset failed", slog.Any("error", err))
	}
	if client != "" {
		s.giveBack(ctx, s.loginPolicy, client)
	}
}
