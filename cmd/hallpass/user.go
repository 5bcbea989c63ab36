package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// userCommand runs `hallpass user SUBCOMMAND …`.
func userCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: user needs a subcommand: add, passwd, disable, enable or list", errUsage)
	}
	sub, rest := args[0], args[1:]
	admin := false
	var names []string
	for _, a := range rest {
		switch {
		case a == "--admin" && sub == "add":
			admin = true
		case strings.HasPrefix(a, "-"):
			return fmt.Errorf("%w: unknown flag %q for user %s", errUsage, a, sub)
		default:
			names = append(names, a)
		}
	}
	wantNames := 1
	if sub == "list" {
		wantNames = 0
	}
	if len(names) != wantNames {
		return fmt.Errorf("%w: user %s takes %d name(s), got %d", errUsage, sub, wantNames, len(names))
	}

	b, err := openCLIBackends(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	hasher := password.NewHasher(password.DefaultParams, 1)

	switch sub {
	case "add":
		return userAdd(ctx, b, hasher, names[0], admin, stdin, stdout, stderr)
	case "passwd":
		return userPasswd(ctx, b, hasher, names[0], stdin, stdout, stderr)
	case "disable", "enable":
		return userSetDisabled(ctx, b, names[0], sub == "disable", stdout)
	case "list":
		return userList(ctx, b.users, stdout)
	}
	return fmt.Errorf("%w: unknown user subcommand %q", errUsage, sub)
}

// openCLIBackends opens the stores for a one-shot command, with the same
// configuration `serve` would use and logs on stderr.
func openCLIBackends(ctx context.Context, getenv func(string) string, stderr io.Writer) (*backends, error) {
	cfg, err := config.Load(nil, getenv, hostname())
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	return openBackends(ctx, cfg, newLogger(stderr, cfg.LogFormat, slog.LevelWarn), nil)
}

// cliActor names the command line as the actor in audit records.
const cliActor = "cli"

// endSessions ends every session of u: durably in the database at once, and
// in the session store when it is shared. It says what happened on stdout.
func endSessions(ctx context.Context, b *backends, u user.User, reason session.EndReason, stdout io.Writer) error {
	if err := b.users.SetSessionsValidAfter(ctx, u.ID, time.Now()); err != nil {
		return fmt.Errorf("end sessions of %q: %w", u.Username, err)
	}
	if !b.shared {
		fmt.Fprintf(stdout, "sessions of %s end at their next refresh by the running server (within a minute)\n", u.Username)
		return nil
	}
	n, err := b.sessions.RevokeUser(ctx, u.ID, reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d session(s) of %s signed out\n", n, u.Username)
	return nil
}

func userSetDisabled(ctx context.Context, b *backends, name string, disabled bool, stdout io.Writer) error {
	u, err := b.users.ByUsername(ctx, name)
	if err != nil {
		return fmt.Errorf("find user %q: %w", name, err)
	}
	if err := b.users.SetDisabled(ctx, u.ID, disabled); err != nil {
		return fmt.Errorf("update user %q: %w", u.Username, err)
	}
	action, verb := audit.UserEnabled, "enabled"
	if disabled {
		action, verb = audit.UserDisabled, "disabled"
	}
	fmt.Fprintf(stdout, "user %s %s\n", u.Username, verb)
	if err := b.audit.Record(ctx, audit.Event{ActorName: cliActor, Action: action, TargetUserID: u.ID, TargetName: u.Username}); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if disabled {
		return endSessions(ctx, b, u, session.EndedDisabled, stdout)
	}
	return nil
}

func userAdd(ctx context.Context, b *backends, hasher *password.Hasher, name string, admin bool, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := user.ValidateUsername(name); err != nil {
		return err
	}
	pw, err := readNewPassword(stdin, stderr)
	if err != nil {
		return err
	}
	hash, err := hasher.Hash(ctx, pw)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	role := user.RoleUser
	if admin {
		role = user.RoleAdmin
	}
	u, err := b.users.Create(ctx, user.NewUser{Username: name, PasswordHash: hash, Role: role})
	if err != nil {
		return fmt.Errorf("create user %q: %w", name, err)
	}
	fmt.Fprintf(stdout, "created %s %s (id %d)\n", u.Role, u.Username, u.ID)
	if err := b.audit.Record(ctx, audit.Event{ActorName: cliActor, Action: audit.UserCreated, TargetUserID: u.ID, TargetName: u.Username, Detail: "role " + string(u.Role)}); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

func userPasswd(ctx context.Context, b *backends, hasher *password.Hasher, name string, stdin io.Reader, stdout, stderr io.Writer) error {
	u, err := b.users.ByUsername(ctx, name)
	if err != nil {
		return fmt.Errorf("find user %q: %w", name, err)
	}
	pw, err := readNewPassword(stdin, stderr)
	if err != nil {
		return err
	}
	hash, err := hasher.Hash(ctx, pw)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	if err := b.users.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return fmt.Errorf("set password of %q: %w", u.Username, err)
	}
	fmt.Fprintf(stdout, "password of %s changed\n", u.Username)
	if err := b.audit.Record(ctx, audit.Event{ActorName: cliActor, Action: audit.PasswordChanged, TargetUserID: u.ID, TargetName: u.Username, Detail: "by the command line"}); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return endSessions(ctx, b, u, session.EndedPasswordChanged, stdout)
}

func userList(ctx context.Context, users user.Store, stdout io.Writer) error {
	list, err := users.List(ctx, user.ListOptions{Limit: 10000})
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSERNAME\tROLE\tSTATUS\tCREATED")
	for _, u := range list {
		status := "active"
		if u.Disabled {
			status = "disabled"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", u.ID, u.Username, u.Role, status, u.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// readNewPassword reads a password: from a terminal, twice and without echo;
// otherwise the first line of stdin, so scripts can pipe it in.
func readNewPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	var pw string
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stderr, "Repeat password: ")
		second, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(first) != string(second) {
			return "", errors.New("the two passwords differ")
		}
		pw = string(first)
	} else {
		line, err := bufio.NewReader(io.LimitReader(stdin, password.MaxLength+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from standard input: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if err := password.Validate(pw); err != nil {
		return "", fmt.Errorf("password: %w (use %d to %d bytes)", err, password.MinLength, password.MaxLength)
	}
	return pw, nil
}
