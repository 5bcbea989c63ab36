package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/live"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/user"
)

// sseEvent is one event read from GET /events.
type sseEvent struct {
	name, data string
	at         time.Time
}

// eventStream is an open tab's event stream, read in the background.
type eventStream struct {
	t      testing.TB
	status int
	events chan sseEvent
	// leave closes the connection, as a tab leaving the page does.
	leave func()
}

// openEvents opens GET /events as b's tab would.
func (b *browser) openEvents() *eventStream {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.ts.URL+"/events", nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	client := *b.client
	client.Timeout = 0 // a stream lives on
	res, err := client.Do(req)
	if err != nil {
		cancel()
		b.t.Fatalf("GET /events: %v", err)
	}
	es := &eventStream{t: b.t, status: res.StatusCode, events: make(chan sseEvent, 64), leave: func() { cancel(); res.Body.Close() }}
	b.t.Cleanup(func() { cancel(); res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		close(es.events)
		return es
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		b.t.Fatalf("GET /events Content-Type = %q", ct)
	}
	go func() {
		defer close(es.events)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					ev.at = time.Now()
					es.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return es
}

// next waits for the next event called name, skipping others, for at most
// within.
func (es *eventStream) next(name string, within time.Duration) sseEvent {
	es.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-es.events:
			if !ok {
				es.t.Fatalf("the stream ended before a %q event", name)
			}
			if ev.name == name {
				return ev
			}
		case <-deadline:
			es.t.Fatalf("no %q event within %v", name, within)
		}
	}
}

// ends waits for the stream to end, failing t on any event but those
// allowed.
func (es *eventStream) ends(within time.Duration, allowed ...string) {
	es.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-es.events:
			if !ok {
				return
			}
			if !contains(allowed, ev.name) {
				es.t.Fatalf("unexpected %q event (%s) before the stream ended", ev.name, ev.data)
			}
		case <-deadline:
			es.t.Fatalf("the stream did not end within %v", within)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// deadlinesOf reads a "session" event.
func deadlinesOf(t testing.TB, ev sseEvent) live.Deadlines {
	t.Helper()
	var d live.Deadlines
	if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
		t.Fatalf("session event %q: %v", ev.data, err)
	}
	return d
}

// twoReplicas returns the server a user acts on and the one whose tabs
// watch: two replicas sharing Redis, or one server for the memory backend.
func twoReplicas(t *testing.T, backend string, opts testOptions) (acting, watching *testServer) {
	opts.backend, opts.replicaID = backend, "replica-1"
	acting = newTestServer(t, opts)
	if backend != "redis" {
		return acting, acting
	}
	opts.replicaOf, opts.replicaID = acting, "replica-2"
	return acting, newTestServer(t, opts)
}

func TestEventStreamNeedsASession(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	if es := b.openEvents(); es.status != http.StatusUnauthorized {
		t.Fatalf("GET /events without a session = %d, want 401", es.status)
	}
	b.login("alice", alicePW)
	es := b.openEvents()
	if es.status != http.StatusOK {
		t.Fatalf("GET /events signed in = %d, want 200", es.status)
	}
	d := deadlinesOf(t, es.next("session", time.Second))
	now := ts.clock.Now()
	if got := time.UnixMilli(d.Idle).Sub(now); got != 30*time.Minute {
		t.Errorf("the first event's idle end is %v from now, want 30m", got)
	}
	if d.WarnBefore != (2*time.Minute).Milliseconds() || d.Now != now.UnixMilli() {
		t.Errorf("session event = %+v, want a 2-minute warning and the server's now", d)
	}
	b.postForm("/logout", nil)
	if es := b.openEvents(); es.status != http.StatusUnauthorized {
		t.Fatalf("GET /events after signing out = %d, want 401", es.status)
	}
}

// The heart of it: a session ended anywhere, for any reason, reaches every
// open tab of it within a second, with the reason the sign-in page gives,
// and the stream ends.
func TestASessionEndedAnywhereReachesItsOpenTabsAtOnce(t *testing.T) {
	endings := []struct {
		reason string
		end    func(t *testing.T, acting *testServer, victim *browser)
	}{
		{"other-device", func(t *testing.T, acting *testServer, _ *browser) {
			laptop := acting.newDevice(firefoxLinux)
			laptop.login("alice", alicePW)
			target := rowFor(t, sessionRows(t, laptop.get("/account/sessions")), "Safari on iPhone")
			assertRedirect(t, laptop.postForm(target.action, nil), "/account/sessions?done=revoked")
		}},
		{"admin", func(t *testing.T, acting *testServer, _ *browser) {
			admin := acting.newBrowser()
			admin.login("root", alicePW)
			assertRedirect(t, admin.postForm(fmt.Sprintf("/admin/users/%d/revoke-all", 2), nil), "/admin/users/2")
		}},
		{"password-changed", func(t *testing.T, acting *testServer, _ *browser) {
			laptop := acting.newDevice(firefoxLinux)
			laptop.login("alice", alicePW)
			res := laptop.postForm("/account/password", url.Values{"current_password": {alicePW},
				"new_password": {"a brand new passphrase"}, "confirm_password": {"a brand new passphrase"}})
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("password change: %d", res.StatusCode)
			}
		}},
		{"disabled", func(t *testing.T, acting *testServer, _ *browser) {
			admin := acting.newBrowser()
			admin.login("root", alicePW)
			if res := admin.postForm("/admin/users/2/disable", nil); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("disable: %d", res.StatusCode)
			}
		}},
		{"signed-out", func(t *testing.T, acting *testServer, victim *browser) {
			victim.on(acting).postForm("/logout", nil)
		}},
	}
	for _, backend := range backends {
		for _, ending := range endings {
			t.Run(backend+"/"+ending.reason, func(t *testing.T) {
				acting, watching := twoReplicas(t, backend, testOptions{})
				acting.createUser("root", alicePW, user.RoleAdmin)
				alice := acting.createUser("alice", alicePW, user.RoleUser)
				if alice.ID != 2 {
					t.Fatalf("alice is user %d, the cases assume 2", alice.ID)
				}
				phone := watching.newDevice(safariPhone)
				phone.login("alice", alicePW)
				tabs := []*eventStream{phone.openEvents(), phone.openEvents()}
				for _, tab := range tabs {
					tab.next("session", time.Second)
				}
				ending.end(t, acting, phone)
				ended := time.Now()
				for i, tab := range tabs {
					ev := tab.next("signed-out", time.Second)
					if ev.data != ending.reason {
						t.Errorf("tab %d was told %q, want %q", i, ev.data, ending.reason)
					}
					t.Logf("tab %d told %v after the ending action answered", i, ev.at.Sub(ended).Round(time.Millisecond))
					tab.ends(time.Second)
				}
				assertSignedOut(t, phone)
			})
		}
	}
}

// A new sign-in to the account reaches the account's other open tabs
// ("Was this you?"), with what the banner shows and the public ID its
// button signs out; nobody else's tabs, nor the new session's own.
func TestANewSignInIsAnnouncedToTheAccountsOtherTabs(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			acting, watching := twoReplicas(t, backend, testOptions{})
			acting.createUser("alice", alicePW, user.RoleUser)
			acting.createUser("bob", alicePW, user.RoleUser)
			laptop := watching.newDevice(firefoxLinux)
			laptop.login("alice", alicePW)
			bob := watching.newDevice(chromeMac)
			bob.login("bob", alicePW)
			laptopTab, bobTab := laptop.openEvents(), bob.openEvents()
			laptopTab.next("session", time.Second)
			bobTab.next("session", time.Second)

			phone := acting.newDevice(safariPhone)
			phone.login("alice", alicePW)
			phoneTab := phone.openEvents()
			var got struct {
				ID, Device, IP string
				At             int64
			}
			if err := json.Unmarshal([]byte(laptopTab.next("new-sign-in", time.Second).data), &got); err != nil {
				t.Fatal(err)
			}
			if got.Device != "Safari on iPhone" || got.IP != "127.0.0.1" || got.At != acting.clock.Now().UnixMilli() {
				t.Errorf("new-sign-in = %+v, want Safari on iPhone from 127.0.0.1 now", got)
			}
			// The banner's button is the devices page's own form for it.
			phoneRow := rowFor(t, sessionRows(t, laptop.get("/account/sessions")), "Safari on iPhone")
			if want := "/account/sessions/" + got.ID + "/revoke"; phoneRow.action != want {
				t.Errorf("the announced session is %s, the devices page signs it out at %s", want, phoneRow.action)
			}
			assertRedirect(t, laptop.postForm("/account/sessions/"+got.ID+"/revoke", nil), "/account/sessions?done=revoked")
			if ev := phoneTab.next("signed-out", time.Second); ev.data != "other-device" {
				t.Errorf("the signed-out phone's tab was told %q, want other-device", ev.data)
			}
			assertSignedOut(t, phone)
			select {
			case ev := <-bobTab.events:
				if ev.name == "new-sign-in" {
					t.Errorf("bob's tab was told of alice's sign-in: %s", ev.data)
				}
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}

// An open stream is not activity: opening it when a refresh is due does
// not refresh the session, and the session still ends at its idle end —
// which the stream reports.
func TestAnOpenStreamDoesNotKeepTheSessionAlive(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory", idle: 30 * time.Minute})
	ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", alicePW)
	signedIn := ts.clock.Now()
	ts.clock.Advance(29 * time.Minute) // a page view now would refresh the session
	tab := b.openEvents()
	if d := deadlinesOf(t, tab.next("session", time.Second)); d.Idle != signedIn.Add(30*time.Minute).UnixMilli() {
		t.Fatalf("opening the stream moved the idle end to %v", time.UnixMilli(d.Idle))
	}
	ts.clock.Advance(time.Minute + time.Second)
	if ev := tab.next("signed-out", 2*time.Second); ev.data != "idle" {
		t.Fatalf("the tab was told %q, want idle", ev.data)
	}
	assertSignedOut(t, b)
}

// "Stay signed in" refreshes the session, and every open tab of it (on
// any replica) hears the new idle end, which cancels its warning.
func TestStaySignedInMovesTheIdleEndForEveryTab(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			acting, watching := twoReplicas(t, backend, testOptions{idle: 30 * time.Minute})
			acting.createUser("alice", alicePW, user.RoleUser)
			b := acting.newBrowser()
			b.login("alice", alicePW)
			here, there := b.openEvents(), b.on(watching).openEvents()
			here.next("session", time.Second)
			there.next("session", time.Second)
			acting.clock.Advance(28*time.Minute + 30*time.Second) // inside the 2-minute warning
			res := b.postForm("/account/keepalive", url.Values{"js": {"1"}})
			if res.StatusCode != http.StatusNoContent {
				t.Fatalf("POST /account/keepalive = %d, want 204", res.StatusCode)
			}
			want := acting.clock.Now().Add(30 * time.Minute).UnixMilli()
			// A look-up that ran just before the keepalive may repeat the
			// old deadlines first: what matters is that the new one arrives.
			for name, tab := range map[string]*eventStream{"this replica": here, "the other replica": there} {
				heard := time.Time{}
				for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
					d := deadlinesOf(t, tab.next("session", time.Until(end)))
					if heard = time.UnixMilli(d.Idle); d.Idle == want {
						break
					}
				}
				if heard.UnixMilli() != want {
					t.Errorf("the tab on %s heard an idle end of %v, want %v", name, heard, time.UnixMilli(want))
				}
			}
			// Without the script, the form goes back to the page.
			assertRedirect(t, b.postForm("/account/keepalive", url.Values{"next": {"/account/sessions"}}), "/account/sessions")
		})
	}
}

func TestOneSessionMayOpenOnlySoManyStreams(t *testing.T) {
	// Redis: the hub is fed by the link and does not poll, so nothing but
	// the tab's own leaving can free its place early.
	ts := newTestServer(t, testOptions{backend: "redis"})
	ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", alicePW)
	var tabs []*eventStream
	for i := range live.MaxStreamsPerSession {
		es := b.openEvents()
		if es.status != http.StatusOK {
			t.Fatalf("stream %d: %d", i+1, es.status)
		}
		tabs = append(tabs, es)
	}
	if es := b.openEvents(); es.status != http.StatusTooManyRequests {
		t.Fatalf("stream %d: %d, want 429", live.MaxStreamsPerSession+1, es.status)
	}
	// A tab that leaves the page gives its place back at once (not at the
	// next heartbeat), so a user going from page to page is never refused.
	tabs[0].leave()
	testkit.Eventually(t, time.Second, "the first tab's place given back", func() error {
		if n := ts.live.Count(); n != live.MaxStreamsPerSession-1 {
			return fmt.Errorf("%d streams open", n)
		}
		return nil
	})
	for i := range 3 * live.MaxStreamsPerSession {
		es := b.openEvents()
		if es.status != http.StatusOK {
			t.Fatalf("page %d after leaving the last: stream %d", i, es.status)
		}
		es.next("session", time.Second)
		es.leave()
		testkit.Eventually(t, time.Second, "the stream's place given back", func() error {
			if n := ts.live.Count(); n != live.MaxStreamsPerSession-1 {
				return fmt.Errorf("%d streams open", n)
			}
			return nil
		})
	}
	other := ts.newBrowser()
	other.login("alice", alicePW)
	if es := other.openEvents(); es.status != http.StatusOK {
		t.Fatalf("another session's stream: %d, want 200 (the cap is per session)", es.status)
	}
}

// A draining replica ends its streams (the browsers reconnect elsewhere)
// and opens no new ones.
func TestShuttingDownEndsTheStreams(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", alicePW)
	tab := b.openEvents()
	tab.next("session", time.Second)
	ts.live.Shutdown()
	tab.ends(time.Second)
	if es := b.openEvents(); es.status != http.StatusServiceUnavailable {
		t.Fatalf("GET /events while draining = %d, want 503", es.status)
	}
	assertSignedIn(t, b, "alice")
}

// The replica holding the tab loses its Redis subscription while the
// session is revoked elsewhere: the invalidation is missed, but the link
// looks every open stream's session up again when it is back, and the tab
// is told.
func TestATabHearsOfARevocationItsReplicaMissedWhileItsLinkWasDown(t *testing.T) {
	acting, watching := twoReplicas(t, "redis", testOptions{})
	acting.createUser("alice", alicePW, user.RoleUser)
	phone := watching.newDevice(safariPhone)
	phone.login("alice", alicePW)
	tab := phone.openEvents()
	tab.next("session", time.Second)

	// Hold the watching replica's link down: kill its subscription again
	// each time it comes back, until the revocation is done.
	admin := watching.redisConn()
	stop := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for {
			admin.Do("CLIENT", "KILL", "TYPE", "pubsub")
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	laptop := acting.newDevice(firefoxLinux)
	laptop.login("alice", alicePW)
	target := rowFor(t, sessionRows(t, laptop.get("/account/sessions")), "Safari on iPhone")
	assertRedirect(t, laptop.postForm(target.action, nil), "/account/sessions?done=revoked")
	close(stop)
	<-killed

	if ev := tab.next("signed-out", 5*time.Second); ev.data != "other-device" {
		t.Fatalf("the tab was told %q, want other-device", ev.data)
	}
}
