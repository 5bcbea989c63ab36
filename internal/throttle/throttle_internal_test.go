package throttle

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/rediscluster"
)

func TestPolicyDelay(t *testing.T) {
	p := Policy{Limit: 5, Window: 15 * time.Minute, BaseDelay: 30 * time.Second, MaxDelay: 15 * time.Minute}
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{1, 0},
		{5, 0},
		{6, 30 * time.Second},
		{7, time.Minute},
		{8, 2 * time.Minute},
		{10, 8 * time.Minute},
		{11, 15 * time.Minute}, // 16 min, capped
		{12, 15 * time.Minute},
		{100, 15 * time.Minute},
		{1 << 40, 15 * time.Minute}, // no overflow
	} {
		if got := p.delay(tc.n); got != tc.want {
			t.Errorf("delay(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
	zero := Policy{Limit: 0, Window: time.Minute, BaseDelay: time.Millisecond, MaxDelay: time.Duration(1<<63 - 1)}
	if got := zero.delay(1); got != time.Millisecond {
		t.Errorf("Limit 0: delay(1) = %s, want 1ms", got)
	}
	if got := zero.delay(200); got <= 0 {
		t.Errorf("huge MaxDelay: delay(200) = %s, overflowed", got)
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		p     Policy
		valid bool
	}{
		{DefaultLoginPolicy(), true},
		{DefaultSignupPolicy(), true},
		{Policy{Limit: 0, Window: time.Millisecond, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}, true},
		{Policy{}, false},
		{Policy{Limit: -1, Window: time.Minute, BaseDelay: time.Second, MaxDelay: time.Minute}, false},
		{Policy{Limit: 5, Window: 0, BaseDelay: time.Second, MaxDelay: time.Minute}, false},
		{Policy{Limit: 5, Window: time.Minute, BaseDelay: time.Microsecond, MaxDelay: time.Minute}, false},
		{Policy{Limit: 5, Window: time.Minute, BaseDelay: time.Minute, MaxDelay: time.Second}, false},
	} {
		err := tc.p.Validate()
		if tc.valid && err != nil {
			t.Errorf("%+v: Validate = %v, want nil", tc.p, err)
		}
		if !tc.valid && !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("%+v: Validate = %v, want ErrInvalidPolicy", tc.p, err)
		}
	}
}

func TestDefaultLoginPolicyStaysWellUnderASVSHourlyLimit(t *testing.T) {
	// A guesser who tries again the moment each wait ends: count the
	// attempts one account gets in its first hour (ASVS 4.0.3 2.2.1 allows
	// at most 100).
	p := DefaultLoginPolicy()
	var at time.Duration
	attempts := 0
	for n := 1; at < time.Hour; n++ {
		attempts++
		at += p.delay(n)
	}
	if attempts > 20 {
		t.Errorf("a persistent guesser gets %d attempts in the first hour", attempts)
	}
}

func TestMemoryStoreDropsForgottenKeysOnWrite(t *testing.T) {
	now := time.Now()
	m := NewMemoryStore(func() time.Time { return now })
	ctx := context.Background()
	p := Policy{Limit: 5, Window: time.Minute, BaseDelay: time.Second, MaxDelay: time.Minute}
	for i := range 100 {
		if _, err := m.Fail(ctx, fmt.Sprintf("login:ip:192.0.2.%d", i), p); err != nil {
			t.Fatalf("Fail: %v", err)
		}
	}
	if n := len(m.keys); n != 100 {
		t.Fatalf("tracking %d keys, want 100", n)
	}
	now = now.Add(p.Window)
	if _, err := m.Fail(ctx, "login:user:alice", p); err != nil {
		t.Fatalf("Fail: %v", err)
	}
	if n := len(m.keys); n != 1 {
		t.Fatalf("after the window, tracking %d keys, want just the new one", n)
	}
}

func TestMemoryStoreEvictsTheKeyForgottenSoonestAtItsCap(t *testing.T) {
	now := time.Now()
	m := NewMemoryStore(func() time.Time { return now })
	m.maxKeys = 3
	ctx := context.Background()
	p := Policy{Limit: 0, Window: time.Hour, BaseDelay: time.Minute, MaxDelay: time.Hour}
	fail := func(key string, times int) {
		t.Helper()
		for range times {
			if _, err := m.Fail(ctx, key, p); err != nil {
				t.Fatalf("Fail: %v", err)
			}
		}
	}
	fail("guesser", 5) // a 16-minute wait: forgotten last
	fail("old", 1)
	now = now.Add(time.Second)
	fail("newer", 1)
	now = now.Add(time.Second)
	fail("newest", 1) // over the cap: "old" goes
	if n := len(m.keys); n != 3 {
		t.Fatalf("tracking %d keys, want the cap, 3", n)
	}
	for key, want := range map[string]time.Duration{
		"guesser": 16*time.Minute - 2*time.Second,
		"old":     0,
		"newer":   time.Minute - time.Second,
		"newest":  time.Minute,
	} {
		if got, err := m.Check(ctx, key, p); err != nil || got != want {
			t.Errorf("Check(%q) = %s, %v; want %s", key, got, err, want)
		}
	}
}

// TestRedisKeysOfOneKeyShareASlot: fail.lua, attempt.lua and forgive.lua
// touch a key's count and wait together, so on Redis Cluster both must
// hash to one slot (CRC16 of the hash tag, as Redis computes it).
func TestRedisKeysOfOneKeyShareASlot(t *testing.T) {
	for _, key := range []string{"login:user:alice", "login:ip:192.0.2.1", "signup:ip:2001:db8::/64", "passkey:challenge:abc", ""} {
		count, blocked := redisKeys(key)
		if a, b := rediscluster.Slot(count), rediscluster.Slot(blocked); a != b {
			t.Errorf("%q: %s in slot %d, %s in slot %d", key, count, a, blocked, b)
		}
	}
}
