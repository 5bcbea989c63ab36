package web

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// TestPagesEscapeWhatTheyShow renders the home page, whose values are
// prepared in Go, with markup in every value it prints: html/template must
// still escape each one. Usernames cannot hold markup today; the templates
// must not depend on that.
func TestPagesEscapeWhatTheyShow(t *testing.T) {
	const hostile = `<script>alert(1)</script>"'`
	p, err := testPages()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{pages: p, Deps: Deps{ReplicaID: hostile, IdleTimeout: 30 * time.Minute}, idleTimeout: hostile}
	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	info := session.Info{
		Identity: session.Identity{UserID: 1, Username: hostile, Role: string(user.RoleAdmin)},
		Created:  now, LastSeen: now, Replica: hostile,
		IdleExpiry: now.Add(30 * time.Minute), AbsoluteExpiry: now.Add(12 * time.Hour),
	}
	d := pageData{Title: hostile, User: &info, IsAdmin: true, Replica: hostile, Path: "/", Data: s.homeView(info, now)}
	var buf bytes.Buffer
	if err := p.byName["home"].ExecuteTemplate(&buf, "layout", d); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	// The one script a signed-in page loads is ours; any other <script is
	// a value printed unescaped.
	const liveScript = `<script src="/static/live.js" defer></script>`
	if strings.Count(page, liveScript) != 1 {
		t.Fatalf("the home page does not load %s once:\n%s", liveScript, page)
	}
	page = strings.Replace(page, liveScript, "", 1)
	if strings.Contains(page, "<script") || strings.Contains(page, `"'`) {
		t.Fatalf("the home page printed a value unescaped:\n%s", page)
	}
	// Title, avatar title, who, heading, idle timeout, session replica,
	// served-by and footer: eight places, each escaped.
	if n := strings.Count(page, "&lt;script&gt;"); n < 8 {
		t.Errorf("the escaped value appears %d times, want at least 8:\n%s", n, page)
	}
}

// TestHomePageSaysWhoIsSignedInAndWhenTheSessionEnds reads the facts the
// home page lists, in the header and the page.
func TestHomePageSaysWhoIsSignedInAndWhenTheSessionEnds(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", alicePW)
	signedIn := ts.clock.Now()
	ts.clock.Advance(5 * time.Minute)
	doc := b.get("/").doc(t)
	if got := doc.Find(`.topnav a[aria-current="page"]`).Text(); got != "Home" {
		t.Errorf("current navigation link %q, want Home", got)
	}
	if got := doc.Find(".topnav").Text(); strings.Contains(got, "Admin") {
		t.Error("a user's header links to the admin pages")
	}
	if got := doc.Find("header .avatar").Text(); got != "a" {
		t.Errorf("header avatar %q, want a", got)
	}
	times := doc.Find(".facts time")
	want := []struct{ datetime, text string }{
		{signedIn.UTC().Format(time.RFC3339), "5 minutes ago"},
		{ts.clock.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339), "in 30 minutes"},
		{signedIn.Add(12 * time.Hour).UTC().Format(time.RFC3339), "in 11 hours"},
	}
	if times.Length() != len(want) {
		t.Fatalf("%d times listed, want %d", times.Length(), len(want))
	}
	times.Each(func(i int, s *goquery.Selection) {
		if dt, _ := s.Attr("datetime"); dt != want[i].datetime || s.Text() != want[i].text {
			t.Errorf("time %d: %s %q, want %s %q", i, dt, s.Text(), want[i].datetime, want[i].text)
		}
	})
	if got := doc.Find(".facts dd").Eq(1).Text(); !strings.HasPrefix(got, "after 30 minutes without activity") {
		t.Errorf("session end %q, want it to start with the idle timeout in words", got)
	}
}
