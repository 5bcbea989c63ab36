package testsvc

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// CountingPool returns a redigo pool to the Redis at url whose connections
// count every command sent through them, so a test can prove that a call
// is one round trip. Commands a Lua script runs inside Redis are not sent
// and not counted. The pool is closed when t ends.
func CountingPool(t testing.TB, url string) (*redis.Pool, *atomic.Int64) {
	t.Helper()
	pool, sent, _ := CountingRoundTripsPool(t, url)
	return pool, sent
}

// CountingRoundTripsPool is CountingPool that also counts round trips:
// each command sent by Do (or its variants), and each flush of pipelined
// commands (Flush, or Do with an empty command while some are pending).
func CountingRoundTripsPool(t testing.TB, url string) (pool *redis.Pool, sent, trips *atomic.Int64) {
	t.Helper()
	sent, trips = new(atomic.Int64), new(atomic.Int64)
	pool = &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			c, err := redis.DialURLContext(ctx, url, redis.DialConnectTimeout(time.Second),
				redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second))
			if err != nil {
				return nil, err
			}
			return &countingConn{fullConn: c.(fullConn), sent: sent, trips: trips}, nil
		},
		MaxActive: 4,
		Wait:      true,
	}
	t.Cleanup(func() { pool.Close() })
	return pool, sent, trips
}

// fullConn is what redigo's own connections offer.
type fullConn interface {
	redis.ConnWithContext
	redis.ConnWithTimeout
}

// countingConn counts the commands sent through it. Do with an empty
// command only flushes (the pool does it when a connection is returned), so
// it does not count.
type countingConn struct {
	fullConn
	sent, trips *atomic.Int64
	// pending is how many sent commands no flush has gone out with yet.
	pending int
}

// do counts a command sent with Do: a round trip, with whatever is
// pending.
func (c *countingConn) do(cmd string) {
	if cmd != "" {
		c.sent.Add(1)
	}
	if cmd != "" || c.pending > 0 {
		c.trips.Add(1)
	}
	c.pending = 0
}

func (c *countingConn) Do(cmd string, args ...any) (any, error) {
	c.do(cmd)
	return c.fullConn.Do(cmd, args...)
}

func (c *countingConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	c.do(cmd)
	return c.fullConn.DoContext(ctx, cmd, args...)
}

func (c *countingConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	c.do(cmd)
	return c.fullConn.DoWithTimeout(timeout, cmd, args...)
}

func (c *countingConn) Send(cmd string, args ...any) error {
	c.sent.Add(1)
	c.pending++
	return c.fullConn.Send(cmd, args...)
}

func (c *countingConn) Flush() error {
	if c.pending > 0 {
		c.trips.Add(1)
		c.pending = 0
	}
	return c.fullConn.Flush()
}
