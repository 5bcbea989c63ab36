package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/requestid"
)

const usage = `Hallpass signs people in with server-side sessions.

Usage:
  hallpass serve [flags]             serve the web app (hallpass serve --help for flags)
  hallpass migrate                   apply database migrations
  hallpass user add NAME [--admin]   create a user; the password is read from standard input
  hallpass user passwd NAME          set a user's password, read from standard input
  hallpass user disable NAME         stop a user from signing in
  hallpass user enable NAME          let a disabled user sign in again
  hallpass user list                 list users
  hallpass user mfa reset NAME       remove every second factor of a user (lost phone and codes); audited
  hallpass sessions list [--user NAME]            list live sessions (needs Redis)
  hallpass sessions revoke --user NAME | --id ID | --everyone  sign sessions out on every replica at once
  hallpass sessions shards           which Redis Cluster primary holds each shard tag (HALLPASS_REDIS_CLUSTER)
  hallpass healthcheck [--ready]     ask the server on this machine for /healthz (/readyz): the image's health check
  hallpass version                   print the version, commit and Go version of this binary
  hallpass config check [flags]      print the effective configuration, secrets masked; non-zero exit on any problem

The database is chosen by HALLPASS_DATABASE_URL (default sqlite:./data/hallpass.db).
`

// errUsage marks a command line that could not be understood.
var errUsage = errors.New("usage")

// run is the whole program; main only supplies the process's environment,
// so tests can start the real thing.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stderr)
	case "migrate":
		return migrate(ctx, getenv, stdout)
	case "user":
		return userCommand(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "sessions":
		return sessionsCommand(ctx, args[1:], getenv, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version":
		return versionCommand(args[1:], stdout)
	case "config":
		return configCommand(args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

// databaseURL is the database every subcommand uses: the variable, or the
// embedded default.
func databaseURL(getenv func(string) string) string {
	if v := getenv("HALLPASS_DATABASE_URL"); v != "" {
		return v
	}
	return config.DefaultDatabaseURL
}

// newLogger builds the process logger on w.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// Every line logged while serving a request carries its request ID.
	return slog.New(requestid.Handler(h))
}

// hostname is the default replica ID.
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "hallpass"
	}
	return h
}
