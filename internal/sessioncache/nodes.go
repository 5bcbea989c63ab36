package sessioncache

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// clusterNodes reaches each primary of a Redis Cluster by address, for the
// commands that must run on one particular primary rather than on the node
// of some key: a heartbeat or a fence proves something only to the
// connection subscribed to the node it was published on. The package does
// not import the cluster client; it is given the primaries and a dial.
type clusterNodes struct {
	list func() []string
	dial func(ctx context.Context, addr string) (redis.Conn, error)

	mu    sync.Mutex
	pools map[string]*redis.Pool
}

func newClusterNodes(list func() []string, dial func(ctx context.Context, addr string) (redis.Conn, error)) *clusterNodes {
	return &clusterNodes{list: list, dial: dial, pools: make(map[string]*redis.Pool)}
}

// current returns the primaries' addresses now, sorted and without
// duplicates, and closes the pools of primaries no longer among them.
func (cn *clusterNodes) current() []string {
	addrs := slices.Clone(cn.list())
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	addrs = slices.DeleteFunc(addrs, func(a string) bool { return a == "" })
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for addr, p := range cn.pools {
		if _, listed := slices.BinarySearch(addrs, addr); !listed {
			p.Close()
			delete(cn.pools, addr)
		}
	}
	return addrs
}

// pool returns a small pool of connections to the primary at addr.
func (cn *clusterNodes) pool(addr string) *redis.Pool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if p, ok := cn.pools[addr]; ok {
		return p
	}
	p := &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) { return cn.dial(ctx, addr) },
		// A heartbeat round, a few fences and confirmations at a time:
		// more in flight means the node is slow, and waiting for a
		// connection (bounded by the caller's context) is the right answer.
		MaxIdle:     4,
		MaxActive:   32,
		Wait:        true,
		IdleTimeout: time.Minute,
	}
	cn.pools[addr] = p
	return p
}

// do runs one command on the primary at addr.
func (cn *clusterNodes) do(ctx context.Context, addr string, cmd string, args ...any) (any, error) {
	c, err := cn.pool(addr).GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return redis.DoContext(c, ctx, cmd, args...)
}

// close closes every pool.
func (cn *clusterNodes) close() {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for addr, p := range cn.pools {
		p.Close()
		delete(cn.pools, addr)
	}
}

// onEach runs f for every addr at once and returns the first error: a slow
// primary must not hold up the others' heartbeats.
func onEach(addrs []string, f func(addr string) error) error {
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(addr)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
