package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/session"
)

// sessionsListMax bounds `sessions list` without --user.
const sessionsListMax = 1000

// sessionsCommand runs `hallpass sessions list [--user NAME]` and
// `hallpass sessions revoke --user NAME | --id ID`.
func sessionsCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: sessions needs a subcommand: list or revoke", errUsage)
	}
	sub := args[0]
	flags := map[string]string{}
	rest := args[1:]
	for len(rest) > 0 {
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
		if flags["--id"] != "" {
			return fmt.Errorf("%w: sessions list takes only --user", errUsage)
		}
	case "revoke":
		if (flags["--user"] == "") == (flags["--id"] == "") {
			return fmt.Errorf("%w: sessions revoke takes either --user NAME or --id ID", errUsage)
		}
	default:
		return fmt.Errorf("%w: unknown sessions subcommand %q", errUsage, sub)
	}

	b, err := openCLIBackends(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer b.close()

	if sub == "revoke" && flags["--user"] != "" {
		u, err := b.users.ByUsername(ctx, flags["--user"])
		if err != nil {
			return fmt.Errorf("find user %q: %w", flags["--user"], err)
		}
		if err := b.audit.Record(ctx, audit.Event{ActorName: cliActor, Action: audit.SessionsRevokedAll, TargetUserID: u.ID, TargetName: u.Username, Detail: "signed out everywhere by the command line"}); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return endSessions(ctx, b, u, session.EndedByAdmin, stdout)
	}
	if !b.shared {
		return errLocalSessions
	}
	if sub == "revoke" {
		id := flags["--id"]
		uid, ok := session.UserOfPublicID(id)
		if !ok {
			return fmt.Errorf("%q is not a session ID (they look like 12.AbCdEfGhIjKlMnOp)", id)
		}
		revoked, err := b.sessions.Revoke(ctx, uid, id, session.EndedByAdmin)
		if err != nil {
			return err
		}
		if !revoked {
			return fmt.Errorf("no live session %s", id)
		}
		u, err := b.users.ByID(ctx, uid)
		if err != nil {
			return fmt.Errorf("find user %d: %w", uid, err)
		}
		if err := b.audit.Record(ctx, audit.Event{ActorName: cliActor, Action: audit.SessionRevoked, TargetUserID: uid, TargetName: u.Username, Detail: "session " + id + " by the command line"}); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		fmt.Fprintf(stdout, "session %s signed out\n", id)
		return nil
	}

	var recs []session.Record
	if name := flags["--user"]; name != "" {
		u, err := b.users.ByUsername(ctx, name)
		if err != nil {
			return fmt.Errorf("find user %q: %w", name, err)
		}
		recs, err = b.sessions.ListUser(ctx, u.ID)
		if err != nil {
			return err
		}
	} else {
		recs, err = b.sessions.Recent(ctx, 0, sessionsListMax)
		if err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tDEVICE\tIP\tCREATED\tLAST SEEN\tREPLICA")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.PublicID, r.Username, r.Device, r.IP,
			r.Created.UTC().Format(time.RFC3339), r.LastSeen.UTC().Format(time.RFC3339), r.Replica)
	}
	return tw.Flush()
}
