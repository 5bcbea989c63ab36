package database

import (
	"context"
	"time"
)

// DefaultQueryTimeout is how long a store lets one statement run when its
// caller set no sooner deadline. The stores' statements are single-row or
// index-walking pages that take milliseconds; one still running after two
// seconds is waiting on a lock or a database that has stopped answering, and
// the request behind it is better failed than left holding a connection.
const DefaultQueryTimeout = 2 * time.Second

// BoundQuery returns ctx with a deadline at most timeout from now: ctx's own
// deadline if that is sooner, else now plus timeout, so that a caller without
// a deadline (or with a distant one) cannot hang on a stuck database. A
// timeout of zero or less means DefaultQueryTimeout.
//
// Call cancel once the statement is done, and for a query only after its
// rows have been read: the rows need the context until then.
func BoundQuery(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	// WithTimeout keeps ctx's deadline when it comes first.
	return context.WithTimeout(ctx, timeout)
}
