package web

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/user"
)

// TestSessionListsAreServedWhileTheRedisPrimaryIsDead kills the Redis
// primary (SIGKILL; no Sentinel here to promote the replica) and opens the
// pages that list sessions: alice's devices page and the administrator's
// overview, user list and page of alice. Each is served from the replica
// with the sessions signed in before the crash, action buttons included;
// pressing one answers the "paused" 503 page.
func TestSessionListsAreServedWhileTheRedisPrimaryIsDead(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis", redisReplica: true})
	ts.createUser("root", alicePW, user.RoleAdmin)
	alice := ts.createUser("alice", alicePW, user.RoleUser)
	ts.createUser("bob", alicePW, user.RoleUser)
	admin, laptop, phone, bob := ts.newBrowser(), ts.newDevice(firefoxLinux), ts.newDevice(safariPhone), ts.newBrowser()
	admin.login("root", alicePW)
	laptop.login("alice", alicePW)
	phone.login("alice", alicePW)
	bob.login("bob", alicePW)
	alicePage := "/admin/users/" + strconv.FormatInt(alice.ID, 10)

	ts.redis.Kill(t)
	// Past the once-a-minute last-seen refresh, a write that fails now.
	ts.clock.Advance(2 * time.Minute)
	served := func(b *browser, path string) response {
		t.Helper()
		res := b.get(path)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s with the primary dead: %d, want 200; body:\n%.400s", path, res.StatusCode, res.body)
		}
		return res
	}
	pages := func() {
		t.Helper()
		devices := served(laptop, "/account/sessions")
		rows := sessionRows(t, devices)
		if len(rows) != 2 || !rowFor(t, rows, "Firefox on Linux").current || rowFor(t, rows, "Safari on iPhone").action == "" {
			t.Errorf("devices page lists %+v, want this laptop and the phone with its sign-out button", rows)
		}
		if devices.doc(t).Find(`form[action="/account/sessions/revoke-others"] button`).Length() != 1 {
			t.Error("the devices page has no 'Sign out all other devices' button")
		}

		overview := served(admin, "/admin")
		if got := overview.text(t, "#session-count"); got != "4" {
			t.Errorf("overview counts %q active sessions, want 4 (root, alice twice, bob)", got)
		}
		if n := overview.doc(t).Find(`td[data-label="User"] a`).Length(); n != 4 {
			t.Errorf("overview lists %d recently active sessions, want 4", n)
		}

		users := served(admin, "/admin/users")
		for name, want := range map[string]string{"root": "1", "alice": "2", "bob": "1"} {
			if got := strings.TrimSpace(users.doc(t).Find(`tr[data-user="` + name + `"] .session-count`).Text()); got != want {
				t.Errorf("user list shows %q active sessions for %s, want %s", got, name, want)
			}
		}

		detail := served(admin, alicePage)
		if rows := sessionRows(t, detail); len(rows) != 2 || rows[0].action == "" || rows[1].action == "" {
			t.Errorf("alice's admin page lists %+v, want her two sessions with their sign-out buttons", rows)
		}
		for _, action := range []string{alicePage + "/revoke-all", alicePage + "/disable"} {
			if detail.doc(t).Find(`form[action="`+action+`"] button`).Length() != 1 {
				t.Errorf("alice's admin page has no button posting to %s", action)
			}
		}
	}
	pages()

	paused := func(what string, res response) {
		t.Helper()
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s with the primary dead: %d, want 503", what, res.StatusCode)
		} else if msg := res.text(t, ".error-page h1 + p"); !strings.Contains(msg, "Signing in, signing out and ending sessions are paused") {
			t.Errorf("%s with the primary dead says %q, want that it is paused", what, msg)
		}
	}
	// Signing out one session lists the user's sessions (from the
	// replica) and then fails to end it: nothing is written anywhere.
	paused("signing out the phone from the devices page",
		laptop.postForm(rowFor(t, sessionRows(t, laptop.get("/account/sessions")), "Safari on iPhone").action, nil))
	paused("an administrator signing out one of alice's sessions",
		admin.postForm(rowFor(t, sessionRows(t, admin.get(alicePage)), "Safari on iPhone").action, nil))
	pages()
	assertSignedIn(t, phone, "alice")
	// Ending all of a user's sessions records the time in the database
	// before the session store refuses, so these are pressed last.
	paused("signing out all other devices", laptop.postForm("/account/sessions/revoke-others", nil))
	paused("an administrator signing alice out everywhere", admin.postForm(alicePage+"/revoke-all", nil))
}
