package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
)

const alicePW = "correct horse battery"

// sessionRow is one row of a sessions list as the page shows it.
type sessionRow struct {
	device  string
	current bool
	action  string // the revoke form's action
}

// sessionRows reads the sessions list of a page.
func sessionRows(t *testing.T, res response) []sessionRow {
	t.Helper()
	var rows []sessionRow
	res.doc(t).Find("li.session").Each(func(_ int, li *goquery.Selection) {
		action, _ := li.Find("form").Attr("action")
		device := strings.TrimSpace(li.Find(".session-device").Contents().First().Text())
		rows = append(rows, sessionRow{device: device, current: li.HasClass("session-current"), action: action})
	})
	return rows
}

// rowFor returns the row of the device labelled label.
func rowFor(t *testing.T, rows []sessionRow, label string) sessionRow {
	t.Helper()
	for _, r := range rows {
		if r.device == label {
			return r
		}
	}
	t.Fatalf("no session of %q in %+v", label, rows)
	return sessionRow{}
}

// assertEndedWith checks that the browser's next page view lands on the
// login page, which explains the given reason.
func assertEndedWith(t *testing.T, b *browser, reason session.EndReason) {
	t.Helper()
	res := assertSignedOut(t, b)
	loc := res.Header.Get("Location")
	if !strings.Contains(loc, "reason="+string(reason)) {
		t.Fatalf("redirect %q does not carry reason %q", loc, reason)
	}
	login := b.get(loc)
	if notice := login.text(t, ".notice"); notice != endNotices[string(reason)] || notice == "" {
		t.Errorf("login notice %q, want %q", notice, endNotices[string(reason)])
	}
}

func TestUserSeesDevicesAndSignsOneOut(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", alicePW, user.RoleUser)
			laptop, mac, phone := ts.newDevice(firefoxLinux), ts.newDevice(chromeMac), ts.newDevice(safariPhone)
			for _, d := range []*browser{laptop, mac, phone} {
				d.login("alice", alicePW)
			}

			rows := sessionRows(t, laptop.get("/account/sessions"))
			if len(rows) != 3 {
				t.Fatalf("sessions page lists %d sessions, want 3: %+v", len(rows), rows)
			}
			if !rowFor(t, rows, "Firefox on Linux").current || rowFor(t, rows, "Chrome on macOS").current {
				t.Errorf("'this device' marks the wrong session: %+v", rows)
			}
			rowFor(t, rows, "Safari on iPhone")

			res := laptop.postForm(rowFor(t, rows, "Chrome on macOS").action, nil)
			assertRedirect(t, res, "/account/sessions?done=revoked")
			assertEndedWith(t, mac, session.EndedFromOtherDevice)
			assertSignedIn(t, laptop, "alice")
			assertSignedIn(t, phone, "alice")
			if n := len(sessionRows(t, laptop.get("/account/sessions"))); n != 2 {
				t.Errorf("after the sign-out %d sessions are listed, want 2", n)
			}

			res = laptop.postForm("/account/sessions/revoke-others", nil)
			assertRedirect(t, res, "/account/sessions?done=revoked-others")
			assertEndedWith(t, phone, session.EndedFromOtherDevice)
			rows = sessionRows(t, laptop.get("/account/sessions"))
			if len(rows) != 1 || !rows[0].current {
				t.Errorf("after 'sign out all other devices': %+v, want only this device", rows)
			}
		})
	}
}

func TestPublicSessionIDsRevealNoToken(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis"})
	ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", alicePW)
	token := b.sessionCookie()
	page := b.get("/account/sessions")
	for _, secret := range []string{token, hashToken(token)} {
		if strings.Contains(page.body, secret) {
			t.Errorf("sessions page contains a token or store key %q", secret)
		}
	}
	id := strings.TrimSuffix(strings.TrimPrefix(sessionRows(t, page)[0].action, "/account/sessions/"), "/revoke")
	if id == "" || strings.Contains(token, id) || strings.Contains(hashToken(token), id) {
		t.Errorf("public ID %q derives visibly from the token", id)
	}
}

func TestUserCannotRevokeAnotherUsersSession(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", alicePW, user.RoleUser)
			ts.createUser("bob", alicePW, user.RoleUser)
			alice, bob := ts.newBrowser(), ts.newBrowser()
			alice.login("alice", alicePW)
			bob.login("bob", alicePW)
			action := sessionRows(t, alice.get("/account/sessions"))[0].action

			res := bob.postForm(action, nil)
			assertRedirect(t, res, "/account/sessions?done=already-revoked")
			assertSignedIn(t, alice, "alice")
			assertSignedIn(t, bob, "bob")
		})
	}
}

func TestPasswordChangeEndsOtherSessionsAndRotatesToken(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", alicePW, user.RoleUser)
			here, there := ts.newDevice(firefoxLinux), ts.newDevice(chromeMac)
			here.login("alice", alicePW)
			there.login("alice", alicePW)
			before := here.sessionCookie()

			res := here.postForm("/account/password", url.Values{"current_password": {"not my password"}, "new_password": {"a brand new passphrase"}, "confirm_password": {"a brand new passphrase"}})
			if res.StatusCode != http.StatusUnprocessableEntity || res.doc(t).Find("#current_password ~ .field-error").Length() == 0 {
				t.Fatalf("wrong current password: %d, want 422 with a field error", res.StatusCode)
			}
			assertSignedIn(t, there, "alice")

			res = here.postForm("/account/password", url.Values{"current_password": {alicePW}, "new_password": {"a brand new passphrase"}, "confirm_password": {"a brand new passphrase"}})
			assertRedirect(t, res, "/account/password?done=password")
			if after := here.sessionCookie(); after == "" || after == before {
				t.Errorf("the password change did not rotate this device's token")
			}
			assertSignedIn(t, here, "alice")
			assertEndedWith(t, there, session.EndedPasswordChanged)

			replay := ts.newBrowser()
			replay.setSessionCookie(before)
			assertSignedOut(t, replay)
			if res := ts.newBrowser().postForm("/login", url.Values{"username": {"alice"}, "password": {alicePW}}); res.StatusCode != http.StatusUnauthorized {
				t.Errorf("old password still works: %d", res.StatusCode)
			}
			ts.newBrowser().login("alice", "a brand new passphrase")
		})
	}
}

func TestAdminPagesAreForAdminsOnly(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	alice := ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", alicePW)
	id := strconv.FormatInt(alice.ID, 10)
	for _, path := range []string{"/admin", "/admin/users", "/admin/users/" + id, "/admin/audit"} {
		res := b.get(path)
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s as a user: %d, want 403", path, res.StatusCode)
		}
		if res.doc(t).Find(`header form[action="/logout"]`).Length() != 1 {
			t.Errorf("the 403 page of %s does not show that alice is signed in", path)
		}
	}
	for _, path := range []string{"/admin/users/" + id + "/revoke-all", "/admin/users/" + id + "/disable", "/admin/sessions/" + id + ".AAAAAAAAAAAAAAAA/revoke"} {
		if res := b.postForm(path, nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s as a user: %d, want 403", path, res.StatusCode)
		}
	}
	assertSignedIn(t, b, "alice")
	if res := ts.newBrowser().get("/admin"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /admin signed out: %d, want 303 to login", res.StatusCode)
	}
}

func TestAdminSignsUserOutEverywhere(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("root", alicePW, user.RoleAdmin)
			alice := ts.createUser("alice", alicePW, user.RoleUser)
			ts.createUser("bob", alicePW, user.RoleUser)
			admin := ts.newBrowser()
			admin.login("root", alicePW)
			devices := []*browser{ts.newDevice(firefoxLinux), ts.newDevice(chromeMac)}
			for _, d := range devices {
				d.login("alice", alicePW)
			}
			bob := ts.newBrowser()
			bob.login("bob", alicePW)

			users := admin.get("/admin/users?q=ali")
			if got := strings.TrimSpace(users.doc(t).Find(`tr[data-user="alice"] .session-count`).Text()); got != "2" {
				t.Errorf("users page shows %q active sessions for alice, want 2", got)
			}
			if users.doc(t).Find(`tr[data-user="bob"]`).Length() != 0 {
				t.Error("search for 'ali' lists bob")
			}
			page := admin.get("/admin/users/" + strconv.FormatInt(alice.ID, 10))
			if n := len(sessionRows(t, page)); n != 2 {
				t.Fatalf("admin sees %d sessions of alice, want 2", n)
			}
			res := admin.postForm("/admin/users/"+strconv.FormatInt(alice.ID, 10)+"/revoke-all", nil)
			assertRedirect(t, res, "/admin/users/")
			for _, d := range devices {
				assertEndedWith(t, d, session.EndedByAdmin)
			}
			assertSignedIn(t, bob, "bob")
			assertSignedIn(t, admin, "root")

			events, err := ts.audit.List(t.Context(), audit.ListOptions{UserID: alice.ID})
			if err != nil {
				t.Fatal(err)
			}
			if len(events) == 0 || events[0].Action != audit.SessionsRevokedAll || events[0].ActorName != "root" {
				t.Errorf("newest audit event of alice: %+v, want sessions.revoked_all by root", events)
			}
		})
	}
}

func TestAdminSignsOneSessionOut(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis"})
	ts.createUser("root", alicePW, user.RoleAdmin)
	alice := ts.createUser("alice", alicePW, user.RoleUser)
	admin, laptop, phone := ts.newBrowser(), ts.newDevice(firefoxLinux), ts.newDevice(safariPhone)
	admin.login("root", alicePW)
	laptop.login("alice", alicePW)
	phone.login("alice", alicePW)
	rows := sessionRows(t, admin.get("/admin/users/"+strconv.FormatInt(alice.ID, 10)))
	res := admin.postForm(rowFor(t, rows, "Safari on iPhone").action, nil)
	assertRedirect(t, res, "/admin/users/"+strconv.FormatInt(alice.ID, 10)+"?done=revoked")
	assertEndedWith(t, phone, session.EndedByAdmin)
	assertSignedIn(t, laptop, "alice")
	// The same ID again: already gone.
	res = admin.postForm(rowFor(t, rows, "Safari on iPhone").action, nil)
	assertRedirect(t, res, "/admin/users/"+strconv.FormatInt(alice.ID, 10)+"?done=gone")
	if res := admin.postForm("/admin/sessions/not-an-id/revoke", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("malformed session ID: %d, want 404", res.StatusCode)
	}
}

func TestDisablingUserEndsSessionsAndSignIn(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			root := ts.createUser("root", alicePW, user.RoleAdmin)
			alice := ts.createUser("alice", alicePW, user.RoleUser)
			admin, b := ts.newBrowser(), ts.newBrowser()
			admin.login("root", alicePW)
			b.login("alice", alicePW)
			id := strconv.FormatInt(alice.ID, 10)
			assertRedirect(t, admin.postForm("/admin/users/"+id+"/disable", nil), "/admin/users/"+id+"?done=disabled")
			assertEndedWith(t, b, session.EndedDisabled)
			// A disabled account answers the right password exactly as a
			// wrong one, so a guesser cannot tell they found it.
			right := b.postForm("/login", url.Values{"username": {"alice"}, "password": {alicePW}})
			wrong := b.postForm("/login", url.Values{"username": {"alice"}, "password": {"not the password"}})
			if right.StatusCode != http.StatusUnauthorized || right.StatusCode != wrong.StatusCode || right.text(t, "#login-error") != wrong.text(t, "#login-error") {
				t.Errorf("disabled user signing in: %d %q with the right password, %d %q with a wrong one; want the same 401",
					right.StatusCode, right.text(t, "#login-error"), wrong.StatusCode, wrong.text(t, "#login-error"))
			}
			assertRedirect(t, admin.postForm("/admin/users/"+id+"/enable", nil), "/admin/users/"+id+"?done=enabled")
			b.login("alice", alicePW)
			if res := admin.postForm("/admin/users/"+strconv.FormatInt(root.ID, 10)+"/disable", nil); res.StatusCode != http.StatusConflict {
				t.Errorf("admin disabling themselves: %d, want 409", res.StatusCode)
			}
		})
	}
}

func TestDurableRevocationOutlivesALostStoreWrite(t *testing.T) {
	// The database says sessions from before now are void; the store still
	// has the session (as if a failover lost the revocation). The next
	// refresh ends it.
	ts := newTestServer(t, testOptions{backend: "memory"})
	alice := ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", alicePW)
	ts.clock.Advance(time.Second)
	if err := ts.users.SetSessionsValidAfter(t.Context(), alice.ID, ts.clock.Now()); err != nil {
		t.Fatal(err)
	}
	ts.clock.Advance(2 * time.Minute) // past the refresh interval
	assertEndedWith(t, b, session.EndedRevoked)
}

func TestSessionLimitEvictsLeastRecentlyActive(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend, limit: session.Limit{Max: 2, Policy: session.EvictOldest}})
			ts.createUser("alice", alicePW, user.RoleUser)
			first, second, third := ts.newDevice(firefoxLinux), ts.newDevice(chromeMac), ts.newDevice(safariPhone)
			first.login("alice", alicePW)
			ts.clock.Advance(2 * time.Minute)
			second.login("alice", alicePW)
			ts.clock.Advance(2 * time.Minute)
			third.login("alice", alicePW)

			assertEndedWith(t, first, session.EndedTooMany)
			assertSignedIn(t, second, "alice")
			assertSignedIn(t, third, "alice")
			if n := len(sessionRows(t, third.get("/account/sessions"))); n != 2 {
				t.Errorf("%d sessions listed, want 2", n)
			}
		})
	}
}

func TestSessionLimitRejectLetsUserEndOneToContinue(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend, limit: session.Limit{Max: 1, Policy: session.Reject}})
			ts.createUser("alice", alicePW, user.RoleUser)
			old, fresh := ts.newDevice(firefoxLinux), ts.newDevice(chromeMac)
			old.login("alice", alicePW)

			res := fresh.postForm("/login", url.Values{"username": {"alice"}, "password": {alicePW}, "next": {"/account/sessions"}})
			if res.StatusCode != http.StatusConflict {
				t.Fatalf("login at the limit: %d, want 409 with the sessions to choose from", res.StatusCode)
			}
			if fresh.sessionCookie() != "" {
				t.Fatal("a rejected login got a session cookie")
			}
			if res.doc(t).Find(`header form[action="/logout"]`).Length() != 0 {
				t.Error("the session-limit page shows a signed-in header to someone who is not signed in")
			}
			choice := res.doc(t).Find(`input[name=end_session]`)
			if choice.Length() != 1 {
				t.Fatalf("the page offers %d sessions to end, want 1", choice.Length())
			}
			if strings.Contains(res.body, alicePW) {
				t.Fatal("the page repeats the password")
			}
			id, _ := choice.Attr("value")

			// Without the password, nothing happens.
			res = fresh.postForm("/login", url.Values{"username": {"alice"}, "password": {"wrong password"}, "end_session": {id}})
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("choice with a wrong password: %d, want 401", res.StatusCode)
			}
			assertSignedIn(t, old, "alice")

			res = fresh.postForm("/login", url.Values{"username": {"alice"}, "password": {alicePW}, "end_session": {id}, "next": {"/account/sessions"}})
			assertRedirect(t, res, "/account/sessions")
			assertSignedIn(t, fresh, "alice")
			assertEndedWith(t, old, session.EndedFromOtherDevice)
		})
	}
}

func TestConcurrentLoginsRespectTheLimit(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			// Twenty sign-ins in flight at once for one account and from
			// one address are twenty reserved attempts: the throttle must
			// let them all through to test the session limit.
			roomy := throttle.Policy{Limit: 20, Window: time.Minute, BaseDelay: time.Second, MaxDelay: time.Minute}
			ts := newTestServer(t, testOptions{backend: backend, limit: session.Limit{Max: 3, Policy: session.EvictOldest}, maxHashes: 20, loginPolicy: &roomy})
			alice := ts.createUser("alice", alicePW, user.RoleUser)
			var wg sync.WaitGroup
			statuses := make([]int, 20)
			for i := range statuses {
				wg.Add(1)
				go func() {
					defer wg.Done()
					b := ts.newBrowser()
					req, _ := http.NewRequest(http.MethodPost, ts.URL+"/login", strings.NewReader(url.Values{"username": {"alice"}, "password": {alicePW}}.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					res, err := b.client.Do(req)
					if err != nil {
						return
					}
					res.Body.Close()
					statuses[i] = res.StatusCode
				}()
			}
			wg.Wait()
			for i, s := range statuses {
				if s != http.StatusSeeOther {
					t.Errorf("login %d: %d, want 303", i, s)
				}
			}
			recs, err := ts.sessions.ListUser(t.Context(), alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 3 {
				t.Errorf("20 simultaneous logins left %d sessions, want exactly 3", len(recs))
			}
		})
	}
}

func TestAdminOverviewAndAuditLog(t *testing.T) {
	lenient := throttle.Policy{Limit: 1000, Window: time.Minute, BaseDelay: time.Second, MaxDelay: time.Second}
	ts := newTestServer(t, testOptions{backend: "redis", loginPolicy: &lenient})
	ts.createUser("root", alicePW, user.RoleAdmin)
	ts.createUser("alice", alicePW, user.RoleUser)
	admin := ts.newBrowser()
	admin.login("root", alicePW)
	for range 3 {
		ts.newDevice(chromeMac).login("alice", alicePW)
	}
	home := admin.get("/admin")
	if home.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin: %d", home.StatusCode)
	}
	if got := home.text(t, "#session-count"); got != "4" {
		t.Errorf("active sessions shown %q, want 4", got)
	}
	if got := home.text(t, "#user-count"); got != "2" {
		t.Errorf("users shown %q, want 2", got)
	}
	// 55 failed sign-ins make more than one page of audit events.
	guesser := ts.newBrowser()
	for i := range 55 {
		guesser.postForm("/login", url.Values{"username": {"alice"}, "password": {"wrong " + strconv.Itoa(i)}})
	}
	page1 := admin.get("/admin/audit")
	rows := page1.doc(t).Find("table.audit tbody tr").Length()
	if rows != adminAuditPerPage {
		t.Errorf("audit page 1 shows %d rows, want %d", rows, adminAuditPerPage)
	}
	next, ok := page1.doc(t).Find(`a[rel=next]`).Attr("href")
	if !ok {
		t.Fatal("audit page 1 has no link to older events")
	}
	page2 := admin.get(next)
	if n := page2.doc(t).Find("table.audit tbody tr").Length(); n == 0 {
		t.Error("audit page 2 is empty")
	}
	if !strings.Contains(page1.body, "login.failed") {
		t.Error("the audit log does not show failed sign-ins")
	}
}
