package sessioncache

import (
	"context"
	_ "embed"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
)

// heartbeatLua (single Redis) lists the link as one that may trust its
// cache, until membershipTTL from Redis's clock, and sends the heartbeat:
// both in one step, so a link that is listed has been sending. Its shebang
// makes Redis refuse it whole when Redis cannot write (min-replicas-to-write
// unmet, out of memory): a primary cut off from its replica is about to be
// failed over, and a replica that keeps trusting a cache fed by it could
// miss the new primary's revocations.
//
//go:embed scripts/heartbeat.lua
var heartbeatLua string

// registerLua (Redis Cluster) lists the link as one that may trust its
// cache, until membershipTTL from Redis's clock, on the primary of the
// list's key; nodeHeartbeatLua then sends the heartbeat on each primary,
// and is refused, as heartbeatLua is, by a primary that cannot write.
var (
	//go:embed scripts/register.lua
	registerLua string
	//go:embed scripts/node_heartbeat.lua
	nodeHeartbeatLua string
)

// beat sends a heartbeat every HeartbeatEvery and the confirmations of
// other replicas' fences as they come; on a cluster it first looks for a
// change in the primaries.
func (l *Link) beat() {
	defer l.wg.Done()
	b := &beater{l: l,
		heartbeat:  redis.NewScript(1, heartbeatLua),
		register:   redis.NewScript(1, registerLua),
		perNode:    redis.NewScript(0, nodeHeartbeatLua),
		membership: membershipTTL.Milliseconds(),
	}
	defer b.close()
	tick := time.NewTicker(HeartbeatEvery)
	defer tick.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case a := <-l.acks:
			b.confirm(a)
		case <-l.lookAgain:
			l.syncNodes()
		case <-tick.C:
			if l.cluster != nil {
				l.syncNodes()
			}
			if !l.up() {
				continue
			}
			if b.send() {
				l.heartbeatsOK.Add(1)
			}
		}
	}
}

// beater sends one link's heartbeats and confirmations: for a single
// Redis on one connection of its own, for a cluster through each primary's
// pool.
type beater struct {
	l                            *Link
	heartbeat, register, perNode *redis.Script
	membership                   int64 // membershipTTL in ms
	c                            redis.Conn
}

// conn returns the single Redis connection, redialled if it failed, or nil.
func (b *beater) conn() redis.Conn {
	if b.c != nil && b.c.Err() != nil {
		b.c.Close()
		b.c = nil
	}
	if b.c == nil {
		ctx, cancel := context.WithTimeout(b.l.ctx, commandTimeout)
		b.c, _ = b.l.opts.Dial(ctx)
		cancel()
	}
	return b.c
}

func (b *beater) close() {
	if b.c != nil {
		b.c.Close()
	}
}

// confirm tells a's revoker that this link applied everything a.node sent
// before the fence: published on that node, though any would do, as a
// confirmation needs no ordering.
func (b *beater) confirm(a ack) {
	l := b.l
	channel, payload := ackPrefix+a.revoker, withNode(l.id+" "+strconv.FormatUint(a.seq, 10), a.node)
	if l.cluster == nil {
		if c := b.conn(); c != nil {
			redis.DoWithTimeout(c, commandTimeout, "PUBLISH", channel, payload)
		}
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, commandTimeout)
	defer cancel()
	l.cluster.do(ctx, a.node, "PUBLISH", channel, payload)
}

// send sends one heartbeat (on a cluster, one through each primary) and
// reports whether Redis took it.
//
// On a cluster the link is listed in one step (registerLua, on the list's
// primary), and the heartbeats sent in the next, only once that succeeded,
// each carrying the time taken before the listing. They need not be one
// atomic step: the link trusts its cache only on hearing, on each
// primary's connection, a heartbeat of a round that had listed it first,
// and only for Lease from when that round began, which its listing
// (membershipTTL from when Redis ran it, later) outlasts. And a revoker
// that found the link unlisted is safe too (fencer.publishCluster): the
// heartbeat that lets the link trust its cache again is published after
// it was listed, so after the revocation on that primary, and the
// revocation's invalidation is applied first.
func (b *beater) send() bool {
	l := b.l
	sent := strconv.FormatInt(l.mono(), 10)
	ctx, cancel := context.WithTimeout(l.ctx, commandTimeout)
	defer cancel()
	if l.cluster == nil {
		c := b.conn()
		if c == nil {
			return false
		}
		_, err := b.heartbeat.DoContext(ctx, c, membersKey, l.id, b.membership, heartbeatPrefix+l.id, sent)
		return err == nil
	}
	c, err := l.opts.Pool.GetContext(ctx)
	if err != nil {
		return false
	}
	_, err = b.register.DoContext(ctx, c, membersKey, l.id, b.membership)
	c.Close()
	if err != nil {
		return false
	}
	nodes := *l.nodes.Load()
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr
	}
	return onEach(addrs, func(addr string) error {
		c, err := l.cluster.pool(addr).GetContext(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = b.perNode.DoContext(ctx, c, heartbeatPrefix+l.id, withNode(sent, addr))
		return err
	}) == nil
}
