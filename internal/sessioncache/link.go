package sessioncache

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
	// HeartbeatEvery is how often a replica sends itself a heartbeat.
	HeartbeatEvery = 50 * time.Millisecond
	// membershipTTL is how long a heartbeat keeps a replica listed as one
	// that may be trusting its cache. It must exceed Lease: a replica
	// missing from the list has heard no heartbeat for longer than that.
	membershipTTL = 4 * Lease
	// receiveTimeout is the longest the invalidation connection may stay
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

// Listener is told what the link hears, on the link's own goroutine: it
// must not block. The open-tab event hub (internal/live) is one: the
// replica's one subscription serves both the cache and the tabs.
type Listener interface {
	// Changed is given the store keys of sessions that changed.
	Changed(keys []string)
	// Resync is called when changes may have been missed (the link came
	// up again, or Redis flushed): everything must be looked up again.
	Resync()
	// Delivered is given each message published on EventsChannel.
	Delivered(payload []byte)
}

// heartbeatLua lists the link as one that may trust its cache, until
// membershipTTL from Redis's clock, and sends the heartbeat: both in one
// step, so a link that is listed has been sending. Its shebang makes Redis
// refuse it whole when Redis cannot write (min-replicas-to-write unmet, out
// of memory): a primary cut off from its replica is about to be failed
// over, and a replica that keeps trusting a cache fed by it could miss the
// new primary's revocations.
const heartbeatLua = `#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('PUBLISH', ARGV[3], ARGV[4])
`

// fenceLua returns the links that may be trusting their caches and
// publishes the fence, in one step: a link not listed has not sent a
// heartbeat for membershipTTL, so it trusts nothing it cached before the
// fence.
const fenceLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
redis.call('PUBLISH', ARGV[1], ARGV[2])
return members
`

// LinkOptions configures a Link.
type LinkOptions struct {
	// Dial opens a connection to the Redis the sessions are written to
	// (for Sentinel, the current primary: a connection whose Err reports
	// that the primary has moved is redialled, and the cache flushed).
	Dial func(ctx context.Context) (redis.Conn, error)
	// Pool runs the fences of this replica's revocations.
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
// One connection, subscribed to __redis__:invalidate, has CLIENT TRACKING
// on in broadcast mode for the session key prefix, redirected to itself:
// Redis sends it the name of every session key that changes (written,
// deleted, expired, flushed), from any client. A second connection sends
// the heartbeats and confirms other replicas' fences. Both are redialled
// when they fail; the cache is flushed whenever the first is, whenever the
// lease has lapsed, and when a new primary lease term begins (see
// LinkOptions.PrimaryLease).
type Link struct {
	id     string
	opts   LinkOptions
	log    *slog.Logger
	cache  *cache
	fence  *fencer
	base   time.Time // the origin of the link's monotonic times
	acks   chan string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// subscribed is set while the invalidation connection is subscribed:
	// only then may a read fill the cache.
	subscribed atomic.Bool
	// leaseFrom is when (nanoseconds since base) the heartbeat last heard
	// back was sent; 0 for none since the last flush.
	leaseFrom atomic.Int64
	// heartbeatsOK counts heartbeats Redis accepted, for tests and stats.
	heartbeatsOK atomic.Uint64
	// term is the primary lease term the cache's content was filled under
	// (see LinkOptions.PrimaryLease): the cache is trusted only while the
	// lease is in that term. It is set, after a flush, when the link
	// subscribes and when a heartbeat finds the term moved on.
	term     atomic.Uint64
	listener atomic.Pointer[Listener]
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
func (l *Link) Publish(ctx context.Context, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	c, err := l.opts.Pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("session cache: publish: %w", err)
	}
	defer c.Close()
	if _, err := redis.DoContext(c, ctx, "PUBLISH", EventsChannel, payload); err != nil {
		return fmt.Errorf("session cache: publish: %w", err)
	}
	return nil
}

// StartLink checks opts, and starts the link's goroutines: the cache is
// trusted once the link has subscribed and heard its first heartbeat back,
// usually within milliseconds. Until then, and whenever the link is down,
// reads go to the store.
func StartLink(opts LinkOptions) (*Link, error) {
	if opts.Dial == nil || opts.Pool == nil || opts.KeyPrefix == "" {
		return nil, errors.New("session cache: link needs Dial, Pool and KeyPrefix")
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
		id:     id,
		opts:   opts,
		log:    cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)).With(slog.String("session_cache_link", id)),
		cache:  newCache(opts.MaxEntries, opts.MaxBytes),
		base:   time.Now(),
		acks:   make(chan string, ackQueue),
		ctx:    ctx,
		cancel: cancel,
	}
	l.fence = newFencer(opts.Pool, id, true)
	l.wg.Add(2)
	go l.listen()
	go l.beat()
	return l, nil
}

// Close stops the link and waits for its goroutines. The cache is dropped,
// and the replica taken off the list of caching replicas, so revocations
// elsewhere stop waiting for it at once rather than for a lease.
func (l *Link) Close() error {
	l.cancel()
	l.wg.Wait()
	l.subscribed.Store(false)
	l.leaseFrom.Store(0)
	l.cache.flush()
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

// Trusted reports whether the cache may answer reads now: subscribed, the
// last heartbeat heard back was sent within Lease, and the primary lease
// holds in the term the cache was filled under.
func (l *Link) Trusted() bool {
	from := l.leaseFrom.Load()
	if from == 0 || !l.subscribed.Load() {
		return false
	}
	now := time.Now()
	if l.monoAt(now)-from > int64(Lease) {
		return false
	}
	held, term := l.primaryLease(now)
	return held && term == l.term.Load()
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

// listen keeps the invalidation connection up, redialling with growing
// pauses, until Close.
func (l *Link) listen() {
	defer l.wg.Done()
	backoff := HeartbeatEvery
	for l.ctx.Err() == nil {
		err := l.subscribeAndServe()
		l.subscribed.Store(false)
		l.leaseFrom.Store(0)
		l.cache.flush()
		if l.ctx.Err() != nil {
			return
		}
		if err != nil {
			l.log.Warn("session cache link down; reads go to Redis until it is back", slog.Any("err", err))
		}
		if sleep(l.ctx, backoff) != nil {
			return
		}
		backoff = min(backoff*2, maxBackoff)
		if errors.Is(err, errServedWell) {
			backoff = HeartbeatEvery
		}
	}
}

// errServedWell marks a link that was up and serving before it failed, so
// the next attempt comes without a long pause.
var errServedWell = errors.New("link was serving")

// subscribeAndServe dials, turns tracking on, subscribes, flushes the
// cache, and applies what Redis sends until the connection fails.
func (l *Link) subscribeAndServe() error {
	dialCtx, cancel := context.WithTimeout(l.ctx, commandTimeout)
	c, err := l.opts.Dial(dialCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(l.ctx, func() { c.Close() })
	defer stop()

	id, err := redis.Int64(redis.DoWithTimeout(c, commandTimeout, "CLIENT", "ID"))
	if err != nil {
		return fmt.Errorf("client id: %w", err)
	}
	if _, err := redis.DoWithTimeout(c, commandTimeout, "CLIENT", "TRACKING", "ON",
		"REDIRECT", id, "BCAST", "PREFIX", l.opts.KeyPrefix); err != nil {
		return fmt.Errorf("client tracking: %w", err)
	}
	// Replies are read raw rather than through redigo's PubSubConn, which
	// cannot carry an invalidation's payload (an array of key names).
	channels := []any{invalidateChannel, fenceChannel, heartbeatPrefix + l.id, ackPrefix + l.id, EventsChannel}
	if err := c.Send("SUBSCRIBE", channels...); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for range channels {
		kind, _, _, err := receive(c, commandTimeout)
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		if kind != "subscribe" {
			return fmt.Errorf("subscribe: unexpected %q reply", kind)
		}
	}
	// Anything cached before this point may have missed an invalidation.
	l.cache.flush()
	l.leaseFrom.Store(0)
	_, term := l.primaryLease(time.Now())
	l.term.Store(term)
	l.subscribed.Store(true)
	l.log.Info("session cache link up")
	l.tell(Listener.Resync)
	for {
		kind, channel, data, err := receive(c, receiveTimeout)
		if err == nil {
			err = c.Err()
		}
		if err != nil {
			return errors.Join(errServedWell, fmt.Errorf("invalidation connection: %w", err))
		}
		if kind == "message" {
			l.apply(channel, data)
		}
	}
}

// receive reads one pushed reply of a subscribed connection: its kind
// ("message", "subscribe"…), channel and payload (bytes, an array of bytes,
// or nil).
func receive(c redis.Conn, timeout time.Duration) (kind, channel string, data any, err error) {
	reply, err := redis.Values(redis.ReceiveWithTimeout(c, timeout))
	if err != nil {
		return "", "", nil, err
	}
	if len(reply) != 3 {
		return "", "", nil, fmt.Errorf("pushed reply of %d elements", len(reply))
	}
	kind, err = redis.String(reply[0], nil)
	if err == nil {
		channel, err = redis.String(reply[1], nil)
	}
	return kind, channel, reply[2], err
}

// apply acts on one message. Messages arrive in the order Redis produced
// them, which is what makes a heartbeat or a fence prove that every
// invalidation before it has been applied.
func (l *Link) apply(channel string, data any) {
	switch channel {
	case invalidateChannel:
		if data == nil {
			// A null message: Redis flushed the database, or could not
			// tell which keys changed.
			l.cache.flush()
			l.tell(Listener.Resync)
			return
		}
		keys, err := redis.Strings(data, nil)
		if err != nil {
			// Cannot tell what changed: drop everything.
			l.cache.flush()
			l.tell(Listener.Resync)
			return
		}
		for i, k := range keys {
			keys[i] = strings.TrimPrefix(k, l.opts.KeyPrefix)
		}
		l.cache.invalidate(keys...)
		l.tell(func(li Listener) { li.Changed(keys) })
	case EventsChannel:
		if b, ok := data.([]byte); ok {
			l.tell(func(li Listener) { li.Delivered(b) })
		}
	case fenceChannel:
		revoker, seq, ok := splitIDSeq(text(data))
		if !ok {
			return
		}
		if revoker == l.id {
			l.fence.acked(seq, l.id)
			return
		}
		select {
		case l.acks <- revoker + " " + strconv.FormatUint(seq, 10):
		default: // the revoker waits out the lease instead
		}
	case heartbeatPrefix + l.id:
		sent, err := strconv.ParseInt(text(data), 10, 64)
		if err != nil {
			return
		}
		prev := l.leaseFrom.Load()
		if prev != 0 && l.mono()-prev > int64(Lease) {
			// The lease lapsed: flush rather than reason about the gap.
			l.cache.flush()
			l.tell(Listener.Resync)
		}
		if held, term := l.primaryLease(time.Now()); held && term != l.term.Load() {
			// A new primary lease: what was cached under the last one
			// may predate a failover. The flush comes first, so that
			// nothing from before it is trusted under the new term.
			l.cache.flush()
			l.term.Store(term)
		}
		if sent > prev {
			l.leaseFrom.Store(sent)
		}
	case ackPrefix + l.id:
		acker, seq, ok := splitIDSeq(text(data))
		if ok {
			l.fence.acked(seq, acker)
		}
	}
}

// beat sends a heartbeat every HeartbeatEvery and the confirmations of
// other replicas' fences as they come, on one connection of its own.
func (l *Link) beat() {
	defer l.wg.Done()
	heartbeat := redis.NewScript(1, heartbeatLua)
	tick := time.NewTicker(HeartbeatEvery)
	defer tick.Stop()
	var c redis.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	conn := func() redis.Conn {
		if c != nil && c.Err() != nil {
			c.Close()
			c = nil
		}
		if c == nil {
			ctx, cancel := context.WithTimeout(l.ctx, commandTimeout)
			c, _ = l.opts.Dial(ctx)
			cancel()
		}
		return c
	}
	for {
		select {
		case <-l.ctx.Done():
			return
		case ack := <-l.acks:
			revoker, seq, _ := splitIDSeq(ack)
			if c := conn(); c != nil {
				redis.DoWithTimeout(c, commandTimeout, "PUBLISH", ackPrefix+revoker,
					l.id+" "+strconv.FormatUint(seq, 10))
			}
		case <-tick.C:
			if !l.subscribed.Load() {
				continue
			}
			c := conn()
			if c == nil {
				continue
			}
			sent := strconv.FormatInt(l.mono(), 10)
			ctx, cancel := context.WithTimeout(l.ctx, commandTimeout)
			_, err := heartbeat.DoContext(ctx, c, membersKey,
				l.id, membershipTTL.Milliseconds(), heartbeatPrefix+l.id, sent)
			cancel()
			if err == nil {
				l.heartbeatsOK.Add(1)
			}
		}
	}
}

// fencer waits, after a revocation, until no replica can serve the revoked
// sessions from its cache: every listed replica confirmed the fence (it
// applied every invalidation sent before it), or the lease has run out for
// those that did not.
type fencer struct {
	pool   *redis.Pool
	id     string
	script *redis.Script
	// listens is false for a process without a link (the command line): it
	// hears no confirmations, so it waits out the lease whenever a replica
	// may be trusting a cache.
	listens bool
	seq     atomic.Uint64

	mu      sync.Mutex
	waiting map[uint64]*fenceWait

	confirmed, lapsed atomic.Uint64
}

type fenceWait struct {
	acked   map[string]bool
	pending map[string]bool // nil until the fence script has answered
	done    chan struct{}
}

func newFencer(pool *redis.Pool, id string, listens bool) *fencer {
	return &fencer{
		pool:    pool,
		id:      id,
		script:  redis.NewScript(1, fenceLua),
		listens: listens,
		waiting: make(map[uint64]*fenceWait),
	}
}

// await returns once no replica can serve from its cache a session deleted
// before repliedAt (when the deleting command's reply came back): at once
// when no replica is caching, as soon as every caching replica confirms,
// and at repliedAt+Lease at the latest. It fails only when ctx ends first.
func (f *fencer) await(ctx context.Context, repliedAt time.Time) error {
	seq := f.seq.Add(1)
	w := &fenceWait{acked: make(map[string]bool), done: make(chan struct{})}
	f.mu.Lock()
	f.waiting[seq] = w
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.waiting, seq)
		f.mu.Unlock()
	}()

	members, err := f.publish(ctx, seq)
	if err == nil {
		f.mu.Lock()
		w.pending = make(map[string]bool, len(members))
		for _, m := range members {
			if !w.acked[m] {
				w.pending[m] = true
			}
		}
		if len(w.pending) == 0 {
			close(w.done)
		} else if !f.listens {
			w.done = nil // nobody will confirm: wait out the lease
		}
		f.mu.Unlock()
	}
	// Without the list (Redis failed the fence), the lease is the bound.
	lapse := time.NewTimer(time.Until(repliedAt.Add(Lease)))
	defer lapse.Stop()
	select {
	case <-w.done:
		f.confirmed.Add(1)
		return nil
	case <-lapse.C:
		f.lapsed.Add(1)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("session cache: waiting for replicas to drop a revoked session: %w", ctx.Err())
	}
}

// publish runs the fence script: the caching replicas, and the fence sent.
func (f *fencer) publish(ctx context.Context, seq uint64) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, Lease)
	defer cancel()
	c, err := f.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return redis.Strings(f.script.DoContext(ctx, c, membersKey,
		fenceChannel, f.id+" "+strconv.FormatUint(seq, 10)))
}

// acked records that replica has applied everything before fence seq.
func (f *fencer) acked(seq uint64, replica string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.waiting[seq]
	if !ok {
		return
	}
	w.acked[replica] = true
	if w.pending == nil || !w.pending[replica] {
		return
	}
	delete(w.pending, replica)
	if len(w.pending) == 0 && w.done != nil {
		close(w.done)
	}
}

// text is a pushed payload as a string ("" if it is not bytes).
func text(data any) string {
	b, _ := data.([]byte)
	return string(b)
}

// splitIDSeq reads "<id> <seq>".
func splitIDSeq(s string) (string, uint64, bool) {
	i := strings.LastIndexByte(s, ' ')
	if i <= 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(s[i+1:], 10, 64)
	return s[:i], seq, err == nil
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
