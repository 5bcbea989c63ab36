package redisx

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ErrInvalidSentinelOptions is returned by NewSentinelPool for options it
// cannot use.
var ErrInvalidSentinelOptions = errors.New("invalid redis sentinel options")

// errStaleConn marks a connection made before the primary last changed, or
// was last suspected: the pool closes it instead of handing it out again.
var errStaleConn = errors.New("redis: connection predates a change of primary")

// errNotPrimary is returned when the server a Sentinel named says, through
// ROLE, that it is not the primary.
var errNotPrimary = errors.New("not the primary")

// Limits of the Sentinel client. The connection timeouts come from
// PoolOptions; these only pace retries and health checks.
const (
	// dialAttempts bounds how often one dial asks the Sentinels again after
	// they named a primary that could not be reached or was not one.
	dialAttempts = 3
	// dialRetryPause is the pause before the second attempt, doubled before
	// the third: long enough for Sentinels to catch up with each other.
	dialRetryPause = 100 * time.Millisecond
	// watchPingEvery is how often the +switch-master subscription is
	// PINGed, so that a Sentinel that vanished without closing the
	// connection is noticed within watchReadTimeout.
	watchPingEvery   = time.Second
	watchReadTimeout = 3 * time.Second
	// watchRetryMin and watchRetryMax bound the back-off between attempts to
	// subscribe, cycling through the Sentinels.
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
	// switchMasterChannel is where Sentinels announce a new primary:
	// "<name> <old ip> <old port> <new ip> <new port>".
	switchMasterChannel = "+switch-master"
)

// SentinelOptions say how to find the primary through Redis Sentinel.
type SentinelOptions struct {
	// Addrs are the Sentinels' host:port addresses, asked in turn.
	Addrs []string
	// MasterName is the name the Sentinels monitor the primary under.
	MasterName string
	// Password authenticates to the Redis servers; empty for none.
	Password string
	// SentinelPassword authenticates to the Sentinels; empty for none.
	SentinelPassword string
	// ClientName, if set, names every connection to the Redis servers and
	// the Sentinels (CLIENT SETNAME), so CLIENT LIST shows whose they are.
	ClientName string
	// Logger hears when the primary lease is lost and regained; nil
	// discards that.
	Logger *slog.Logger
	// PoolOptions size the pool and bound its waits. ConnectTimeout bounds
	// each question to a Sentinel, and each dial of the primary with its
	// ROLE check.
	PoolOptions
}

// SentinelPool is a redigo pool whose connections always go to the current
// primary of a Sentinel-monitored Redis. redigo has no maintained Sentinel
// client, so Hallpass carries this small one.
//
// A new connection asks the Sentinels where the primary is
// (SENTINEL get-master-addr-by-name), dials it, and checks with ROLE that it
// is a master before handing it out. Connections made before the primary
// changed are never handed out again: each connection carries the generation
// it was made in, and the generation moves on when
//
//   - a Sentinel announces +switch-master for MasterName (a background
//     goroutine keeps a subscription on one of the Sentinels), or a dial finds
//     the primary somewhere new;
//   - a command on a current connection fails with READONLY or NOREPLICAS (the
//     server is being demoted or has lost its replica) or with a broken
//     connection.
//
// The pool checks the generation when it lends an idle connection and when a
// connection comes back, and closes stale ones. After a +switch-master the
// background goroutine also borrows the idle connections once, so the
// sockets to a demoted primary are closed at once rather than on next use.
// (Closing and replacing the whole pool would be the alternative, but callers
// hold the *redis.Pool, so it must stay the same pool.) A connection already
// borrowed when the primary changes is not taken away: its next write fails
// with READONLY or NOREPLICAS, and a retry gets a connection to the new
// primary.
//
// ReplicaPool is a second pool, for reads while no primary can be reached.
//
// PrimaryLease says until when a reply from the primary may be trusted to be
// the current state: one goroutine per Sentinel asks it about the primary
// several times a second, on a connection it keeps open, and the answers
// bound when a failover could first have promoted another server. A Hallpass
// replica cut off from the Sentinels together with the primary loses the
// lease before any failover on the other side can complete (see
// leaseKeeper).
//
// Dials ask the Sentinels every time rather than trust a remembered address:
// one short extra connection per new pooled connection, which is rare, and no
// way to reach an old primary that was failed over while the subscription
// was down. A suspicion is cheap too: at worst the idle connections are
// dialled again.
type SentinelPool struct {
	opts SentinelOptions
	pool *redis.Pool
	// replicas reads from a replica while the primary cannot be reached
	// (see ReplicaPool).
	replicas *redis.Pool
	next     atomic.Int64  // index into opts.Addrs of the Sentinel to ask first
	gen      atomic.Uint64 // changed only with mu held
	mu       sync.Mutex
	addr     string // the primary, as last verified or announced; "" until known
	// lease keeps the primary lease, measured on the monotonic clock
	// since base.
	lease *leaseKeeper
	base  time.Time
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	once  sync.Once // for Close
}

// NewSentinelPool checks opts and returns a pool of connections to the
// primary the Sentinels name. It does not connect (use Ping for that) but
// starts following the Sentinels' announcements and asking them for the
// primary lease: call Close to stop.
func NewSentinelPool(opts SentinelOptions) (*SentinelPool, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	opts.Addrs = append([]string(nil), opts.Addrs...)
	opts.PoolOptions = opts.PoolOptions.withDefaults()
	ctx, stop := context.WithCancel(context.Background())
	s := &SentinelPool{opts: opts, ctx: ctx, stop: stop, base: time.Now()}
	s.lease = newLeaseKeeper(len(opts.Addrs), cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)))
	s.replicas = s.newReplicaPool()
	s.pool = &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			c, _, err := s.dial(ctx)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
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
		MaxActive:   opts.MaxActive,
		MaxIdle:     opts.MaxIdle,
		IdleTimeout: opts.IdleTimeout,
		Wait:        true,
	}
	s.wg.Add(1 + len(opts.Addrs))
	go s.watch()
	for i := range opts.Addrs {
		go s.probe(i)
	}
	return s, nil
}

// check reports every problem with o at once.
func (o SentinelOptions) check() error {
	var problems []string
	if len(o.Addrs) == 0 {
		problems = append(problems, "no sentinel addresses")
	}
	for _, a := range o.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || !isPort(port) {
			problems = append(problems, fmt.Sprintf("sentinel address %q is not host:port", a))
		}
	}
	if o.MasterName == "" || strings.ContainsAny(o.MasterName, " \t\r\n") {
		problems = append(problems, fmt.Sprintf("master name %q must be one non-empty word", o.MasterName))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidSentinelOptions, strings.Join(problems, "; "))
	}
	return nil
}

// Pool returns the redigo pool. It stays the same pool for the life of s;
// borrow with GetContext so that the caller's deadline bounds the wait.
func (s *SentinelPool) Pool() *redis.Pool { return s.pool }

// MasterAddr returns the primary's address as last verified by a dial or
// announced by a Sentinel, or "" before either.
func (s *SentinelPool) MasterAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops following the Sentinels, waits for that to end, and closes the
// pools. Connections still borrowed are closed when they are returned.
func (s *SentinelPool) Close() error {
	var err error
	s.once.Do(func() {
		s.stop()
		s.wg.Wait()
		err = errors.Join(s.pool.Close(), s.replicas.Close())
	})
	return err
}

// dial connects to the primary. It asks the Sentinels again (starting with
// another one) when the server they named cannot be reached or is not a
// master, up to dialAttempts times within ctx; it gives up at once when no
// Sentinel answers. The boolean reports that the primary was found somewhere
// other than where it was last known to be.
func (s *SentinelPool) dial(ctx context.Context) (*sentinelConn, bool, error) {
	var errs []error
	for attempt := range dialAttempts {
		if attempt > 0 {
			if err := sleep(ctx, dialRetryPause<<(attempt-1)); err != nil {
				errs = append(errs, err)
				break
			}
		}
		gen := s.gen.Load()
		addr, err := s.resolve(ctx)
		if err != nil {
			errs = append(errs, err)
			break
		}
		rc, err := s.dialPrimary(ctx, addr)
		if err != nil {
			errs = append(errs, err)
			s.rotate()
			continue
		}
		gen, moved, ok := s.adopt(addr, gen)
		if !ok {
			// The primary changed (or was suspected) while we dialled: what
			// the Sentinel said may already be out of date.
			rc.Close()
			errs = append(errs, fmt.Errorf("redis primary %s: primary changed while connecting", addr))
			continue
		}
		return &sentinelConn{Conn: rc, pool: s, gen: gen}, moved, nil
	}
	return nil, false, fmt.Errorf("redis sentinel %q: %w", s.opts.MasterName, errors.Join(errs...))
}

// adopt records addr as the primary if the generation is still gen, moving
// the generation on if the primary was known to be elsewhere, and returns
// the generation connections to addr now belong to and whether it moved.
func (s *SentinelPool) adopt(addr string, gen uint64) (uint64, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen.Load() != gen {
		return 0, false, false
	}
	moved := s.addr != "" && s.addr != addr
	if moved {
		s.gen.Add(1)
		s.lease.forget(addr)
	}
	s.addr = addr
	return s.gen.Load(), moved, true
}

// switchTo records a primary announced by a Sentinel and reports whether it
// is new.
func (s *SentinelPool) switchTo(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr == addr {
		return false
	}
	s.addr = addr
	s.gen.Add(1)
	s.lease.forget(addr)
	return true
}

// suspect retires generation gen after one of its connections showed that
// the primary it reached may no longer be the primary. Later generations are
// left alone: their connections were made after the trouble.
func (s *SentinelPool) suspect(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen.Load() == gen {
		s.gen.Add(1)
	}
}

// resolve asks the Sentinels, in turn from the one that answered last, where
// the primary is.
func (s *SentinelPool) resolve(ctx context.Context) (string, error) {
	n := len(s.opts.Addrs)
	first := int(s.next.Load())
	var errs []error
	for i := range n {
		idx := (first + i) % n
		addr, err := s.askSentinel(ctx, s.opts.Addrs[idx])
		if err == nil {
			if i > 0 {
				s.next.Store(int64(idx))
			}
			return addr, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return "", fmt.Errorf("no sentinel answered: %w", errors.Join(errs...))
}

// rotate makes the next resolution start with the next Sentinel, after the
// current one named a primary that was not.
func (s *SentinelPool) rotate() {
	n := int64(len(s.opts.Addrs))
	cur := s.next.Load()
	s.next.CompareAndSwap(cur, (cur+1)%n)
}

// askSentinel asks one Sentinel for the primary's address, within
// ConnectTimeout.
func (s *SentinelPool) askSentinel(ctx context.Context, sentinel string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	c, err := redis.DialContext(ctx, "tcp", sentinel, s.sentinelDialOptions(s.opts.ConnectTimeout)...)
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", sentinel, err)
	}
	defer c.Close()
	hostPort, err := redis.Strings(redis.DoContext(c, ctx, "SENTINEL", "get-master-addr-by-name", s.opts.MasterName))
	switch {
	case errors.Is(err, redis.ErrNil):
		return "", fmt.Errorf("sentinel %s: does not monitor %q", sentinel, s.opts.MasterName)
	case err != nil:
		return "", fmt.Errorf("sentinel %s: %w", sentinel, err)
	case len(hostPort) != 2:
		return "", fmt.Errorf("sentinel %s: unexpected reply %q", sentinel, hostPort)
	}
	return net.JoinHostPort(hostPort[0], hostPort[1]), nil
}

// sentinelDialOptions are the options for a connection to a Sentinel whose
// replies may take up to readTimeout.
func (s *SentinelPool) sentinelDialOptions(readTimeout time.Duration) []redis.DialOption {
	opts := []redis.DialOption{
		redis.DialConnectTimeout(s.opts.ConnectTimeout),
		redis.DialReadTimeout(readTimeout),
		redis.DialWriteTimeout(s.opts.WriteTimeout),
	}
	if s.opts.SentinelPassword != "" {
		opts = append(opts, redis.DialPassword(s.opts.SentinelPassword))
	}
	if s.opts.ClientName != "" {
		opts = append(opts, redis.DialClientName(s.opts.ClientName))
	}
	return opts
}

// dialPrimary connects to addr and checks, within ConnectTimeout, that it is
// a master: a Sentinel may not have caught up with a failover yet.
func (s *SentinelPool) dialPrimary(ctx context.Context, addr string) (redis.Conn, error) {
	return s.dialServerAs(ctx, addr, "master")
}

// watch keeps a +switch-master subscription on one of the Sentinels until
// Close, moving to the next Sentinel with growing pauses when it fails.
func (s *SentinelPool) watch() {
	defer s.wg.Done()
	pause := watchRetryMin
	for i := 0; ; i = (i + 1) % len(s.opts.Addrs) {
		subscribed := s.follow(s.opts.Addrs[i])
		if subscribed {
			pause = watchRetryMin
		}
		// Jitter keeps a fleet of replicas from reconnecting in step.
		if sleep(s.ctx, pause/2+rand.N(pause/2+1)) != nil {
			return
		}
		pause = min(2*pause, watchRetryMax)
	}
}

// follow subscribes to +switch-master on one Sentinel and acts on the
// announcements until the connection fails or s closes. It reports whether
// the subscription was made. Errors are not reported: the next dial finds
// the primary on its own, and says so if it cannot.
func (s *SentinelPool) follow(sentinel string) (subscribed bool) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.ConnectTimeout)
	c, err := redis.DialContext(ctx, "tcp", sentinel, s.sentinelDialOptions(watchReadTimeout)...)
	cancel()
	if err != nil {
		return false
	}
	defer c.Close()
	psc := redis.PubSubConn{Conn: c}
	if err := psc.Subscribe(switchMasterChannel); err != nil {
		return false
	}
	if _, ok := psc.ReceiveContext(s.ctx).(redis.Subscription); !ok {
		return false
	}

	pingerDone := make(chan struct{})
	stopPinger := make(chan struct{})
	go func() {
		defer close(pingerDone)
		tick := time.NewTicker(watchPingEvery)
		defer tick.Stop()
		for {
			select {
			case <-stopPinger:
				return
			case <-tick.C:
				if psc.Ping("") != nil {
					return
				}
			}
		}
	}()
	defer func() {
		close(stopPinger)
		<-pingerDone
	}()

	// A switch may have been announced while no subscription was up.
	if c, moved, err := s.dial(s.ctx); err == nil {
		c.Close()
		if moved {
			s.dropStale()
		}
	}

	for {
		switch m := psc.ReceiveContext(s.ctx).(type) {
		case redis.Message:
			if addr, ok := parseSwitch(m.Data, s.opts.MasterName); ok && s.switchTo(addr) {
				s.dropStale()
			}
		case error:
			return true
		}
	}
}

// parseSwitch returns the new primary's address from a +switch-master
// announcement about master.
func parseSwitch(data []byte, master string) (string, bool) {
	f := strings.Fields(string(data))
	if len(f) != 5 || f[0] != master {
		return "", false
	}
	return net.JoinHostPort(f[3], f[4]), true
}

// dropStale closes the idle connections of past generations now rather than
// when next borrowed, by borrowing them: the pool tests each on borrow and
// closes the stale ones. Once they are gone the pool dials the new primary,
// which leaves one fresh connection ready.
func (s *SentinelPool) dropStale() {
	ctx, cancel := context.WithTimeout(s.ctx, 2*s.opts.ConnectTimeout)
	defer cancel()
	var held []redis.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range s.opts.MaxIdle {
		if s.pool.Stats().IdleCount == 0 {
			return
		}
		c, err := s.pool.GetContext(ctx)
		if err != nil {
			return
		}
		held = append(held, c)
	}
}

// sleep waits for d or until ctx is done, and then returns ctx's error.
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

// sentinelConn is a connection to the primary that remembers its generation
// and retires it when a command shows the primary may have moved.
type sentinelConn struct {
	redis.Conn // a redigo connection: it also has the timeout and context methods
	pool       *SentinelPool
	gen        uint64
}

// Err reports a broken connection, or one whose generation has passed.
func (c *sentinelConn) Err() error {
	if err := c.Conn.Err(); err != nil {
		return err
	}
	if c.gen != c.pool.gen.Load() {
		return errStaleConn
	}
	return nil
}

func (c *sentinelConn) Do(cmd string, args ...any) (any, error) {
	r, err := c.Conn.Do(cmd, args...)
	c.observe(err)
	return r, err
}

func (c *sentinelConn) Send(cmd string, args ...any) error {
	err := c.Conn.Send(cmd, args...)
	c.observe(err)
	return err
}

func (c *sentinelConn) Flush() error {
	err := c.Conn.Flush()
	c.observe(err)
	return err
}

func (c *sentinelConn) Receive() (any, error) {
	r, err := c.Conn.Receive()
	c.observe(err)
	return r, err
}

func (c *sentinelConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	r, err := redis.DoWithTimeout(c.Conn, timeout, cmd, args...)
	c.observe(err)
	return r, err
}

func (c *sentinelConn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	r, err := redis.ReceiveWithTimeout(c.Conn, timeout)
	c.observe(err)
	return r, err
}

func (c *sentinelConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	r, err := redis.DoContext(c.Conn, ctx, cmd, args...)
	c.observe(err)
	return r, err
}

func (c *sentinelConn) ReceiveContext(ctx context.Context) (any, error) {
	r, err := redis.ReceiveContext(c.Conn, ctx)
	c.observe(err)
	return r, err
}

// observe retires the connection's generation when err says the server is
// no longer a usable primary (READONLY: it is a replica now; NOREPLICAS: it
// has lost its replica, as a primary being failed over does) or the
// connection broke. The caller's own deadline or cancellation says nothing
// about the server and is ignored.
func (c *sentinelConn) observe(err error) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	var re redis.Error
	if errors.As(err, &re) {
		if primaryLost(re) {
			c.pool.suspect(c.gen)
		}
		return
	}
	if c.Conn.Err() != nil {
		c.pool.suspect(c.gen)
	}
}

// primaryLost reports whether a Redis error reply means the server has
// stopped being a writable primary. Errors raised inside Lua scripts keep
// the same prefix.
func primaryLost(re redis.Error) bool {
	msg := string(re)
	return strings.HasPrefix(msg, "READONLY ") || strings.HasPrefix(msg, "NOREPLICAS ")
}
