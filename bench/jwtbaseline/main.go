// Command jwtbaseline is the stateless baseline of `make bench`: Hallpass's
// signed-in home page served the way a token-based app serves it, checking
// an HS256 JWT on every request instead of loading a session. It is a
// yardstick, not a mode of the product: it has no users, no passwords and no
// way to end a token before it expires, which is exactly the control
// Hallpass's numbers pay for.
//
// What it shares with Hallpass, so the comparison is fair:
//   - the same page: Hallpass's own templates (web.Templates(): layout,
//     partials and pages/home.html) with the same template functions and the
//     same fields, rendered into a buffer and then written;
//   - the same outer work per request: chi, X-Served-By, a request ID and
//     one slog access-log line, the same security headers (HSTS included),
//     Go's cross-origin protection, Cache-Control: no-store and Vary: Cookie;
//   - the same transport: the token travels in a __Host- cookie, as a
//     server-rendered app would carry it.
//
// The token is checked with github.com/golang-jwt/jwt/v5, the library Go
// token apps use, pinned to HS256 with issuer, audience and expiry required:
// a hand-rolled HMAC check would be a little faster, but no app ships one.
//
// POST /login issues a token to whoever names a user, without a password:
// it exists only so the load generator gets its cookie the way a browser
// would. Hallpass's sign-in cost (argon2id) is measured separately.
//
// Usage:
//
//	jwtbaseline -addr 127.0.0.1:8090 -replica jwt-1
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "jwtbaseline:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; stdout is unused but kept for symmetry with
// Hallpass's run.
func run(ctx context.Context, args []string, _ io.Writer, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stderr)
}
