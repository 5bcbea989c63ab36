package redisx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
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
// A new connection goes to the replica furthest along the replication
// stream. It asks the Sentinels for the primary's replicas (SENTINEL
// REPLICAS; the first Sentinel that answers), dials every one at once, and
// keeps, of those that say through ROLE that they are a replica and have
// synced with their primary since they started (INFO replication:
// master_link_status up, or master_link_down_since_seconds not -1) or have
// just been promoted from one (see syncedReplica), the one with the highest
// replication offset as it reports it itself (slave_repl_offset; for a
// promoted one, master_repl_offset), not as the Sentinel last saw it (up to
// ten seconds ago). A replica that never synced (started from an old file,
// or still in its first full sync) may hold data older than any
// acknowledged write, so it is refused whatever its offset; one that does
// not answer within ConnectTimeout is passed over. Ties go to the first
// listed.
//
// Why the highest offset: replication is one stream, and each replica holds
// a prefix of it, so the replica furthest along holds every write any of
// them holds. A write acknowledged with WAIT 1 (a session created or
// revoked, see session.Options.WaitReplicas) reached at least one replica
// before it was acknowledged, so it is on the furthest replica too, however
// many replicas there are: once the primary is lost (the offsets stop
// moving), a read here never finds a session whose revocation was
// acknowledged, as long as a replica that has it answers. (If every replica
// that has it is lost with the primary, so is the write: Sentinel promotes
// one of the others.) The limit: while the primary is alive but cannot be
// reached from here, the replicas still move, and a revocation acknowledged
// by another replica after the choice is missing from the one chosen for as
// long as it lags behind (milliseconds), or, if it lost its own link to the
// primary, until its connections' lifetime ends. Writes that were not
// waited for (a session's last-seen refresh) may be missing too.
//
// A choice holds only for the moment it was made, so connections are not
// used for long: the pool closes a connection instead of lending it again
// once replicaConnLifetime has passed since it was dialled, and the read
// dials and chooses again. The connections are
// not retired when the primary changes: whatever the server they reach has
// become, reads from it stay as good (a promoted replica is the primary). A
// server that restarts breaks its connections, and new ones go through the
// checks above again.
func (s *SentinelPool) ReplicaPool() *redis.Pool { return s.replicas }

// replicaConnLifetime is how long a replica connection may be used after it
// was dialled, that is after its replica was found the furthest ahead: a
// connection chosen during one outage must not serve the next, when another
// replica may be ahead. The pool is used only while the primary cannot be
// reached (the session store tries the primary again every second), so the
// cost is one redial a second per pooled connection in use: one question to
// a Sentinel and one parallel round of ROLE and INFO to the replicas,
// measured at 3–5 ms for the whole dial and a read over loopback on a busy
// 2-core machine (TestReplicaPoolReadsARevocationOnlyTheReplicaAheadHas logs
// it), and nothing while the primary answers. Much shorter would redial for
// most reads of a busy outage; longer would stretch the time a choice made
// while the replicas were still moving can outlive them moving on.
const replicaConnLifetime = time.Second

// newReplicaPool builds the pool ReplicaPool returns.
func (s *SentinelPool) newReplicaPool() *redis.Pool {
	return &redis.Pool{
		DialContext: s.dialReplica,
		// No PING after a quiet spell, as the primary's pool does: a
		// connection is closed by its lifetime long before borrowCheckAfter.
		TestOnBorrowContext: func(_ context.Context, c redis.Conn, _ time.Time) error { return c.Err() },
		MaxConnLifetime:     replicaConnLifetime,
		MaxActive:           s.opts.MaxActive,
		MaxIdle:             s.opts.MaxIdle,
		IdleTimeout:         s.opts.IdleTimeout,
		Wait:                true,
	}
}

// replicaProbe is one candidate replica, dialled and checked.
type replicaProbe struct {
	conn   redis.Conn // nil when err is set
	offset int64      // how far along the replication stream it is
	err    error
}

// dialReplica connects to the usable replica with the highest replication
// offset among those the first Sentinel that answers lists, within ctx.
func (s *SentinelPool) dialReplica(ctx context.Context) (redis.Conn, error) {
	addrs, err := s.resolveReplicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis sentinel %q: replicas: %w", s.opts.MasterName, err)
	}
	probes := s.probeReplicas(ctx, addrs)
	best := -1
	var errs []error
	for i, p := range probes {
		if p.err != nil {
			errs = append(errs, p.err)
			continue
		}
		if best < 0 || p.offset > probes[best].offset {
			best = i
		}
	}
	for i, p := range probes {
		if i != best && p.conn != nil {
			p.conn.Close()
		}
	}
	if best >= 0 {
		return probes[best].conn, nil
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no replica listed"))
	}
	return nil, fmt.Errorf("redis sentinel %q: no usable replica: %w", s.opts.MasterName, errors.Join(errs...))
}

// probeReplicas dials and checks every address at once, each within
// ConnectTimeout and ctx: the highest offset can only be known once every
// replica has answered or run out of time, and in parallel a replica that
// hangs costs one ConnectTimeout, not one per replica.
func (s *SentinelPool) probeReplicas(ctx context.Context, addrs []string) []replicaProbe {
	probes := make([]replicaProbe, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			c, offset, err := s.dialServer(ctx, addr, "slave")
			probes[i] = replicaProbe{conn: c, offset: offset, err: err}
		})
	}
	wg.Wait()
	return probes
}

// resolveReplicas asks the Sentinels, in turn from the one that answered
// last, for the addresses of the primary's replicas.
func (s *SentinelPool) resolveReplicas(ctx context.Context) ([]string, error) {
	n := len(s.opts.Addrs)
	first := int(s.next.Load())
	var errs []error
	for i := range n {
		addrs, err := s.askSentinelReplicas(ctx, s.opts.Addrs[(first+i)%n])
		if err == nil {
			return addrs, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("no sentinel answered: %w", errors.Join(errs...))
}

// askSentinelReplicas asks one Sentinel for the addresses of the primary's
// replicas, within ConnectTimeout. None is left out for the Sentinel's
// flags (s_down, disconnected): they are its own view (its link to a
// replica being promoted is cut with every other client, and reads
// "disconnected" for a moment), and each server is checked when dialled.
func (s *SentinelPool) askSentinelReplicas(ctx context.Context, sentinel string) ([]string, error) {
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
	addrs := make([]string, 0, len(reply)+1)
	for _, entry := range reply {
		f, err := redis.StringMap(entry, nil)
		if err != nil {
			return nil, fmt.Errorf("sentinel %s: replica entry: %w", sentinel, err)
		}
		if f["ip"] == "" || !isPort(f["port"]) {
			continue
		}
		addrs = append(addrs, net.JoinHostPort(f["ip"], f["port"]))
	}
	// And the primary this Sentinel names: while a promotion is being
	// announced, a Sentinel that already lists no replica but the old
	// primary (down) may still be asked for the primary by the primary's
	// pool through another Sentinel that has not caught up, and the promoted
	// server is then the one that can answer (see syncedReplica). As the
	// primary, it is as far along as any replica.
	hostPort, err := redis.Strings(redis.DoContext(c, ctx, "SENTINEL", "get-master-addr-by-name", s.opts.MasterName))
	if err == nil && len(hostPort) == 2 && isPort(hostPort[1]) {
		if addr := net.JoinHostPort(hostPort[0], hostPort[1]); !slices.Contains(addrs, addr) {
			addrs = append(addrs, addr)
		}
	}
	return addrs, nil
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
	c, _, err := s.dialServer(ctx, addr, role)
	return c, err
}

// dialServer is dialServerAs, and returns a replica's replication offset.
func (s *SentinelPool) dialServer(ctx context.Context, addr, role string) (redis.Conn, int64, error) {
	what := "redis primary"
	if role != "master" {
		what = "redis replica"
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	c, err := redis.DialContext(ctx, "tcp", addr, s.serverDialOptions()...)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", what, addr, err)
	}
	offset, err := checkRole(ctx, c, role)
	if err != nil {
		c.Close()
		return nil, 0, fmt.Errorf("%s %s: %w", what, addr, err)
	}
	return c, offset, nil
}

// checkRole checks that the server c reaches has the role wanted and, for a
// replica, that it has synced since it started, and returns a replica's
// replication offset.
func checkRole(ctx context.Context, c redis.Conn, want string) (int64, error) {
	role, err := redis.Values(redis.DoContext(c, ctx, "ROLE"))
	if err == nil && len(role) == 0 {
		err = errors.New("empty ROLE reply")
	}
	if err != nil {
		return 0, fmt.Errorf("ROLE: %w", err)
	}
	r, _ := redis.String(role[0], nil)
	if want == "master" {
		if r != want {
			return 0, fmt.Errorf("%w: ROLE says %q", errNotPrimary, r)
		}
		return 0, nil
	}
	if r != "slave" && r != "master" {
		return 0, fmt.Errorf("%w: ROLE says %q", errNotReplica, r)
	}
	reply, err := redis.String(redis.DoContext(c, ctx, "INFO", "replication"))
	if err != nil {
		return 0, fmt.Errorf("INFO replication: %w", err)
	}
	info := parseInfo(reply)
	if err := syncedReplica(info); err != nil {
		return 0, err
	}
	return replicationOffset(info)
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

// replicationOffset returns how far along the replication stream the server
// whose INFO replication fields these are has got: for a replica, what it
// has applied (slave_repl_offset); for a just-promoted one, its own stream,
// which carries on its old primary's offsets (master_repl_offset). A
// replica that lost its primary keeps reporting where it stopped.
func replicationOffset(info map[string]string) (int64, error) {
	field := "slave_repl_offset"
	if info["role"] == "master" {
		field = "master_repl_offset"
	}
	offset, err := strconv.ParseInt(info[field], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: no %s in INFO replication", errNotReplica, field)
	}
	return offset, nil
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
