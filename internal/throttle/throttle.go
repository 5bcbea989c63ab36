// Package throttle slows down password guessing: it counts failures per key
// (an account, a client IP, a sign-up source) and, past a limit, makes the
// key wait before its next attempt, with a wait that doubles on each further
// failure up to a cap. It never locks a key for good, so an attacker cannot
// lock a real user out for longer than the cap.
//
// The counters live in a Store: Redis, shared by every replica behind the
// load balancer, so failure N+1 is throttled whichever replica serves it; or
// memory, for a single process and tests.
//
// # Keys
//
// Keys are opaque strings the caller builds, such as "login:user:alice",
// "login:ip:203.0.113.9" or "signup:ip:203.0.113.9". Stores normalise
// nothing: the caller lower-cases user names (as it does when it looks the
// user up), so that "Alice" and "alice" share one counter, and uses the
// client IP the trusted load balancer reports, never one a client can forge.
// Throttle an account key whether or not the account exists, so the
// throttle's answers do not reveal which user names are real. Keys never
// hold secrets: no passwords, no tokens. RedisStore keeps only a SHA-256 of
// each key, so no user name or IP sits in Redis in clear text.
//
// # Using it at login
//
// Before checking a password, reserve the attempt with Attempt on the account
// key and the IP key: if either has a wait in force, refuse with a
// Retry-After, without checking the password (and give back the other key's
// reservation with Forgive). Attempt counts the attempt as a failure before
// the check, atomically, so parallel guesses cannot all slip through between
// a check and a count. After a wrong password, nothing more is needed. After
// a right one, Reset the account key and Forgive the IP key: the IP gets back
// only the attempt that succeeded, so one good account cannot launder an
// IP's guesses at others.
//
// # When the store fails
//
// Store errors (Redis down, read-only, out of memory, slow) are returned,
// wrapped; the caller must fail closed on them: refuse the attempt (503)
// without checking the password, or a throttle that cannot count becomes an
// unlimited password oracle. An invalid
// Policy is a programming error, reported as ErrInvalidPolicy before any I/O:
// validate policies at start-up, because failing open on it would silently
// turn throttling off.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidPolicy is returned, wrapped, for a Policy that fails Validate.
var ErrInvalidPolicy = errors.New("invalid throttle policy")

// Policy says how many failures a key may have before it must wait, and how
// long it waits.
//
// A key's failures are counted until Window passes without one, measured
// from the end of the wait its last failure started: so failing slowly,
// one attempt each time a wait ends, keeps the count — and the waits —
// growing, while a user who gets the password wrong a few times a day never
// meets a wait at all. Within the count, failures 1 to Limit are free;
// failure Limit+1 starts a wait of BaseDelay, and each further failure
// doubles it, up to MaxDelay. No wait is ever longer than MaxDelay.
//
// Stores work in whole milliseconds.
type Policy struct {
	// Limit is how many failures are allowed before any wait.
	Limit int
	// Window is how long a key's failures are remembered after its last
	// failure (and the wait that failure started).
	Window time.Duration
	// BaseDelay is the first wait, after failure Limit+1.
	BaseDelay time.Duration
	// MaxDelay caps every wait.
	MaxDelay time.Duration
}

// DefaultLoginPolicy is the policy for sign-in, per account and per client
// IP: 5 failures in 15 minutes, then waits of 30 s, 1 min, 2 min, … up to
// 15 minutes. A persistent guesser gets about a dozen attempts per account
// in the first hour and 4 an hour after that, well under the 100 failures
// per hour ASVS allows, and the real user waits at most 15 minutes after the
// last failure.
func DefaultLoginPolicy() Policy {
	return Policy{
		Limit:     5,
		Window:    15 * time.Minute,
		BaseDelay: 30 * time.Second,
		MaxDelay:  15 * time.Minute,
	}
}

// DefaultSignupPolicy is the policy for sign-up, per client IP, where every
// sign-up (not only a failed one) is recorded with Fail: 10 sign-ups in an
// hour, then waits of 1 min, 2 min, … up to an hour. It is loose enough for
// an office or campus behind one address.
func DefaultSignupPolicy() Policy {
	return Policy{
		Limit:     10,
		Window:    time.Hour,
		BaseDelay: time.Minute,
		MaxDelay:  time.Hour,
	}
}

// Validate reports whether p can be applied: a Limit of zero or more, and a
// Window, BaseDelay and MaxDelay of at least a millisecond, with MaxDelay no
// shorter than BaseDelay. Its errors wrap ErrInvalidPolicy.
func (p Policy) Validate() error {
	switch {
	case p.Limit < 0:
		return fmt.Errorf("%w: limit %d is negative", ErrInvalidPolicy, p.Limit)
	case p.Window < time.Millisecond:
		return fmt.Errorf("%w: window %s is under 1ms", ErrInvalidPolicy, p.Window)
	case p.BaseDelay < time.Millisecond:
		return fmt.Errorf("%w: base delay %s is under 1ms", ErrInvalidPolicy, p.BaseDelay)
	case p.MaxDelay < p.BaseDelay:
		return fmt.Errorf("%w: max delay %s is shorter than base delay %s", ErrInvalidPolicy, p.MaxDelay, p.BaseDelay)
	}
	return nil
}

// delay returns the wait that failure number n (counting from 1) of a key
// starts under p: zero up to Limit, then BaseDelay doubling up to MaxDelay.
// scripts/fail.lua computes the same in Redis.
func (p Policy) delay(n int) time.Duration {
	if n <= p.Limit {
		return 0
	}
	d := p.BaseDelay
	for range n - p.Limit - 1 {
		if d >= p.MaxDelay/2 {
			return p.MaxDelay
		}
		d *= 2
	}
	return min(d, p.MaxDelay)
}

// Verdict is Attempt's answer.
type Verdict struct {
	// Wait is how long the key must wait before its next attempt; zero
	// means this attempt was taken (and counted).
	Wait time.Duration
	// Refused counts the attempts the current wait has refused, this one
	// included (zero when the attempt was taken), so a caller can record a
	// flood of refusals in a few lines instead of one each.
	Refused int
}

// Store counts failures per key and says how long a key must wait.
// throttletest.Run checks every implementation against this contract.
type Store interface {
	// Check returns how long key must wait before its next attempt under
	// p: zero when it may try now. It records nothing.
	Check(ctx context.Context, key string, p Policy) (retryAfter time.Duration, err error)
	// Fail records one failure of key under p and returns the wait now in
	// force for it: zero while the key is within p.Limit.
	Fail(ctx context.Context, key string, p Policy) (retryAfter time.Duration, err error)
	// Attempt reserves one attempt of key under p in one atomic step:
	// while a wait is in force it returns that wait (and how many attempts
	// the wait has refused) and counts nothing else;
	// otherwise it counts the attempt as a failure at once and returns
	// zero. Counting before the caller checks the password is what makes
	// the limit hold under concurrency, on any number of replicas: at most
	// p.Limit+1 attempts reach the check before a wait starts, however many
	// arrive at once. Give a successful attempt back with Forgive (or
	// Reset).
	Attempt(ctx context.Context, key string, p Policy) (Verdict, error)
	// Forgive gives back one attempt Attempt counted, for an attempt that
	// succeeded: the count drops by one, and a wait the count no longer
	// justifies is lifted.
	Forgive(ctx context.Context, key string, p Policy) error
	// Reset forgets key's failures and lifts its wait, as after a
	// successful sign-in to the account key names.
	Reset(ctx context.Context, key string) error
	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error
}
