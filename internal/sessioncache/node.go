package sessioncache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// node is the link's invalidation connection to one Redis server (the
// single Redis, or one primary of a cluster) and what the link has heard
// through it. Its goroutine keeps the connection up until the node is
// stopped or the link closed.
type node struct {
	addr   string // the primary's address; "" for a single Redis
	dial   func(ctx context.Context) (redis.Conn, error)
	ctx    context.Context
	cancel context.CancelFunc

	// subscribed is set while the connection is subscribed.
	subscribed atomic.Bool
	// leaseFrom is when (nanoseconds since the link's base) the heartbeat
	// last heard back through this connection was sent; 0 for none since
	// the last flush.
	leaseFrom atomic.Int64
	// events is set on the one node whose connection delivers
	// EventsChannel to the Listener.
	events atomic.Bool

	mu   sync.Mutex // serialises writes to conn between its goroutine and setEvents
	conn redis.Conn // while subscribing or subscribed
}

// startNode starts keeping a connection to the server dial reaches.
func (l *Link) startNode(addr string, dial func(ctx context.Context) (redis.Conn, error), events bool) *node {
	n := &node{addr: addr, dial: dial}
	n.events.Store(events)
	n.ctx, n.cancel = context.WithCancel(l.ctx)
	l.wg.Add(1)
	go l.listen(n)
	return n
}

// stop ends n's goroutine (without waiting for it: what it still applies
// is harmless, and it flushes the cache on its way out).
func (n *node) stop() { n.cancel() }

// setEvents makes n's connection deliver EventsChannel, or stop: at once
// when it is subscribed, else from its next subscription.
func (n *node) setEvents(on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.events.Swap(on) == on || n.conn == nil {
		return
	}
	cmd := "UNSUBSCRIBE"
	if on {
		cmd = "SUBSCRIBE"
	}
	// A failure shows on the connection's next read, which redials it.
	if n.conn.Send(cmd, EventsChannel) == nil {
		n.conn.Flush()
	}
}

// listen keeps n's invalidation connection up, redialling with growing
// pauses, until n is stopped or the link closed.
func (l *Link) listen(n *node) {
	defer l.wg.Done()
	backoff := HeartbeatEvery
	for n.ctx.Err() == nil {
		err := l.subscribeAndServe(n)
		n.subscribed.Store(false)
		n.leaseFrom.Store(0)
		l.cache.flush()
		if n.ctx.Err() != nil {
			return
		}
		if err != nil {
			l.log.Warn("session cache link down; reads go to Redis until it is back",
				slog.String("node", n.addr), slog.Any("err", err))
		}
		if sleep(n.ctx, backoff) != nil {
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
func (l *Link) subscribeAndServe(n *node) error {
	dialCtx, cancel := context.WithTimeout(n.ctx, commandTimeout)
	c, err := n.dial(dialCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer func() {
		n.mu.Lock()
		n.conn = nil
		n.mu.Unlock()
		c.Close()
	}()
	stop := context.AfterFunc(n.ctx, func() { c.Close() })
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
	channels := []any{invalidateChannel, fenceChannel, heartbeatPrefix + l.id, ackPrefix + l.id}
	n.mu.Lock()
	if n.events.Load() {
		channels = append(channels, EventsChannel)
	}
	err = c.Send("SUBSCRIBE", channels...)
	if err == nil {
		err = c.Flush()
	}
	n.conn = c // from now on setEvents changes the subscription itself
	n.mu.Unlock()
	if err != nil {
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
	n.leaseFrom.Store(0)
	_, term := l.primaryLease(time.Now())
	l.term.Store(term)
	n.subscribed.Store(true)
	l.log.Info("session cache link up", slog.String("node", n.addr))
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
			l.apply(n, channel, data)
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

// apply acts on one message heard through n's connection. Messages arrive
// in the order n's server produced them, which is what makes a heartbeat
// or a fence published on that server prove that every invalidation it
// sent before has been applied. On a cluster, copies of the heartbeats and
// fences published on the other primaries come through too, in no order
// with n's invalidations: they name their primary, and are ignored here.
func (l *Link) apply(n *node, channel string, data any) {
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
		// Only the carrier delivers: while the subscription moves from
		// one node to another, the old one may still be hearing it.
		if b, ok := data.([]byte); ok && n.events.Load() {
			l.tell(func(li Listener) { li.Delivered(b) })
		}
	case fenceChannel:
		revoker, seq, at, ok := splitIDSeq(text(data))
		if !ok {
			return
		}
		if at != n.addr {
			// A copy from another primary says nothing of that
			// primary's invalidations. But one from a primary the link
			// does not follow means its view of the cluster is behind
			// the revoker's (a primary added, a slot moved to it): what
			// it holds may have come from there unheard, so it drops it
			// and looks at the primaries again at once.
			if l.cluster != nil && !l.follows(at) {
				l.cache.flush()
				l.tell(Listener.Resync)
				select {
				case l.lookAgain <- struct{}{}:
				default:
				}
			}
			return
		}
		if revoker == l.id {
			l.fence.acked(seq, l.id, at)
			return
		}
		select {
		case l.acks <- ack{revoker: revoker, node: at, seq: seq}:
		default: // the revoker waits out the lease instead
		}
	case heartbeatPrefix + l.id:
		sent, at, ok := splitSent(text(data))
		if !ok || at != n.addr {
			// Each connection hears its own primary's heartbeat; the
			// copies from the others are redundant.
			return
		}
		prev := n.leaseFrom.Load()
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
			n.leaseFrom.Store(sent)
		}
	case ackPrefix + l.id:
		// A confirmation means the same whichever connection brings it
		// (on a cluster, every one does): no ordering is needed.
		acker, seq, at, ok := splitIDSeq(text(data))
		if ok {
			l.fence.acked(seq, acker, at)
		}
	}
}
