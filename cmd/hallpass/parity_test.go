package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/testsvc"
	"github.com/hallpass/hallpass/internal/user"
)

// TestCommandLineAndAdminPagesHaveTheSameEffect runs each admin action once
// from the admin pages (on ann) and once from the command line (on ben)
// against one running replica, and checks both leave the same audit record
// and the same effect on sessions, at once.
func TestCommandLineAndAdminPagesHaveTheSameEffect(t *testing.T) {
	rs := testsvc.StartRedis(t)
	dbPath := filepath.Join(t.TempDir(), "h.db")
	env := map[string]string{
		"HALLPASS_DATABASE_URL": "sqlite:" + dbPath,
		"HALLPASS_REDIS_URL":    rs.URL,
		"HALLPASS_REPLICA_ID":   "r1",
	}
	const pw = "correct horse battery"
	for _, args := range [][]string{{"user", "add", "root", "--admin"}, {"user", "add", "ann"}, {"user", "add", "ben"}} {
		if out, err := runCLI(t, env, pw+"\n", args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	db, err := database.Open(context.Background(), "sqlite:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	users, events := user.NewSQLStore(db, nil), audit.NewSQLStore(db, nil)
	ann, err := users.ByUsername(t.Context(), "ann")
	if err != nil {
		t.Fatal(err)
	}

	r := startServe(t, env)
	admin := newClient(t)
	admin.login(r.url, "root", pw)
	signIn := func(name string) []*client {
		cs := []*client{newClient(t), newClient(t)}
		for _, c := range cs {
			c.login(r.url, name, pw)
		}
		return cs
	}
	// lastEvent is the newest audit event of action about name.
	lastEvent := func(name string, action audit.Action) audit.Event {
		t.Helper()
		u, err := users.ByUsername(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		list, err := events.List(t.Context(), audit.ListOptions{UserID: u.ID, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range list {
			if ev.Action == action {
				return ev
			}
		}
		t.Fatalf("no %s event about %s", action, name)
		return audit.Event{}
	}
	sameRecord := func(page, cli audit.Event) {
		t.Helper()
		if page.Detail != cli.Detail {
			t.Errorf("the page recorded %q, the command line %q", page.Detail, cli.Detail)
		}
		if page.ActorName != "root" || cli.ActorName != "cli" {
			t.Errorf("actors %q and %q, want root and cli", page.ActorName, cli.ActorName)
		}
	}
	// assertEnded checks every client of name was signed out at once, for
	// reason, and that the user database holds the revocation.
	assertEnded := func(name, reason string, clients []*client) {
		t.Helper()
		for i, c := range clients {
			res, _ := c.do(http.MethodGet, r.url+"/", nil)
			if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "reason="+reason) {
				t.Errorf("%s's device %d: %d to %q, want a redirect to the login page with reason=%s", name, i, res.StatusCode, loc, reason)
			}
		}
		u, err := users.ByUsername(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if u.SessionsValidAfter.IsZero() {
			t.Errorf("%s's sessions were not revoked durably (sessions_valid_after unset)", name)
		}
	}

	t.Run("sign out everywhere", func(t *testing.T) {
		annDevices, benDevices := signIn("ann"), signIn("ben")
		res, body := admin.do(http.MethodPost, r.url+"/admin/users/"+strconv.FormatInt(ann.ID, 10)+"/revoke-all", nil)
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("admin revoke-all: %d\n%s", res.StatusCode, body)
		}
		out, err := runCLI(t, env, "", "sessions", "revoke", "--user", "ben")
		if err != nil || !strings.Contains(out, "2 session(s) of ben signed out") {
			t.Fatalf("sessions revoke --user ben: %v\n%s", err, out)
		}
		assertEnded("ann", "admin", annDevices)
		assertEnded("ben", "admin", benDevices)
		sameRecord(lastEvent("ann", audit.SessionsRevokedAll), lastEvent("ben", audit.SessionsRevokedAll))
	})

	t.Run("disable", func(t *testing.T) {
		annDevices, benDevices := signIn("ann"), signIn("ben")
		res, body := admin.do(http.MethodPost, r.url+"/admin/users/"+strconv.FormatInt(ann.ID, 10)+"/disable", nil)
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("admin disable: %d\n%s", res.StatusCode, body)
		}
		out, err := runCLI(t, env, "", "user", "disable", "ben")
		if err != nil || !strings.Contains(out, "2 session(s) of ben signed out") {
			t.Fatalf("user disable ben: %v\n%s", err, out)
		}
		assertEnded("ann", "disabled", annDevices)
		assertEnded("ben", "disabled", benDevices)
		sameRecord(lastEvent("ann", audit.UserDisabled), lastEvent("ben", audit.UserDisabled))
		for _, name := range []string{"ann", "ben"} {
			res, _ := newClient(t).do(http.MethodPost, r.url+"/login", map[string][]string{"username": {name}, "password": {pw}})
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("disabled %s signing in: %d, want 401, as for a wrong password", name, res.StatusCode)
			}
		}
	})
}
