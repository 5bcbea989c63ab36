package sessioncache

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Timing of the lease. A replica serves from its cache only while the
// heartbeat it last heard back through its invalidation connection was sent
// at most Lease ago; it sends one every HeartbeatEvery, so a healthy link
// never comes near the bound and a dead one is distrusted within it.
const (
	// Lease bounds how long a replica trusts its cache without hearing
	// from Redis, and so the longest a revocation waits for a replica that
	// does not confirm it.
	Lease = 250 * time.Millisecond
	// HeartbeatEvery is how often a replica sends itself a heartbeat (on
	// a Redis Cluster, one through each primary), and how often it looks
	// for a change in the cluster's primaries.
	HeartbeatEvery = 50 * time.Millisecond
	// membershipTTL is how long a heartbeat keeps a replica listed as one
	// that may be trusting its cache. It must exceed Lease: a replica
	// missing from the list has heard no heartbeat for longer than that.
	membershipTTL = 4 * Lease
	// receiveTimeout is the longest an invalidation connection may stay
	// silent (heartbeats come every HeartbeatEvery) before it is redialled.
	receiveTimeout = 4 * Lease
	// commandTimeout bounds each command of the link's own connections.
	commandTimeout = time.Second
	// maxBackoff caps the pause between attempts to reconnect.
	maxBackoff = time.Second
	// ackQueue is how many confirmations may wait to be sent; beyond it a
	// confirmation is dropped and its revoker waits out the lease instead.
	ackQueue = 1024
)

// Redis names the link uses. The session key prefix is the Redis store's.
const (
	invalidateChannel = "__redis__:invalidate"
	fenceChannel      = "hp:cache:fence"
	heartbeatPrefix   = "hp:cache:hb:"  // + link ID: the link's own heartbeats
	ackPrefix         = "hp:cache:ack:" // + link ID: confirmations of the link's fences
	membersKey        = "hp:cache:replicas"
	// EventsChannel carries the events a Listener is given (sign-ins, for
	// the open tabs of the account's other sessions).
	EventsChannel = "hp:live:events"
)

// Listener is told what the link hears, on the link's own goroutines: it
// must not block. The open-tab event hub (internal/live) is one: the
// replica's one subscription serves both the cache and the tabs.
type Listener interface {
	// Changed is given the store keys of sessions that changed.
	Changed(keys []string)
	// Resync is called when changes may have been missed (the link came
	// up again, or Redis flushed): everything must be looked up again.
	Resync()
	// Delivered is given each message published on EventsChannel, once.
	Delivered(payload []byte)
}

// LinkOptions configures a Link. For a single Redis (or one behind
// Sentinel) set Dial; for a Redis Cluster set Nodes and DialNode instead.
type LinkOptions struct {
	// Dial opens a connection to the Redis the sessions are written to
	// (for Sentinel, the current primary: a connection whose Err reports
	// that the primary has moved is redialled, and the cache flushed).
	// Unused on a Redis Cluster.
	Dial func(ctx context.Context) (redis.Conn, error)
	// Nodes, set on a Redis Cluster (rediscluster.Cluster.Primaries),
	// returns the addresses of the cluster's primaries now. The link keeps
	// one invalidation connection to each, and reads Nodes again every
	// HeartbeatEvery: when the primaries change (a failover, a node added
	// or removed) it connects to the new ones, drops the gone ones and
	// flushes its cache. Nil: a single Redis, reached through Dial.
	Nodes func() []string
	// DialNode, set with Nodes, opens a connection to the primary at addr.
	DialNode func(ctx context.Context, addr string) (redis.Conn, error)
	// Pool runs the fences of this replica's revocations; on a cluster it
	// is the routing pool (each command to the node of its key), which
	// keeps the list of caching replicas.
	Pool *redis.Pool
	// KeyPrefix is the prefix of the session keys in Redis; the link
	// tracks every key under it.
	KeyPrefix string
	// ReplicaID names the replica in the link's ID, for people reading
	// Redis.
	ReplicaID string
	// MaxEntries and MaxBytes bound the cache.
	MaxEntries int
	MaxBytes   int64
	// Logger receives the link's state changes; nil discards them.
	Logger *slog.Logger
	// PrimaryLease, if set, is the primary lease of a Redis behind Sentinel
	// (redisx.SentinelPool.PrimaryLeaseTerm): until when the primary's
	// replies may be trusted to be the current state, and which unbroken
	// lease that is. The heartbeat alone cannot tell: a primary cut off
	// from the Sentinels with this replica keeps taking heartbeats (for
	// min-replicas-max-lag) after a failover elsewhere. The cache then
	// answers only within the lease, and only with what it was filled with
	// under the current term. Nil: the primary is always trusted (a single
	// Redis, which no failover replaces).
	PrimaryLease func() (until time.Time, term uint64)
}

// Link is a replica's invalidation channel and the cache it keeps. Start
// it with StartLink; Close stops it.
//
// An invalidation connection, subscribed to __redis__:invalidate, has
// CLIENT TRACKING on in broadcast mode for the session key prefix,
// redirected to itself: Redis sends it the name of every session key that
// changes (written, deleted, expired, flushed), from any client. Another
// connection sends the heartbeats and confirms other replicas' fences.
// Both are redialled when they fail; the cache is flushed whenever an
// invalidation connection is, whenever the lease has lapsed, and when a new
// primary lease term begins (see LinkOptions.PrimaryLease).
//
// On a Redis Cluster each primary tracks only its own keys, and tells only
// clients connected to it, so the link keeps one invalidation connection
// per primary (a node) and trusts its cache only while every one of them
// is subscribed and has heard, within Lease, a heartbeat published on its
// own primary: that heartbeat is ordered after every invalidation of that
// primary, as on a single Redis. PUBLISH reaches every node's subscribers
// (the cluster bus), so each heartbeat and fence names the primary it was
// published on, and a node acts only on those heard through its own
// connection; a copy from another primary carries no ordering.
type Link struct {
	id      string
	opts    LinkOptions
	log     *slog.Logger
	cache   *cache
	fence   *fencer
	cluster *clusterNodes // nil for a single Redis
	base    time.Time     // the origin of the link's monotonic times
	acks    chan ack
	// lookAgain asks the heartbeat goroutine to read the cluster's
	// primaries now rather than at its next round.
	lookAgain chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	// nodes holds the invalidation connections the cache depends on,
	// sorted by address: one for a single Redis (address ""), one per
	// primary on a cluster. It is replaced whole when the primaries change,
	// so that Trusted reads it without a lock.
	nodes atomic.Pointer[[]*node]
	// heartbeatsOK counts heartbeats Redis accepted (on a cluster, rounds
	// every primary accepted), for tests and stats.
	heartbeatsOK atomic.Uint64
	// term is the primary lease term the cache's content was filled under
	// (see LinkOptions.PrimaryLease): the cache is trusted only while the
	// lease is in that term. It is set, after a flush, when the link
	// subscribes and when a heartbeat finds the term moved on.
	term     atomic.Uint64
	listener atomic.Pointer[Listener]
}

// ack is a confirmation to send: this link applied everything node sent
// before revoker's fence seq.
type ack struct {
	revoker, node string
	seq           uint64
}

// SetListener makes l hear what the link hears from now on.
func (l *Link) SetListener(listener Listener) {
	l.listener.Store(&listener)
}

func (l *Link) tell(f func(Listener)) {
	if p := l.listener.Load(); p != nil {
		f(*p)
	}
}

// Publish sends payload on EventsChannel, to every replica's Listener.
// On a cluster it goes to one primary, and the cluster bus takes it to the
// others.
func (l *Link) Publish(ctx context.Context, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if err := publishEvent(ctx, l.opts.Pool, l.cluster, payload); err != nil {
		return fmt.Errorf("session cache: publish: %w", err)
	}
	return nil
}

// publishEvent publishes payload on EventsChannel through pool, or on a
// cluster through its first primary: a keyless command has no node of its
// own to be routed to.
func publishEvent(ctx context.Context, pool *redis.Pool, cluster *clusterNodes, payload []byte) error {
	if cluster != nil {
		addrs := cluster.current()
		if len(addrs) == 0 {
			return errors.New("no cluster primary known")
		}
		_, err := cluster.do(ctx, addrs[0], "PUBLISH", EventsChannel, payload)
		return err
	}
	c, err := pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = redis.DoContext(c, ctx, "PUBLISH", EventsChannel, payload)
	return err
}

// StartLink checks opts, and starts the link's goroutines: the cache is
// trusted once the link has subscribed and heard its first heartbeat back
// (from every primary, on a cluster), usually within milliseconds. Until
// then, and whenever the link is down, reads go to the store.
func StartLink(opts LinkOptions) (*Link, error) {
	if opts.Pool == nil || opts.KeyPrefix == "" {
		return nil, errors.New("session cache: link needs Pool and KeyPrefix")
	}
	if opts.Nodes == nil && opts.Dial == nil {
		return nil, errors.New("session cache: link needs Dial (a single Redis) or Nodes and DialNode (a cluster)")
	}
	if opts.Nodes != nil && opts.DialNode == nil {
		return nil, errors.New("session cache: a cluster link needs DialNode")
	}
	if opts.MaxEntries <= 0 || opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("session cache: bounds must be positive (entries %d, bytes %d)", opts.MaxEntries, opts.MaxBytes)
	}
	id, err := newLinkID(opts.ReplicaID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{
		id:        id,
		opts:      opts,
		log:       cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)).With(slog.String("session_cache_link", id)),
		cache:     newCache(opts.MaxEntries, opts.MaxBytes),
		base:      time.Now(),
		acks:      make(chan ack, ackQueue),
		lookAgain: make(chan struct{}, 1),
		ctx:       ctx,
		cancel:    cancel,
	}
	l.nodes.Store(&[]*node{})
	if opts.Nodes != nil {
		l.cluster = newClusterNodes(opts.Nodes, opts.DialNode)
		l.syncNodes()
	} else {
		n := l.startNode("", opts.Dial, true)
		l.nodes.Store(&[]*node{n})
	}
	l.fence = newFencer(opts.Pool, l.cluster, id, true)
	l.wg.Add(1)
	go l.beat()
	return l, nil
}

// Close stops the link and waits for its goroutines. The cache is dropped,
// and the replica taken off the list of caching replicas, so revocations
// elsewhere stop waiting for it at once rather than for a lease.
func (l *Link) Close() error {
	l.cancel()
	l.wg.Wait()
	for _, n := range *l.nodes.Load() {
		n.subscribed.Store(false)
		n.leaseFrom.Store(0)
	}
	l.cache.flush()
	if l.cluster != nil {
		defer l.cluster.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	c, err := l.opts.Pool.GetContext(ctx)
	if err != nil {
		return nil // it drops off the list by itself within membershipTTL
	}
	defer c.Close()
	redis.DoContext(c, ctx, "ZREM", membersKey, l.id)
	return nil
}

// ID is the link's name in Redis (its heartbeat and confirmation channels,
// its entry in the list of caching replicas).
func (l *Link) ID() string { return l.id }

// Trusted reports whether the cache may answer reads now: every
// invalidation connection subscribed, the last heartbeat each heard back
// sent within Lease, and the primary lease held in the term the cache was
// filled under.
func (l *Link) Trusted() bool {
	nodes := *l.nodes.Load()
	if len(nodes) == 0 {
		return false
	}
	now := time.Now()
	mono := l.monoAt(now)
	for _, n := range nodes {
		from := n.leaseFrom.Load()
		if from == 0 || !n.subscribed.Load() || mono-from > int64(Lease) {
			return false
		}
	}
	held, term := l.primaryLease(now)
	return held && term == l.term.Load()
}

// up reports whether every invalidation connection is subscribed: only
// then may a read fill the cache, as any of them may carry the filled
// key's invalidation.
func (l *Link) up() bool {
	nodes := *l.nodes.Load()
	for _, n := range nodes {
		if !n.subscribed.Load() {
			return false
		}
	}
	return len(nodes) > 0
}

// follows reports whether the link has a connection to the primary at
// addr.
func (l *Link) follows(addr string) bool {
	return slices.ContainsFunc(*l.nodes.Load(), func(n *node) bool { return n.addr == addr })
}

// leaseAge returns how long ago the oldest of the nodes' last heartbeats
// heard back was sent, or -1 when some node has heard none since its last
// flush.
func (l *Link) leaseAge() time.Duration {
	nodes := *l.nodes.Load()
	if len(nodes) == 0 {
		return -1
	}
	mono := l.mono()
	var age time.Duration
	for _, n := range nodes {
		from := n.leaseFrom.Load()
		if from == 0 {
			return -1
		}
		age = max(age, time.Duration(mono-from))
	}
	return age
}

// primaryLease reports whether the primary lease holds at now, and its
// term.
func (l *Link) primaryLease(now time.Time) (held bool, term uint64) {
	if l.opts.PrimaryLease == nil {
		return true, 0
	}
	until, term := l.opts.PrimaryLease()
	return now.Before(until), term
}

// mono is the link's monotonic clock, in nanoseconds since base (never 0
// once the link has started).
func (l *Link) mono() int64 { return l.monoAt(time.Now()) }

// monoAt is mono at now.
func (l *Link) monoAt(now time.Time) int64 { return int64(now.Sub(l.base)) + 1 }

// syncNodes makes the link's nodes the cluster's primaries now. When they
// changed, it flushes the cache: what it holds may have come from a
// primary whose invalidations the link no longer hears (a failed-over
// one), and a new primary's keys were written unheard. A slot moved
// between primaries the link already follows needs nothing: each tracks
// every session key written on it, whichever slot it is in.
func (l *Link) syncNodes() {
	addrs := l.cluster.current()
	old := *l.nodes.Load()
	if slices.EqualFunc(old, addrs, func(n *node, addr string) bool { return n.addr == addr }) {
		return
	}
	next := make([]*node, 0, len(addrs))
	for _, addr := range addrs {
		i := slices.IndexFunc(old, func(n *node) bool { return n.addr == addr })
		if i >= 0 {
			next = append(next, old[i])
			continue
		}
		next = append(next, l.startNode(addr, func(ctx context.Context) (redis.Conn, error) {
			return l.opts.DialNode(ctx, addr)
		}, false))
	}
	for _, n := range old {
		if !slices.Contains(next, n) {
			n.setEvents(false)
			n.stop()
		}
	}
	// The new set is published (its new nodes not yet subscribed, so the
	// cache untrusted and unfilled) before the flush, so that nothing
	// filled before the flush survives it.
	l.nodes.Store(&next)
	l.cache.flush()
	l.tell(Listener.Resync)
	// Events go through the first node's connection only: every node's
	// subscribers get every message, and each must be delivered once.
	// The old carrier stops before the new one starts, so a message is
	// never delivered twice (one published in between may be missed).
	for _, n := range next[min(1, len(next)):] {
		n.setEvents(false)
	}
	if len(next) > 0 {
		next[0].setEvents(true)
	}
	l.log.Info("session cache link follows the cluster's primaries", slog.Any("primaries", addrs))
}

// text is a pushed payload as a string ("" if it is not bytes).
func text(data any) string {
	b, _ := data.([]byte)
	return string(b)
}

// withNode adds to payload the node it is published on. On a cluster every
// node's subscribers get a copy, and only the one heard through that
// node's own connection comes after the node's invalidations. A single
// Redis's node is "", and its payloads are unchanged.
func withNode(payload, node string) string {
	if node == "" {
		return payload
	}
	return payload + " " + node
}

// splitIDSeq reads "<id> <seq>[ <node>]".
func splitIDSeq(s string) (id string, seq uint64, node string, ok bool) {
	f := strings.Split(s, " ")
	if len(f) == 3 {
		node = f[2]
	} else if len(f) != 2 {
		return "", 0, "", false
	}
	seq, err := strconv.ParseUint(f[1], 10, 64)
	return f[0], seq, node, err == nil && f[0] != ""
}

// splitSent reads a heartbeat, "<sent>[ <node>]".
func splitSent(s string) (sent int64, node string, ok bool) {
	s, node, _ = strings.Cut(s, " ")
	sent, err := strconv.ParseInt(s, 10, 64)
	return sent, node, err == nil
}

// newLinkID names a link: the replica, and random bits so a restarted
// replica never hears its previous run's heartbeats.
func newLinkID(replica string) (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session cache: link id: %w", err)
	}
	replica = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, cmp.Or(replica, "replica"))
	return replica + "." + hex.EncodeToString(b), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
