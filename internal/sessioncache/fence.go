package sessioncache

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// fenceLua (single Redis) returns the links that may be trusting their
// caches and publishes the fence, in one step: a link not listed has not
// sent a heartbeat for membershipTTL, so it trusts nothing it cached
// before the fence.
//
//go:embed scripts/fence.lua
var fenceLua string

// membersLua (Redis Cluster) returns the links that may be trusting their
// caches; the fences are published afterwards, one per primary (see
// fencer.publishCluster for why that need not be one step).
//
//go:embed scripts/members.lua
var membersLua string

// fencer waits, after a revocation, until no replica can serve the revoked
// sessions from its cache: every listed replica confirmed the fence (it
// applied every invalidation sent before it), or the lease has run out for
// those that did not.
type fencer struct {
	pool  *redis.Pool   // the Redis, or the cluster's routing pool
	nodes *clusterNodes // nil for a single Redis
	id    string
	// listens is false for a process without a link (the command line): it
	// hears no confirmations, so it waits out the lease whenever a replica
	// may be trusting a cache.
	listens bool
	seq     atomic.Uint64
	fence   *redis.Script // fenceLua, or membersLua on a cluster

	mu      sync.Mutex
	waiting map[uint64]*fenceWait

	confirmed, lapsed atomic.Uint64
}

// confirmation is one replica's word that it applied every invalidation
// the node (a cluster primary's address; "" for a single Redis) sent
// before the fence.
type confirmation struct{ replica, node string }

type fenceWait struct {
	acked map[confirmation]bool // heard, possibly before the list below
	// pending lists, per replica still to confirm, the nodes it has not
	// confirmed yet; nil until the fence has been published.
	pending map[string]map[string]bool
	done    chan struct{}
}

func newFencer(pool *redis.Pool, nodes *clusterNodes, id string, listens bool) *fencer {
	f := &fencer{
		pool:    pool,
		nodes:   nodes,
		id:      id,
		listens: listens,
		waiting: make(map[uint64]*fenceWait),
		fence:   redis.NewScript(1, fenceLua),
	}
	if nodes != nil {
		f.fence = redis.NewScript(1, membersLua)
	}
	return f
}

// await returns once no replica can serve from its cache a session deleted
// before repliedAt (when the deleting command's reply came back): at once
// when no replica is caching, as soon as every caching replica confirms,
// and at repliedAt+Lease at the latest. It fails only when ctx ends first.
func (f *fencer) await(ctx context.Context, repliedAt time.Time) error {
	seq := f.seq.Add(1)
	w := &fenceWait{acked: make(map[confirmation]bool), done: make(chan struct{})}
	f.mu.Lock()
	f.waiting[seq] = w
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.waiting, seq)
		f.mu.Unlock()
	}()

	members, nodes, err := f.publish(ctx, seq)
	if err == nil {
		f.mu.Lock()
		w.pending = make(map[string]map[string]bool, len(members))
		for _, m := range members {
			for _, n := range nodes {
				if !w.acked[confirmation{m, n}] {
					if w.pending[m] == nil {
						w.pending[m] = make(map[string]bool, len(nodes))
					}
					w.pending[m][n] = true
				}
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

// publish sends fence seq and returns the replicas that must confirm it,
// and the nodes each must confirm it for.
func (f *fencer) publish(ctx context.Context, seq uint64) (members, nodes []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, Lease)
	defer cancel()
	if f.nodes != nil {
		return f.publishCluster(ctx, seq)
	}
	c, err := f.pool.GetContext(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	members, err = redis.Strings(f.fence.DoContext(ctx, c, membersKey,
		fenceChannel, f.id+" "+strconv.FormatUint(seq, 10)))
	return members, []string{""}, err
}

// publishCluster reads the caching replicas, then publishes the fence on
// every primary, each copy naming its primary: a replica confirms a copy
// only when it hears it on its connection to that primary, so behind every
// invalidation that primary sent before (the revocation's among them,
// whichever primary it wrote to). A replica counts as confirmed once it
// has confirmed every primary's copy.
//
// The list is read after the revocation's reply came back, in a step of
// its own, and that is enough. A replica not listed then has not
// registered for membershipTTL (> Lease), so whatever it trusts now rests
// on a heartbeat it sends later: each round registers first and only then
// publishes its heartbeats, and so on the primary the revocation wrote to
// that heartbeat comes after the revocation's invalidation, which the
// replica therefore applies before it trusts its cache again. A listed
// replica that does not confirm is waited out by the lease, as with a
// single Redis.
func (f *fencer) publishCluster(ctx context.Context, seq uint64) (members, nodes []string, err error) {
	c, err := f.pool.GetContext(ctx)
	if err != nil {
		return nil, nil, err
	}
	members, err = redis.Strings(f.fence.DoContext(ctx, c, membersKey))
	c.Close()
	if err != nil || len(members) == 0 {
		return members, nil, err
	}
	nodes = f.nodes.current()
	if len(nodes) == 0 {
		return nil, nil, errors.New("no cluster primary known")
	}
	fence := f.id + " " + strconv.FormatUint(seq, 10)
	err = onEach(nodes, func(addr string) error {
		_, err := f.nodes.do(ctx, addr, "PUBLISH", fenceChannel, withNode(fence, addr))
		return err
	})
	return members, nodes, err
}

// acked records that replica has applied everything node sent before fence
// seq.
func (f *fencer) acked(seq uint64, replica, node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.waiting[seq]
	if !ok {
		return
	}
	w.acked[confirmation{replica, node}] = true
	if w.pending == nil || !w.pending[replica][node] {
		return
	}
	delete(w.pending[replica], node)
	if len(w.pending[replica]) == 0 {
		delete(w.pending, replica)
	}
	if len(w.pending) == 0 && w.done != nil {
		close(w.done)
	}
}
