package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/rediscluster"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// sessionsListMax bounds `sessions list` without --user.
const sessionsListMax = 1000

// sessionsCommand runs `hallpass sessions list [--user NAME]`,
// `hallpass sessions revoke --user NAME | --id ID | --everyone` and
// `hallpass sessions shards`.
func sessionsCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: sessions needs a subcommand: list, revoke or shards", errUsage)
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
	case "shards":
		if len(flags) > 0 || everyone {
			return fmt.Errorf("%w: sessions shards takes no argument", errUsage)
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
	if sub == "shards" {
		return printShards(stdout, b.cluster)
	}
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

// printShards prints which primary of the Redis Cluster holds each shard
// tag's slot, and how far the largest primary's share is from an even one:
// the figures to even the tags out by moving their slots (docs/SCALING.md).
func printShards(stdout io.Writer, c *rediscluster.Cluster) error {
	if c == nil {
		return errors.New("sessions shards needs sessions in a Redis Cluster (HALLPASS_REDIS_CLUSTER)")
	}
	slots := map[string][]int{}
	for i := range session.ShardTags {
		slot := rediscluster.Slot(session.RedisShardKey(session.ShardTag(i)))
		node := c.PrimaryFor(session.RedisShardKey(session.ShardTag(i)))
		slots[node] = append(slots[node], slot)
	}
	nodes := slices.Sorted(maps.Keys(slots))
	even := float64(session.ShardTags) / float64(len(nodes))
	largest := 0
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRIMARY\tTAGS\tSHARE\tSLOTS")
	for _, node := range nodes {
		s := slots[node]
		slices.Sort(s)
		largest = max(largest, len(s))
		list := make([]string, len(s))
		for i, slot := range s {
			list[i] = strconv.Itoa(slot)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%s\n", node, len(s), 100*float64(len(s))/session.ShardTags, strings.Join(list, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d shard tags over %d primaries: an even share is %.1f; the largest holds %d (%.0f%% over)\n",
		session.ShardTags, len(nodes), even, largest, 100*(float64(largest)/even-1))
	return nil
}
