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
	sent := new(atomic.Int64)
	pool := &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			c, err := redis.DialURLContext(ctx, url, redis.DialConnectTimeout(time.Second),
				redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second))
			if err != nil {
				return nil, err
			}
			return countingConn{c.(fullConn), sent}, nil
		},
		MaxActive: 4,
		Wait:      true,
	}
	t.Cleanup(func() { pool.Close() })
	return pool, sent
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
	sent *atomic.Int64
}

func (c countingConn) count(cmd string) {
	if cmd != "" {
		c.sent.Add(1)
	}
}

func (c countingConn) Do(cmd string, args ...any) (any, error) {
	c.count(cmd)
	return c.fullConn.Do(cmd, args...)
}

func (c countingConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	c.count(cmd)
	return c.fullConn.DoContext(ctx, cmd, args...)
}

func (c countingConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	c.count(cmd)
	return c.fullConn.DoWithTimeout(timeout, cmd, args...)
}

func (c countingConn) Send(cmd string, args ...any) error {
	c.count(cmd)
	return c.fullConn.Send(cmd, args...)
}
