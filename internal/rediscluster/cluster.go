// Package rediscluster lets redigo code run on Redis Cluster. A Cluster
// keeps the map of which primary owns each hash slot, one connection pool
// per node, and a *redis.Pool of routing connections (Pool) that:
//
//   - send a command to the primary owning its key's slot; a multi-key
//     command whose keys span slots fails with ErrCrossSlot, unsent;
//   - send a keyless command (WAIT, PING, CLIENT, …) to the node the
//     connection sent its last keyed command to, on the same node
//     connection, so that WAIT after a write counts that write's replicas;
//     before any keyed command, to a primary at random;
//   - send SCRIPT LOAD to every primary, so that a later EVALSHA, alone or
//     pipelined, finds the script wherever its keys are;
//   - pipeline: Send queues a command on its node's connection, Flush sends
//     one pipeline per node, and Receive answers in the order sent;
//   - follow MOVED (learning the slot's new owner at once, and reloading
//     the map) and ASK (ASKING first, the map unchanged), five at most per
//     command, and retry TRYAGAIN and CLUSTERDOWN after growing pauses
//     until the command's deadline: its context's, its timeout, or 1 s.
//
// Nothing else is retried: after a connection failure the command may have
// run, so the error goes back to the caller, and the slot map is reloaded so
// that the next command finds a promoted replica. Error replies come back
// unchanged as redis.Error (redigo's Script recognises NOSCRIPT by its
// type); connection failures are wrapped with the node's address, and the
// connection's Err reports the last one.
//
// Left out on purpose: reads from replicas, transactions and subscriptions
// (ErrUnsupported; use NodePool(PrimaryFor(key)) for those).
package rediscluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Defaults for Options.
const (
	defaultMaxIdlePerNode = 16
	// A full reload every few seconds is only the safety net: MOVED
	// replies and connection errors trigger one at once. Five seconds
	// bounds how long a slot that no command touches stays stale, for one
	// CLUSTER SHARDS of a few kilobytes.
	defaultRefreshInterval = 5 * time.Second
)

// Limits of the background refresh.
const (
	// refreshWithin bounds one background refresh, nodeRefreshWithin each
	// node asked in it, so a hung node cannot stall the others' turn.
	refreshWithin     = 5 * time.Second
	nodeRefreshWithin = time.Second
	// minRefreshGap spaces triggered refreshes: during a reshard every
	// moved slot answers MOVED, and one reload covers them all.
	minRefreshGap = 100 * time.Millisecond
)

// Options configure a Cluster.
type Options struct {
	// Dial opens a connection to the node at addr ("host:port"), with
	// whatever authentication and timeouts the caller wants; the
	// connection must offer redis.ConnWithContext and
	// redis.ConnWithTimeout, as redigo's own do.
	Dial func(ctx context.Context, addr string) (redis.Conn, error)
	// MaxIdlePerNode and MaxActivePerNode size each node's pool: 0 means
	// 16 idle and no limit on active connections. With a limit, a command
	// waits for a free connection until its context ends, its timeout
	// passes, or, without either, for poolWaitWithin.
	MaxIdlePerNode, MaxActivePerNode int
	// RefreshInterval is how often the slot map is reloaded in the
	// background; 0 means 5 s. MOVED replies and connection errors reload
	// it sooner.
	RefreshInterval time.Duration
}

// Cluster is a Redis Cluster as seen from this process: the slot map, one
// connection pool per node, and the routing pool over them. It is safe for
// concurrent use.
type Cluster struct {
	opts  Options
	seeds []string
	slots atomic.Pointer[slotMap]
	pool  *redis.Pool // routing connections; see Pool

	mu     sync.RWMutex // guards pools and closed
	pools  map[string]*redis.Pool
	closed bool

	refreshMu  sync.Mutex    // one refresh at a time
	refreshNow chan struct{} // a refresh is wanted (buffered, one)
	ctx        context.Context
	stop       context.CancelFunc
	refresher  sync.WaitGroup
}

// New connects to the cluster that seeds (node addresses, "host:port")
// belong to: it loads the slot map from the first seed that answers, and
// fails if none does. Close releases it.
func New(ctx context.Context, seeds []string, opts Options) (*Cluster, error) {
	if len(seeds) == 0 {
		return nil, errors.New("rediscluster: no seed address")
	}
	if opts.Dial == nil {
		return nil, errors.New("rediscluster: Options.Dial is nil")
	}
	opts.MaxIdlePerNode = cmp.Or(opts.MaxIdlePerNode, defaultMaxIdlePerNode)
	opts.RefreshInterval = cmp.Or(opts.RefreshInterval, defaultRefreshInterval)
	c := &Cluster{
		opts:       opts,
		seeds:      slices.Clone(seeds),
		pools:      map[string]*redis.Pool{},
		refreshNow: make(chan struct{}, 1),
	}
	// A routing connection holds no socket of its own, only node
	// connections it borrows, so the pool keeps none idle: Close hands the
	// node connections back to their pools at once.
	c.pool = &redis.Pool{
		DialContext: func(context.Context) (redis.Conn, error) { return &conn{cluster: c}, nil },
	}
	if err := c.load(ctx, c.seeds); err != nil {
		c.closePools()
		return nil, fmt.Errorf("rediscluster: no seed answered: %w", err)
	}
	c.ctx, c.stop = context.WithCancel(context.Background())
	c.refresher.Add(1)
	go c.refreshLoop()
	return c, nil
}

// Pool returns the pool of routing connections: each sends a command to the
// primary owning its key (see the package documentation). It is the same
// pool on every call, and is closed by Close.
func (c *Cluster) Pool() *redis.Pool { return c.pool }

// Primaries returns the addresses of the primaries in the slot map, sorted.
func (c *Cluster) Primaries() []string { return slices.Clone(c.slots.Load().primaries) }

// PrimaryFor returns the address of the primary owning key's slot in the
// slot map, or "" if none is known.
func (c *Cluster) PrimaryFor(key string) string { return c.slots.Load().primaryOf(Slot(key)) }

// NodePool returns the connection pool of the node at addr, creating it if
// need be. Its connections talk to that node only. A refresh that finds the
// node gone from the cluster, or failed, closes its pool; asking again
// makes a new one.
func (c *Cluster) NodePool(addr string) *redis.Pool {
	c.mu.RLock()
	p, ok := c.pools[addr]
	c.mu.RUnlock()
	if ok {
		return p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pools[addr]; ok {
		return p
	}
	p = &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) { return c.opts.Dial(ctx, addr) },
		MaxIdle:     c.opts.MaxIdlePerNode,
		MaxActive:   c.opts.MaxActivePerNode,
		Wait:        c.opts.MaxActivePerNode > 0,
	}
	if c.closed {
		p.Close() // an answer that fails, rather than a pool nobody closes
		return p
	}
	c.pools[addr] = p
	return p
}

// Refresh reloads the slot map now, from the known primaries or else the
// seeds, and closes the pools of nodes no longer in the cluster.
func (c *Cluster) Refresh(ctx context.Context) error {
	m := c.slots.Load()
	addrs := slices.Clone(m.primaries)
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	for _, s := range c.seeds {
		if !slices.Contains(addrs, s) {
			addrs = append(addrs, s)
		}
	}
	if err := c.load(ctx, addrs); err != nil {
		return fmt.Errorf("rediscluster: refresh: %w", err)
	}
	return nil
}

// load installs the slot map of the first of addrs that gives one.
func (c *Cluster) load(ctx context.Context, addrs []string) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	var errs []error
	for _, addr := range addrs {
		m, err := c.loadFrom(ctx, addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		c.slots.Store(m)
		c.closeGone(m)
		return nil
	}
	return errors.Join(errs...)
}

func (c *Cluster) loadFrom(ctx context.Context, addr string) (*slotMap, error) {
	ctx, cancel := context.WithTimeout(ctx, nodeRefreshWithin)
	defer cancel()
	conn, err := c.NodePool(addr).GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return loadSlotMap(ctx, conn, addr)
}

// closeGone closes the pools of the nodes m does not list as live. Their
// connections still lent out are closed as they come back.
func (c *Cluster) closeGone(m *slotMap) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, p := range c.pools {
		if !m.nodes[addr] && !slices.Contains(m.primaries, addr) {
			p.Close()
			delete(c.pools, addr)
		}
	}
}

// learn records that addr owns slot now, as a MOVED reply says, and asks
// for a full reload: a slot seldom moves alone.
func (c *Cluster) learn(slot int, addr string) {
	for {
		m := c.slots.Load()
		if m.primaryOf(slot) == addr || c.slots.CompareAndSwap(m, m.with(slot, addr)) {
			break
		}
	}
	c.scheduleRefresh()
}

// scheduleRefresh asks the background loop for a reload without waiting.
func (c *Cluster) scheduleRefresh() {
	select {
	case c.refreshNow <- struct{}{}:
	default: // one is due already
	}
}

// refreshLoop reloads the slot map every RefreshInterval and when asked. A
// failed reload keeps the map it had: the commands that fail meanwhile say
// why, and ask for another.
func (c *Cluster) refreshLoop() {
	defer c.refresher.Done()
	tick := time.NewTicker(c.opts.RefreshInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		case <-c.refreshNow:
		}
		ctx, cancel := context.WithTimeout(c.ctx, refreshWithin)
		_ = c.Refresh(ctx)
		cancel()
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(minRefreshGap):
		}
	}
}

// Close stops the background refresh and closes the routing pool and every
// node pool. Connections still lent out are closed as they come back.
func (c *Cluster) Close() error {
	c.stop()
	c.refresher.Wait()
	err := c.pool.Close()
	c.closePools()
	if err != nil {
		return fmt.Errorf("rediscluster: close: %w", err)
	}
	return nil
}

func (c *Cluster) closePools() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for addr, p := range c.pools {
		p.Close()
		delete(c.pools, addr)
	}
}

// anyPrimary returns a primary at random, spreading keyless commands that
// have no node to follow.
func (c *Cluster) anyPrimary() string {
	p := c.slots.Load().primaries
	return p[rand.IntN(len(p))]
}
