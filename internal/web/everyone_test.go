package web

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// on is the same browser, with the same cookies, talking to another
// replica, as a load balancer without stickiness sends it: cookie jars key
// cookies by host, not port, and every test server is on 127.0.0.1.
func (b *browser) on(ts *testServer) *browser {
	other := *b
	other.ts = ts
	return &other
}

// TestAdminSignsOutEveryoneOnEveryReplicaAtOnce: the administrator presses
// "Sign out everyone" on one replica; every other session, theirs on
// another device included, is signed out at once on every replica (no
// clock moves, so no periodic check is involved), and each browser's next
// page says why. The administrator goes on, past the next check, on both.
func TestAdminSignsOutEveryoneOnEveryReplicaAtOnce(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			first := newTestServer(t, testOptions{backend: backend, replicaID: "replica-1"})
			replicas := []*testServer{first}
			if backend == "redis" {
				replicas = append(replicas, newTestServer(t, testOptions{backend: backend, replicaOf: first, replicaID: "replica-2"}))
			}
			last := replicas[len(replicas)-1]
			first.createUser("root", alicePW, user.RoleAdmin)
			first.createUser("alice", alicePW, user.RoleUser)
			first.createUser("bob", alicePW, user.RoleUser)

			admin := first.newBrowser()
			admin.login("root", alicePW)
			// Signed in on either replica: each is checked on the last one,
			// which the administrator did not use.
			others := map[string]*browser{
				"root's phone":   last.newDevice(safariPhone),
				"alice's laptop": first.newDevice(firefoxLinux),
				"alice's phone":  last.newDevice(safariPhone),
				"bob's computer": first.newDevice(chromeMac),
			}
			names := map[string]string{"root's phone": "root", "alice's laptop": "alice", "alice's phone": "alice", "bob's computer": "bob"}
			for who, b := range others {
				b.login(names[who], alicePW)
			}

			home := admin.get("/admin")
			form := home.doc(t).Find(`#sign-out-everyone form[method=post][action="/admin/sign-out-everyone"]`)
			if form.Find(`input[type=checkbox][name=confirm][value=yes][required]`).Length() != 1 || form.Find(`button[type=submit]`).Length() != 1 {
				t.Fatal("the administration page has no confirmed Sign out everyone form")
			}

			// The button alone, without the box ticked: nothing happens.
			res := admin.postForm("/admin/sign-out-everyone", nil)
			if res.StatusCode != http.StatusBadRequest || res.text(t, "h1") != "Nobody was signed out" {
				t.Fatalf("unconfirmed: %d %q, want 400 Nobody was signed out", res.StatusCode, res.text(t, "h1"))
			}
			for who, b := range others {
				if res := b.on(last).get("/"); res.StatusCode != http.StatusOK {
					t.Fatalf("%s after an unconfirmed request: %d, want still signed in", who, res.StatusCode)
				}
			}

			res = admin.postForm("/admin/sign-out-everyone", url.Values{"confirm": {"yes"}})
			assertRedirect(t, res, "/admin?done=everyone&n=4")
			if notice := admin.get(res.Header.Get("Location")).text(t, ".notice"); notice != "Signed out 4 sessions." {
				t.Errorf("notice %q, want %q", notice, "Signed out 4 sessions.")
			}
			for who, b := range others {
				t.Run(who, func(t *testing.T) { assertEndedWith(t, b.on(last), session.EndedEveryone) })
			}
			for _, r := range replicas {
				assertSignedIn(t, admin.on(r), "root")
			}
			first.clock.Advance(time.Minute + time.Second) // past the next check of the durable record
			for _, r := range replicas {
				assertSignedIn(t, admin.on(r), "root")
			}

			events, err := first.audit.List(t.Context(), audit.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, ev := range events {
				if ev.Action == audit.SessionsRevokedEveryone {
					found = true
					if ev.ActorName != "root" || ev.Detail != "4 session(s) of every user signed out" || ev.Replica != "replica-1" {
						t.Errorf("audit record %+v, want root's on replica-1 with the count", ev)
					}
				}
			}
			if !found {
				t.Error("no sessions.revoked_everyone record in the audit log")
			}

			// Signing in again works at once, on any replica.
			others["alice's phone"].on(last).login("alice", alicePW)
			assertSignedIn(t, others["alice's phone"].on(first), "alice")
		})
	}
}

func TestOnlyAdministratorsSignOutEveryone(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", alicePW, user.RoleUser)
	ts.createUser("bob", alicePW, user.RoleUser)
	alice, bob := ts.newBrowser(), ts.newBrowser()
	alice.login("alice", alicePW)
	bob.login("bob", alicePW)
	if res := alice.postForm("/admin/sign-out-everyone", url.Values{"confirm": {"yes"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("a user signs out everyone: %d, want 403", res.StatusCode)
	}
	assertRedirect(t, ts.newBrowser().postForm("/admin/sign-out-everyone", url.Values{"confirm": {"yes"}}), "/login")
	assertSignedIn(t, alice, "alice")
	assertSignedIn(t, bob, "bob")
}
