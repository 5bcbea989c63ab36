package redisx

import (
	"context"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// waitReplyMargin is how long after WAIT's own timeout its reply may take to
// arrive before the connection is given up on.
const waitReplyMargin = 500 * time.Millisecond

// WaitReplicas waits until n replicas have acknowledged every write made so
// far on conn, or until timeout passes, and returns how many did (Redis
// WAIT). Replication is asynchronous: a write the replicas have not
// acknowledged is lost if the primary fails now, so callers that cannot
// afford that (session creation and revocation) check the count.
//
// A deadline on ctx shortens the wait; timeout must be positive, because
// WAIT with no timeout would block for as long as a replica is missing.
// Cancelling ctx does not interrupt a WAIT already sent.
func WaitReplicas(ctx context.Context, conn redis.Conn, n int, timeout time.Duration) (int, error) {
	if n < 0 {
		return 0, fmt.Errorf("wait for %d replicas: negative count", n)
	}
	if timeout <= 0 {
		return 0, fmt.Errorf("wait for %d replicas: timeout %s must be positive", n, timeout)
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("wait for %d replicas: %w", n, err)
	}
	if timeout <= 0 {
		return 0, fmt.Errorf("wait for %d replicas: %w", n, context.DeadlineExceeded)
	}
	ms := (timeout + time.Millisecond - 1) / time.Millisecond
	got, err := redis.Int(redis.DoWithTimeout(conn, timeout+waitReplyMargin, "WAIT", n, int64(ms)))
	if err != nil {
		return 0, fmt.Errorf("wait for %d replicas: %w", n, err)
	}
	return got, nil
}
