package web

import (
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/testsvc"
	"github.com/hallpass/hallpass/internal/user"
)

// The attacks of the issue "Sign-in defences that hold under concurrency
// and failure", run as an attacker runs them: over HTTP, against Redis.

// TestAnonymousSignInFailsClosedWhenRedisCannotWrite makes the Redis that
// holds the attempt counters and the sessions unable to write — full
// (maxmemory, noeviction), read-only (a replica whose primary is gone, as
// min-replicas-to-write leaves a primary too), stopped and hung — and signs in
// with the right and a wrong password. Both must get the same 503 within
// about 2 s, before any password is checked: a 401 for the wrong one would
// be an unthrottled password oracle, and the right one must not sign in on
// a store that cannot keep its session.
func TestAnonymousSignInFailsClosedWhenRedisCannotWrite(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis"})
	ts.createUser("alice", alicePW, user.RoleUser)
	conn := ts.redisConn()
	do := func(cmd string, args ...any) {
		t.Helper()
		if _, err := conn.Do(cmd, args...); err != nil {
			t.Fatalf("%s %v: %v", cmd, args, err)
		}
	}
	// A first sign-in loads the scripts while Redis can take them.
	ts.newBrowser().login("alice", alicePW)
	do("SAVE") // so a stopped Redis comes back with the counters

	outages := []struct {
		name         string
		begin, end   func()
		reconnecting bool
	}{
		{
			name:  "full",
			begin: func() { do("CONFIG", "SET", "maxmemory-policy", "noeviction"); do("CONFIG", "SET", "maxmemory", "1") },
			end:   func() { do("CONFIG", "SET", "maxmemory", "0") },
		},
		{
			name:  "read-only",
			begin: func() { do("REPLICAOF", "127.0.0.1", strconv.Itoa(testsvc.FreePort(t))) },
			end:   func() { do("REPLICAOF", "NO", "ONE") },
		},
		{
			name:         "stopped",
			begin:        func() { ts.redis.Stop(t) },
			end:          func() { ts.redis.Start(t) },
			reconnecting: true,
		},
		{
			name:  "hung",
			begin: func() { ts.redis.Pause(t) },
			end:   func() { ts.redis.Resume(t) },
		},
	}
	for _, outage := range outages {
		t.Run(outage.name, func(t *testing.T) {
			before := countAudit(t, ts, audit.LoginFailed, audit.LoginSucceeded)
			outage.begin()
			for _, pw := range []string{alicePW, "a wrong guess"} {
				b := ts.newBrowser()
				start := time.Now()
				res := b.postForm("/login", url.Values{"username": {"alice"}, "password": {pw}})
				if took := time.Since(start); took > 2500*time.Millisecond {
					t.Errorf("answer took %v, want about 2 s at most", took)
				}
				if res.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("POST /login with Redis %s: %d, want 503 for the right and the wrong password alike", outage.name, res.StatusCode)
				}
				if b.sessionCookie() != "" {
					t.Errorf("POST /login with Redis %s set a session cookie", outage.name)
				}
			}
			if after := countAudit(t, ts, audit.LoginFailed, audit.LoginSucceeded); after != before {
				t.Errorf("%d sign-in outcomes recorded with Redis %s: passwords were checked", after-before, outage.name)
			}
			outage.end()
			if outage.reconnecting {
				conn = ts.redisConn()
			}
			b := ts.newBrowser()
			b.login("alice", alicePW)
			assertSignedIn(t, b, "alice")
		})
	}
}

// TestParallelWrongPasswordsOverHTTPAreCheckedNoMoreThanThePolicyAllows is
// the measurement (200 parallel wrong passwords for one account:
// 84 checked where the policy allows about 6), against Redis counters.
// Sequentially the default policy checks 5 free failures and a 6th that
// starts the wait; at once, no more.
func TestParallelWrongPasswordsOverHTTPAreCheckedNoMoreThanThePolicyAllows(t *testing.T) {
	const guesses = 200
	ts := newTestServer(t, testOptions{backend: "redis"})
	ts.createUser("alice", alicePW, user.RoleUser)
	statuses := make(chan int, guesses)
	var wg sync.WaitGroup
	for i := range guesses {
		b := ts.newBrowser()
		wg.Go(func() {
			res := b.postForm("/login", url.Values{"username": {"alice"}, "password": {"guess " + strconv.Itoa(i)}})
			statuses <- res.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	const allowed = 6
	if counts[http.StatusUnauthorized] > allowed {
		t.Errorf("%d of %d parallel guesses were checked (401); the policy allows %d; statuses %v",
			counts[http.StatusUnauthorized], guesses, allowed, counts)
	}
	if counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests]+counts[http.StatusServiceUnavailable] != guesses {
		t.Errorf("statuses %v: want only 401, 429 and 503 (no free hashing slot)", counts)
	}
	if n := countAudit(t, ts, audit.LoginFailed); n > guesses {
		t.Errorf("%d failed sign-ins audited for %d guesses", n, guesses)
	}
	t.Logf("%d parallel wrong passwords: %v", guesses, counts)
}

// countAudit counts the audit records with any of the actions.
func countAudit(t *testing.T, ts *testServer, actions ...audit.Action) int {
	t.Helper()
	events, err := ts.audit.List(t.Context(), audit.ListOptions{Limit: 10000})
	if err != nil {
		t.Fatalf("audit list: %v", err)
	}
	n := 0
	for _, ev := range events {
		for _, a := range actions {
			if ev.Action == a {
				n++
			}
		}
	}
	return n
}
