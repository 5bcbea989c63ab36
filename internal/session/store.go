// Package session signs people in and keeps them signed in: it ties scs
// (cookie, token, load and save) to Hallpass's rules on idle timeout, absolute
// lifetime and revocation, and provides the stores sessions live in (Redis,
// or memory for a single process and tests).
package session

import (
	"context"
	"errors"
	"time"

	"github.com/alexedwards/scs/v2"
)

// ErrRevoked is returned by Commit for a session that was deleted (signed
// out or revoked) after the request saving it had loaded it. Writing it would
// bring the session back, so nothing is written.
var ErrRevoked = errors.New("session revoked")

// defaultLifetime is how long tombstones last when Options.Lifetime is zero:
// scs's own default session lifetime.
const defaultLifetime = 24 * time.Hour

// Store is where sessions live, keyed by scs's hash of the session token
// (scs runs with HashTokenInStore, so no store ever sees a raw token).
//
// Beyond scs.CtxStore's contract, a Store enforces the idle timeout, and
// Delete is final: Commit of a deleted key writes nothing and returns
// ErrRevoked until Options.Lifetime has passed. sessiontest.RunStoreContract
// checks every implementation against this.
type Store interface {
	scs.CtxStore
	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error
}

// Options configures a Store.
type Options struct {
	// IdleTimeout caps how long a session lives after its last Commit; zero
	// means no cap beyond the expiry scs passes. scs's own IdleTimeout stays
	// off because it writes on every request.
	IdleTimeout time.Duration
	// Lifetime is the absolute session lifetime, and so how long a tombstone
	// must outlive the deletion that wrote it; zero means 24 hours.
	Lifetime time.Duration
	// Now is the clock that decides expiry; nil means time.Now.
	Now func() time.Time
}

// now reads the configured clock.
func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// tombstoneLifetime is how long a deletion blocks Commit.
func (o Options) tombstoneLifetime() time.Duration {
	if o.Lifetime <= 0 {
		return defaultLifetime
	}
	return o.Lifetime
}

// expiry is when a session committed at now with scs's expiry must end:
// the sooner of that expiry and the end of the idle window.
func (o Options) expiry(now, scsExpiry time.Time) time.Time {
	if o.IdleTimeout > 0 {
		if idle := now.Add(o.IdleTimeout); idle.Before(scsExpiry) {
			return idle
		}
	}
	return scsExpiry
}
