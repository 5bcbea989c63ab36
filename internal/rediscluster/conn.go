package rediscluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Bounds on following the cluster's answers for one command.
const (
	// maxRedirects bounds MOVED and ASK replies followed: a slot moves
	// once per reshard step, so more means the nodes disagree.
	maxRedirects = 5
	// TRYAGAIN (a multi-key command during a slot's migration) and
	// CLUSTERDOWN are retried after a pause growing from minBackoff to
	// maxBackoff, until the command's deadline, or for retryWithin
	// when it has none.
	minBackoff  = 10 * time.Millisecond
	maxBackoff  = 100 * time.Millisecond
	retryWithin = time.Second
	// poolWaitWithin bounds the wait for a node connection when
	// MaxActivePerNode is set and the command has no deadline of its own:
	// a routing connection holding one node's connection while waiting for
	// another's must not wait for ever.
	poolWaitWithin = time.Second
)

var errClosed = errors.New("rediscluster: connection closed")

// conn is a routing connection: it borrows one connection per node it
// talks to and sends each command to the node owning its key. Like
// redigo's connections it is used by one goroutine at a time.
type conn struct {
	cluster *Cluster
	nodes   map[string]*nodeConn // borrowed, by address
	last    string               // node of the last keyed command, for keyless ones
	queue   []*sent              // sent and not yet received, in order
	broken  error                // the last connection failure, until a node answers
	closed  bool
}

// sent is a command waiting for its reply (Send, then Receive).
type sent struct {
	cmd   string
	args  []any
	slot  int
	nodes []*nodeConn // one, or every primary for a broadcast
}

// call is how a command waits: for its context, for a read timeout, or as
// the node connection's defaults say.
type call struct {
	ctx     context.Context // nil: none
	timeout time.Duration   // > 0: DoWithTimeout
}

func (o call) do(c redis.Conn, cmd string, args []any) (any, error) {
	switch {
	case o.ctx != nil:
		return redis.DoContext(c, o.ctx, cmd, args...)
	case o.timeout > 0:
		return redis.DoWithTimeout(c, o.timeout, cmd, args...)
	}
	return c.Do(cmd, args...)
}

func (o call) receive(c redis.Conn) (any, error) {
	switch {
	case o.ctx != nil:
		return redis.ReceiveContext(c, o.ctx)
	case o.timeout > 0:
		return redis.ReceiveWithTimeout(c, o.timeout)
	}
	return c.Receive()
}

// bound returns a context for waiting on a node pool.
func (o call) bound() (context.Context, context.CancelFunc) {
	if o.ctx != nil {
		return o.ctx, func() {}
	}
	return context.WithTimeout(context.Background(), cmp.Or(o.timeout, poolWaitWithin))
}

// deadline is when TRYAGAIN and CLUSTERDOWN stop being retried.
func (o call) deadline() time.Time {
	if o.ctx != nil {
		if d, ok := o.ctx.Deadline(); ok {
			return d
		}
	}
	return time.Now().Add(cmp.Or(o.timeout, retryWithin))
}

// sleep waits d, or less if the command's context ends.
func (o call) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	var done <-chan struct{}
	if o.ctx != nil {
		done = o.ctx.Done()
	}
	select {
	case <-t.C:
		return nil
	case <-done:
		return o.ctx.Err()
	}
}

// nodeConn is a node connection borrowed by a routing connection.
type nodeConn struct {
	addr      string
	conn      redis.Conn
	unread    int  // replies owed for commands sent on conn
	unflushed bool // commands sent but not flushed
	ahead     []result
}

// result is a reply read ahead of its turn (see do).
type result struct {
	reply any
	err   error
}

func (n *nodeConn) send(cmd string, args []any) error {
	if err := n.conn.Send(cmd, args...); err != nil {
		return err
	}
	n.unread++
	n.unflushed = true
	return nil
}

func (n *nodeConn) flush() error {
	if !n.unflushed {
		return nil
	}
	n.unflushed = false
	return n.conn.Flush()
}

// receive returns the next reply owed on this node, in the order sent.
func (n *nodeConn) receive(o call) (any, error) {
	if len(n.ahead) > 0 {
		r := n.ahead[0]
		n.ahead = n.ahead[1:]
		return r.reply, r.err
	}
	if n.unread == 0 {
		return nil, errors.New("rediscluster: receive with no reply owed")
	}
	if err := n.flush(); err != nil {
		return nil, err
	}
	n.unread--
	return o.receive(n.conn)
}

// do runs one command and returns its reply. Replies owed to pipelined
// commands are read ahead first, so that the next reply on the connection is
// this command's: it is how a redirection met in a pipeline is followed on a
// node that has replies pending.
func (n *nodeConn) do(o call, cmd string, args []any) (any, error) {
	if n.unread > 0 {
		if err := n.flush(); err != nil {
			return nil, err
		}
		for ; n.unread > 0; n.unread-- {
			r, err := o.receive(n.conn)
			n.ahead = append(n.ahead, result{r, err})
		}
	}
	return o.do(n.conn, cmd, args)
}

// node returns the borrowed connection to addr, borrowing one if need be.
func (c *conn) node(o call, addr string) (*nodeConn, error) {
	if n, ok := c.nodes[addr]; ok {
		return n, nil
	}
	ctx, cancel := o.bound()
	defer cancel()
	nc, err := c.cluster.NodePool(addr).GetContext(ctx)
	if err != nil {
		return nil, c.failed(addr, nil, err)
	}
	if c.nodes == nil {
		c.nodes = map[string]*nodeConn{}
	}
	n := &nodeConn{addr: addr, conn: nc}
	c.nodes[addr] = n
	return n, nil
}

// failed handles err, a connection failure on addr (n, if borrowed): the
// command may have run, so it is not sent again, but the slot map is
// reloaded, as the node may be gone; a broken connection goes back to its
// pool, which discards it.
func (c *conn) failed(addr string, n *nodeConn, err error) error {
	err = fmt.Errorf("rediscluster: %s: %w", addr, err)
	c.broken = err
	c.cluster.scheduleRefresh()
	if n != nil && n.conn.Err() != nil && c.nodes[addr] == n {
		delete(c.nodes, addr)
		n.conn.Close()
	}
	return err
}

// target returns the node a command for slot goes to.
func (c *conn) target(slot int) string {
	if slot >= 0 {
		if addr := c.cluster.slots.Load().primaryOf(slot); addr != "" {
			return addr
		}
		c.cluster.scheduleRefresh() // the map has a hole; any node redirects us
	} else if c.last != "" {
		return c.last
	}
	return c.cluster.anyPrimary()
}

// attempt is the state of one command through its redirections.
type attempt struct {
	addr      string
	asking    bool
	redirects int
	backoff   time.Duration
	deadline  time.Time
}

// exec sends the command to a.addr and returns the reply.
func (c *conn) exec(o call, a *attempt, cmd string, args []any, slot int) (any, error) {
	n, err := c.node(o, a.addr)
	if err != nil {
		return nil, err
	}
	if slot >= 0 {
		c.last = a.addr
	}
	if a.asking {
		if _, err := n.do(o, "ASKING", nil); err != nil {
			return nil, c.classify(a.addr, n, err)
		}
	}
	reply, err := n.do(o, cmd, args)
	return reply, c.classify(a.addr, n, err)
}

// classify passes a node's error reply on unchanged (redigo's Script
// recognises NOSCRIPT by its type) and handles a connection failure.
func (c *conn) classify(addr string, n *nodeConn, err error) error {
	if err == nil {
		c.broken = nil
		return nil
	}
	if _, ok := err.(redis.Error); ok {
		c.broken = nil
		return err
	}
	return c.failed(addr, n, err)
}

// retry reports whether err, the reply to a command for slot, asks for the
// command again, and sets a up for it: on the node a MOVED or ASK names,
// or, after TRYAGAIN or CLUSTERDOWN and a pause, on the slot's owner.
func (c *conn) retry(o call, a *attempt, slot int, err error) bool {
	e, ok := err.(redis.Error)
	if !ok {
		return false
	}
	kind, rest, _ := strings.Cut(string(e), " ")
	switch kind {
	case "MOVED", "ASK":
		s, addr, ok := parseRedirect(rest, a.addr)
		if !ok || a.redirects == maxRedirects {
			return false
		}
		a.redirects++
		a.addr, a.asking = addr, kind == "ASK"
		if kind == "MOVED" {
			c.cluster.learn(s, addr)
		}
		return true
	case "TRYAGAIN", "CLUSTERDOWN":
		if a.deadline.IsZero() {
			a.deadline, a.backoff = o.deadline(), minBackoff
		}
		if time.Now().Add(a.backoff).After(a.deadline) || o.sleep(a.backoff) != nil {
			return false
		}
		a.backoff = min(2*a.backoff, maxBackoff)
		if slot >= 0 {
			a.addr, a.asking = c.target(slot), false
		}
		return true
	}
	return false
}

// parseRedirect reads "<slot> <host:port>" from a MOVED or ASK reply. An
// empty host means the host of the node that replied (from).
func parseRedirect(s, from string) (int, string, bool) {
	slotStr, addr, ok := strings.Cut(s, " ")
	slot, err := strconv.Atoi(slotStr)
	if !ok || err != nil || slot < 0 || slot >= SlotCount {
		return 0, "", false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, "", false
	}
	if host == "" {
		host, _, _ = net.SplitHostPort(from)
	}
	return slot, net.JoinHostPort(host, port), true
}

// Do runs a command. With commands sent and not received, it first
// receives their replies, and returns its own reply and the first error,
// as redigo's connections do; Do("") only receives them.
func (c *conn) Do(cmd string, args ...any) (any, error) { return c.do(call{}, cmd, args) }

// DoWithTimeout is Do with timeout as the read timeout.
func (c *conn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	return c.do(call{timeout: timeout}, cmd, args)
}

// DoContext is Do bounded by ctx.
func (c *conn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	return c.do(call{ctx: ctx}, cmd, args)
}

func (c *conn) do(o call, cmd string, args []any) (any, error) {
	if cmd != "" {
		if err := c.send(o, cmd, args); err != nil {
			return nil, err
		}
	}
	var replies []any
	var reply any
	var first error
	for len(c.queue) > 0 {
		r, err := c.receive(o)
		reply = r
		if e, ok := err.(redis.Error); ok {
			r = e // Do("") lists error replies, as redigo's does
		}
		replies = append(replies, r)
		first = cmp.Or(first, err)
	}
	if cmd == "" && len(replies) > 0 {
		return replies, first
	}
	return reply, first
}

// Send queues a command on the node it goes to; Flush sends them all,
// one pipeline per node.
func (c *conn) Send(cmd string, args ...any) error { return c.send(call{}, cmd, args) }

func (c *conn) send(o call, cmd string, args []any) error {
	if c.closed {
		return errClosed
	}
	slot, err := commandSlot(cmd, args)
	if err != nil {
		return err
	}
	var addrs []string
	if slot == broadcast {
		addrs = c.cluster.Primaries()
	} else {
		addrs = []string{c.target(slot)}
	}
	s := &sent{cmd: cmd, args: args, slot: slot}
	var first error
	for _, addr := range addrs {
		n, err := c.node(o, addr)
		if err == nil {
			if err = n.send(cmd, args); err != nil {
				err = c.failed(addr, n, err)
			}
		}
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		s.nodes = append(s.nodes, n)
		if slot >= 0 {
			c.last = addr
		}
	}
	if len(s.nodes) == 0 {
		return first
	}
	// Sent somewhere, so its replies are owed; a broadcast that reached
	// one primary succeeds (see receive).
	c.queue = append(c.queue, s)
	return nil
}

// Flush sends the queued commands, one pipeline per node.
func (c *conn) Flush() error {
	if c.closed {
		return errClosed
	}
	var first error
	for addr, n := range c.nodes {
		if err := n.flush(); err != nil {
			first = cmp.Or(first, c.failed(addr, n, err))
		}
	}
	return first
}

// Receive returns the reply to the oldest command sent and not received. A
// redirection is followed by running that command again on its own.
func (c *conn) Receive() (any, error) { return c.receive(call{}) }

// ReceiveWithTimeout is Receive with timeout as the read timeout.
func (c *conn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	return c.receive(call{timeout: timeout})
}

// ReceiveContext is Receive bounded by ctx.
func (c *conn) ReceiveContext(ctx context.Context) (any, error) { return c.receive(call{ctx: ctx}) }

func (c *conn) receive(o call) (any, error) {
	if c.closed {
		return nil, errClosed
	}
	if len(c.queue) == 0 {
		return nil, errors.New("rediscluster: receive with nothing sent")
	}
	s := c.queue[0]
	c.queue = c.queue[1:]
	var reply any
	var first error
	for _, n := range s.nodes { // one, or the primaries a broadcast reached
		r, err := n.receive(o)
		err = c.classify(n.addr, n, err)
		a := &attempt{addr: n.addr}
		for c.retry(o, a, s.slot, err) {
			r, err = c.exec(o, a, s.cmd, s.args, s.slot)
		}
		if err == nil && reply == nil {
			reply = r
		}
		first = cmp.Or(first, err)
	}
	// SCRIPT LOAD goes to every primary so that a later EVALSHA finds the
	// script wherever its keys are. One primary that loaded it is success:
	// one that could not be reached answers NOSCRIPT later, if at all,
	// which callers handle as after any failover.
	if s.slot == broadcast && reply != nil {
		return reply, nil
	}
	return reply, first
}

// Err reports the connection failure of the last command, or that the
// connection is closed. A routing connection stays usable after a node
// fails: the next command may go to another node.
func (c *conn) Err() error {
	if c.closed {
		return errClosed
	}
	return c.broken
}

// Close gives the borrowed node connections back to their pools.
func (c *conn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var first error
	for _, n := range c.nodes {
		first = cmp.Or(first, n.conn.Close())
	}
	c.nodes, c.queue = nil, nil
	if first != nil {
		return fmt.Errorf("rediscluster: close: %w", first)
	}
	return nil
}

var (
	_ redis.ConnWithContext = (*conn)(nil)
	_ redis.ConnWithTimeout = (*conn)(nil)
)
