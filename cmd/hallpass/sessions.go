package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// sessionsListMax bounds `sessions list` without --user.
const sessionsListMax = 1000

// sessionsCommand runs `hallpass sessions list [--user NAME]` and
// `hallpass sessions revoke --user NAME | --id ID | --everyone`.
func sessionsCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: sessions needs a subcommand: list or revoke", errUsage)
	}
	sub := args[0]
	flags := map[string]string{}
	everyone := false
	rest := args[1:]
	for len(rest) > 0 {
		if rest[0] == "--everyone" {
			everyone, rest = true, rest[1:]
			continue
		}
		name, value, hasValue := strings.Cut(rest[0], "=")
		if name != "--user" && name != "--id" {
			return fmt.Errorf("%w: unknown argument %q for sessions %s", errUsage, rest[0], sub)
		}
		if !hasValue {
			if len(rest) < 2 {
				return fmt.Errorf("%w: %s needs a value", errUsage, name)
			}
			value, rest = rest[1], rest[1:]
		}
		flags[name] = value
		rest = rest[1:]
	}
	switch sub {
	case "list":
		if flags["--id"] != "" || everyone {
			return fmt.Errorf("%w: sessions list takes only --user", errUsage)
		}
	case "revoke":
		if n := len(flags) + map[bool]int{true: 1}[everyone]; n != 1 {
			return fmt.Errorf("%w: sessions revoke takes one of --user NAME, --id ID or --everyone", errUsage)
		}
	default:
		return fmt.Errorf("%w: unknown sessions subcommand %q", errUsage, sub)
	}

	b, err := openCLIBackends(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	svc, cli := b.account, account.CommandLine()

	var u user.User
	if name := flags["--user"]; name != "" {
		if u, err = svc.UserByName(ctx, cli, name); err != nil {
			return fmt.Errorf("user %q: %w", name, err)
		}
	}
	switch {
	case sub == "revoke" && everyone:
		ended, err := svc.SignOutEveryone(ctx, cli)
		if err != nil {
			return fmt.Errorf("sign everyone out: %w", err)
		}
		printEnded(stdout, "every user", ended)
		return nil
	case sub == "revoke" && u.ID != 0:
		ended, err := svc.EndAllSessions(ctx, cli, u.ID)
		if err != nil {
			return fmt.Errorf("sign out %q everywhere: %w", u.Username, err)
		}
		printEnded(stdout, u.Username, ended)
		return nil
	case sub == "revoke":
		id := flags["--id"]
		if _, ok := session.UserOfPublicID(id); !ok {
			return fmt.Errorf("%q is not a session ID (they look like 12.AbCdEfGhIjKlMnOp)", id)
		}
		if _, err := svc.EndUserSession(ctx, cli, id); err != nil {
			if errors.Is(err, account.ErrNotFound) {
				return fmt.Errorf("no live session %s", id)
			}
			return fmt.Errorf("sign out session %s: %w", id, err)
		}
		fmt.Fprintf(stdout, "session %s signed out\n", id)
		return nil
	}

	var recs []session.Record
	if u.ID != 0 {
		recs, err = svc.UserSessions(ctx, cli, u.ID)
	} else {
		recs, err = svc.RecentSessions(ctx, cli, 0, sessionsListMax)
	}
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tDEVICE\tIP\tCREATED\tLAST SEEN\tREPLICA")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.PublicID, r.Username, r.Device, r.IP,
			r.Created.UTC().Format(time.RFC3339), r.LastSeen.UTC().Format(time.RFC3339), r.Replica)
	}
	return tw.Flush()
}
