package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/user"
)

func TestLoginIsThrottledAfterRepeatedFailures(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", alicePW, user.RoleUser)
			b := ts.newBrowser()
			for i := range 5 {
				res := b.postForm("/login", url.Values{"username": {"alice"}, "password": {"guess " + strconv.Itoa(i)}})
				if res.StatusCode != http.StatusUnauthorized {
					t.Fatalf("failure %d: %d, want 401", i+1, res.StatusCode)
				}
			}
			// The sixth failure starts the backoff; from then on even the
			// right password waits, and case variants share the counter.
			b.postForm("/login", url.Values{"username": {"alice"}, "password": {"guess 6"}})
			res := b.postForm("/login", url.Values{"username": {"ALICE"}, "password": {alicePW}})
			if res.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("attempt during the backoff: %d, want 429", res.StatusCode)
			}
			wait, err := strconv.Atoi(res.Header.Get("Retry-After"))
			if err != nil || wait < 1 || wait > 15*60 {
				t.Fatalf("Retry-After %q, want seconds within the backoff window", res.Header.Get("Retry-After"))
			}
			if got := res.text(t, "h1"); got != "Too many attempts" {
				t.Errorf("429 page heading %q", got)
			}
			if b.sessionCookie() != "" {
				t.Fatal("a throttled attempt got a session")
			}
			// The backoff ends by itself: no permanent lock.
			ts.clock.Advance(time.Duration(wait)*time.Second + time.Second)
			b.login("alice", alicePW)
			assertSignedIn(t, b, "alice")
		})
	}
}

func TestThrottledUnknownUserLooksLikeKnownUser(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", alicePW, user.RoleUser)
	statuses := map[string][]int{}
	for _, name := range []string{"alice", "mallory"} {
		b := ts.newBrowser()
		for i := range 7 {
			res := b.postForm("/login", url.Values{"username": {name}, "password": {"guess " + strconv.Itoa(i)}})
			statuses[name] = append(statuses[name], res.StatusCode)
		}
		ts.clock.Advance(time.Hour) // the address counter forgets before the next account
	}
	if fmt.Sprint(statuses["alice"]) != fmt.Sprint(statuses["mallory"]) {
		t.Errorf("statuses differ: known %v, unknown %v", statuses["alice"], statuses["mallory"])
	}
}

func TestSignupIsThrottledPerAddress(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory", signup: true})
	b := ts.newBrowser()
	var last int
	for i := range 12 {
		name := fmt.Sprintf("user%02d", i)
		res := b.postForm("/signup", url.Values{"username": {name}, "password": {alicePW}, "confirm_password": {alicePW}})
		last = res.StatusCode
		if i < 10 && last != http.StatusSeeOther {
			t.Fatalf("sign-up %d: %d, want 303", i+1, last)
		}
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("12th sign-up from one address: %d, want 429", last)
	}
}
