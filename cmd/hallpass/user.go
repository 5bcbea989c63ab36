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

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/user"
)

// userCommand runs `hallpass user SUBCOMMAND …`.
func userCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: user needs a subcommand: add, passwd, disable, enable, list or mfa reset", errUsage)
	}
	sub, rest := args[0], args[1:]
	if sub == "mfa" {
		// `user mfa reset NAME`: the one two-word subcommand.
		if len(rest) == 0 || rest[0] != "reset" {
			return fmt.Errorf("%w: user mfa takes reset NAME", errUsage)
		}
		sub, rest = "mfa reset", rest[1:]
	}
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
	svc, cli := b.account, account.CommandLine()

	switch sub {
	case "add":
		pw, err := readNewPassword(stdin, stderr)
		if err != nil {
			return err
		}
		role := user.RoleUser
		if admin {
			role = user.RoleAdmin
		}
		u, err := svc.CreateUser(ctx, cli, names[0], pw, role)
		if err != nil {
			return fmt.Errorf("create user %q: %w", names[0], err)
		}
		fmt.Fprintf(stdout, "created %s %s (id %d)\n", u.Role, u.Username, u.ID)
		return nil
	case "passwd":
		u, err := svc.UserByName(ctx, cli, names[0])
		if err != nil {
			return fmt.Errorf("user %q: %w", names[0], err)
		}
		pw, err := readNewPassword(stdin, stderr)
		if err != nil {
			return err
		}
		ended, err := svc.SetPassword(ctx, cli, u.ID, pw)
		if err != nil {
			return fmt.Errorf("set password of %q: %w", u.Username, err)
		}
		fmt.Fprintf(stdout, "password of %s changed\n", u.Username)
		printEnded(stdout, u.Username, ended)
		return nil
	case "disable", "enable":
		disable := sub == "disable"
		u, err := svc.UserByName(ctx, cli, names[0])
		if err != nil {
			return fmt.Errorf("user %q: %w", names[0], err)
		}
		u, ended, err := svc.SetDisabled(ctx, cli, u.ID, disable)
		if err != nil {
			return fmt.Errorf("%s user %q: %w", sub, u.Username, err)
		}
		fmt.Fprintf(stdout, "user %s %sd\n", u.Username, sub)
		if disable {
			printEnded(stdout, u.Username, ended)
		}
		return nil
	case "list":
		list, err := svc.ListUsers(ctx, cli, user.ListOptions{Limit: userListMax})
		if err != nil {
			return fmt.Errorf("list users: %w", err)
		}
		return printUsers(stdout, list)
	case "mfa reset":
		u, err := svc.UserByName(ctx, cli, names[0])
		if err != nil {
			return fmt.Errorf("user %q: %w", names[0], err)
		}
		had, err := svc.ResetFactors(ctx, cli, u.ID)
		if err != nil {
			return fmt.Errorf("reset second factors of %q: %w", u.Username, err)
		}
		fmt.Fprintf(stdout, "second factors of %s removed: authenticator app %s, %d passkey(s), %d unused recovery code(s)\n",
			u.Username, map[bool]string{true: "yes", false: "none"}[had.TOTP], had.Passkeys, had.RecoveryCodesLeft)
		return nil
	}
	return fmt.Errorf("%w: unknown user subcommand %q", errUsage, sub)
}

// userListMax bounds `user list`.
const userListMax = 10000

// openCLIBackends opens the stores for a one-shot command, with the same
// configuration `serve` would use and logs on stderr.
func openCLIBackends(ctx context.Context, getenv func(string) string, stderr io.Writer) (*backends, error) {
	cfg, err := config.Load(nil, getenv, hostname())
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	return openBackends(ctx, cfg, newLogger(stderr, cfg.LogFormat, slog.LevelWarn), nil, 1, false)
}

// printEnded says what ending a user's sessions did.
func printEnded(stdout io.Writer, name string, ended account.Ended) {
	if ended.Deferred {
		fmt.Fprintf(stdout, "sessions of %s end at their next refresh by the running server (within a minute): it keeps them in its own memory\n", name)
		return
	}
	fmt.Fprintf(stdout, "%d session(s) of %s signed out\n", ended.Sessions, name)
}

func printUsers(stdout io.Writer, list []user.User) error {
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
// otherwise the first line of stdin, so scripts can pipe it in. Whether it
// is good enough is the account service's to say.
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
	return pw, nil
}
