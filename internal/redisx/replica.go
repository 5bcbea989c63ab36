package redisx

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// errNotReplica is returned when a server a Sentinel listed as a replica
// says, through ROLE, that it is not one, or cannot serve reads yet.
var errNotReplica = errors.New("not a usable replica")

// ReplicaPool returns a pool of read-only connections to a replica of the
// primary: for reads while the primary cannot be reached (killed, and not
// yet replaced by Sentinel). It stays the same pool for the life of s.
// Nothing must be written through it: a replica refuses writes (READONLY),
// and a write that reached one would be lost at its next sync anyway.
//
// A new connection asks the Sentinels for the primary's replicas
// (SENTINEL REPLICAS), tries first those the Sentinel sees up and then
// those whose link to the primary it saw up, and keeps the first that says through ROLE that it is a replica and
// has synced with its primary since it started (INFO replication:
// master_link_status up, or master_link_down_since_seconds not -1), or that
// it has just been promoted from one (see syncedReplica). A replica that
// never synced (started from an old file, or still in its first full sync)
// may hold data older than any acknowledged write, so it is refused; once
// synced, it holds every write the primary had sent it before the link went
// down.
//
// How stale a replica read can be: a write acknowledged with WAIT 1 (a
// session created or revoked, see session.Options.WaitReplicas) reached at
// least one replica before it was acknowledged. With the one replica
// Hallpass deploys, that is the replica read here, so a read from it never
// finds a session whose revocation was acknowledged. With more replicas,
// WAIT must count all of them for the same guarantee. Writes that were not
// waited for (a session's last-seen refresh) may be missing.
//
// The connections are not retired when the primary changes: whatever the
// server they reach has become, reads from it stay as good (a promoted
// replica is the primary). A server that restarts breaks its connections,
// and new ones go through the checks above again.
func (s *SentinelPool) ReplicaPool() *redis.Pool { return s.replicas }

// newReplicaPool builds the pool ReplicaPool returns.
func (s *SentinelPool) newReplicaPool() *redis.Pool {
	return &redis.Pool{
		DialContext: s.dialReplica,
		TestOnBorrowContext: func(ctx context.Context, c redis.Conn, lastUsed time.Time) error {
			if err := c.Err(); err != nil {
				return err
			}
			if time.Since(lastUsed) < borrowCheckAfter {
				return nil
			}
			_, err := redis.DoContext(c, ctx, "PING")
			return err
		},
		MaxActive:   s.opts.MaxActive,
		MaxIdle:     s.opts.MaxIdle,
		IdleTimeout: s.opts.IdleTimeout,
		Wait:        true,
	}
}

// sentinelReplica is one replica as a Sentinel lists it.
type sentinelReplica struct {
	addr   string
	usable bool // not flagged down or disconnected by the Sentinel
	linkUp bool // the Sentinel saw its link to the primary up
}

// dialReplica connects to a usable replica, trying every one the first
// Sentinel that answers lists, within ctx.
func (s *SentinelPool) dialReplica(ctx context.Context) (redis.Conn, error) {
	replicas, err := s.resolveReplicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis sentinel %q: replicas: %w", s.opts.MasterName, err)
	}
	var errs []error
	for _, r := range replicas {
		c, err := s.dialServerAs(ctx, r.addr, "slave")
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no replica listed"))
	}
	return nil, fmt.Errorf("redis sentinel %q: no usable replica: %w", s.opts.MasterName, errors.Join(errs...))
}

// resolveReplicas asks the Sentinels, in turn from the one that answered
// last, for the primary's replicas, in the order to try them.
func (s *SentinelPool) resolveReplicas(ctx context.Context) ([]sentinelReplica, error) {
	n := len(s.opts.Addrs)
	first := int(s.next.Load())
	var errs []error
	for i := range n {
		all, err := s.askSentinelReplicas(ctx, s.opts.Addrs[(first+i)%n])
		if err == nil {
			// Those the Sentinel sees up first, then those it saw linked to
			// the primary; otherwise as it listed them. None is left out:
			// the flags are the Sentinel's own view (its link to a replica
			// being promoted is cut with every other client, and reads
			// "disconnected" for a moment), and each server is checked.
			slices.SortStableFunc(all, func(a, b sentinelReplica) int {
				return cmp.Or(compareTrueFirst(a.usable, b.usable), compareTrueFirst(a.linkUp, b.linkUp))
			})
			return all, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("no sentinel answered: %w", errors.Join(errs...))
}

// compareTrueFirst orders true before false.
func compareTrueFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// askSentinelReplicas asks one Sentinel for the primary's replicas, within
// ConnectTimeout.
func (s *SentinelPool) askSentinelReplicas(ctx context.Context, sentinel string) ([]sentinelReplica, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	c, err := redis.DialContext(ctx, "tcp", sentinel, s.sentinelDialOptions(s.opts.ConnectTimeout)...)
	if err != nil {
		return nil, fmt.Errorf("sentinel %s: %w", sentinel, err)
	}
	defer c.Close()
	reply, err := redis.Values(redis.DoContext(c, ctx, "SENTINEL", "REPLICAS", s.opts.MasterName))
	if err != nil {
		return nil, fmt.Errorf("sentinel %s: %w", sentinel, err)
	}
	replicas := make([]sentinelReplica, 0, len(reply))
	for _, entry := range reply {
		f, err := redis.StringMap(entry, nil)
		if err != nil {
			return nil, fmt.Errorf("sentinel %s: replica entry: %w", sentinel, err)
		}
		if f["ip"] == "" || !isPort(f["port"]) {
			continue
		}
		flags := strings.Split(f["flags"], ",")
		replicas = append(replicas, sentinelReplica{
			addr: net.JoinHostPort(f["ip"], f["port"]),
			usable: !slices.ContainsFunc(flags, func(flag string) bool {
				return flag == "s_down" || flag == "o_down" || flag == "disconnected"
			}),
			linkUp: f["master-link-status"] == "ok",
		})
	}
	// Last, the primary this Sentinel names: while a promotion is being
	// announced, a Sentinel that already lists no replica but the old
	// primary (down) may still be asked for the primary by the primary's
	// pool through another Sentinel that has not caught up, and the promoted
	// server is then the one that can answer (see syncedReplica).
	hostPort, err := redis.Strings(redis.DoContext(c, ctx, "SENTINEL", "get-master-addr-by-name", s.opts.MasterName))
	if err == nil && len(hostPort) == 2 && isPort(hostPort[1]) {
		replicas = append(replicas, sentinelReplica{addr: net.JoinHostPort(hostPort[0], hostPort[1]), usable: true})
	}
	return replicas, nil
}

// serverDialOptions are the options for a connection to a Redis server.
func (s *SentinelPool) serverDialOptions() []redis.DialOption {
	opts := []redis.DialOption{
		redis.DialConnectTimeout(s.opts.ConnectTimeout),
		redis.DialReadTimeout(s.opts.ReadTimeout),
		redis.DialWriteTimeout(s.opts.WriteTimeout),
	}
	if s.opts.Password != "" {
		opts = append(opts, redis.DialPassword(s.opts.Password))
	}
	if s.opts.ClientName != "" {
		opts = append(opts, redis.DialClientName(s.opts.ClientName))
	}
	return opts
}

// dialServerAs connects to addr and checks, within ConnectTimeout, that its
// ROLE is role ("master" or "slave"); a replica must also have synced with
// its primary since it started (see ReplicaPool).
func (s *SentinelPool) dialServerAs(ctx context.Context, addr, role string) (redis.Conn, error) {
	what := "redis primary"
	if role != "master" {
		what = "redis replica"
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	c, err := redis.DialContext(ctx, "tcp", addr, s.serverDialOptions()...)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, addr, err)
	}
	if err := checkRole(ctx, c, role); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s %s: %w", what, addr, err)
	}
	return c, nil
}

// checkRole checks that the server c reaches has the role wanted and, for a
// replica, that it has synced since it started.
func checkRole(ctx context.Context, c redis.Conn, want string) error {
	role, err := redis.Values(redis.DoContext(c, ctx, "ROLE"))
	if err == nil && len(role) == 0 {
		err = errors.New("empty ROLE reply")
	}
	if err != nil {
		return fmt.Errorf("ROLE: %w", err)
	}
	r, _ := redis.String(role[0], nil)
	if want == "master" {
		if r != want {
			return fmt.Errorf("%w: ROLE says %q", errNotPrimary, r)
		}
		return nil
	}
	if r != "slave" && r != "master" {
		return fmt.Errorf("%w: ROLE says %q", errNotReplica, r)
	}
	info, err := redis.String(redis.DoContext(c, ctx, "INFO", "replication"))
	if err != nil {
		return fmt.Errorf("INFO replication: %w", err)
	}
	return syncedReplica(parseInfo(info))
}

// syncedReplica reports whether INFO replication's fields describe a server
// whose data is at least what a replica in sync had: a replica that has
// synced with its primary since it started (its link is up, or went down at
// a known time; Redis reports -1 for a link never up), or a replica just
// promoted. Sentinel lists the replica it promotes as a replica until the
// promotion is announced, and for those few hundred milliseconds it is the
// only server that can answer; it says ROLE master, and shows that it
// carries on its old primary's replication history (second_repl_offset is
// not -1), which an old primary restarted from its own file does not.
func syncedReplica(info map[string]string) error {
	if info["role"] == "master" {
		if off, err := strconv.ParseInt(info["second_repl_offset"], 10, 64); err != nil || off < 0 {
			return fmt.Errorf("%w: a primary that was not promoted from a replica", errNotReplica)
		}
		return nil
	}
	if info["master_link_status"] == "up" {
		return nil
	}
	down, err := strconv.Atoi(info["master_link_down_since_seconds"])
	if err != nil || down < 0 {
		return fmt.Errorf("%w: has not synced with its primary since it started", errNotReplica)
	}
	return nil
}

// parseInfo reads the "field:value" lines of an INFO reply.
func parseInfo(s string) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\r\n")
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m
}
