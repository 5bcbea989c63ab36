// Package testkit holds the two things about time that every test suite in
// Hallpass needs: a fake clock the test moves by hand, and a way to wait for
// a condition with a deadline instead of sleeping.
package testkit

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Clock is a fake clock, safe for concurrent use, that moves only when told.
type Clock struct {
	base   time.Time
	offset atomic.Int64
}

// NewClock returns a Clock stopped at start.
func NewClock(start time.Time) *Clock {
	return &Clock{base: start}
}

// Now returns the clock's time; pass the method value wherever a
// func() time.Time clock is taken.
func (c *Clock) Now() time.Time {
	return c.base.Add(time.Duration(c.offset.Load()))
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.offset.Add(int64(d))
}

// Set moves the clock to t (forwards or backwards).
func (c *Clock) Set(t time.Time) {
	c.offset.Store(int64(t.Sub(c.base)))
}

// pollEvery is how often Eventually checks its condition.
const pollEvery = 10 * time.Millisecond

// Eventually calls check until it returns nil, and fails t with check's
// last error if that has not happened within the given time.
func Eventually(t testing.TB, within time.Duration, what string, check func() error) {
	t.Helper()
	if err := PollUntil(within, check); err != nil {
		t.Fatalf("gave up after %v waiting for %s: %v", within, what, err)
	}
}

// PollUntil calls check until it returns nil and returns nil, or returns
// check's last error once within has passed. Tests use Eventually; PollUntil
// is for code that must not fail a test from another goroutine.
func PollUntil(within time.Duration, check func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(pollEvery) // polling interval, not synchronisation
	}
}

// LogBuffer collects what servers under test log, safely from many
// goroutines.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Reset forgets everything written so far, keeping the memory: a benchmark
// that serves thousands of requests resets it as it goes, so it measures
// formatting each line rather than an ever-growing buffer.
func (b *LogBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}
