package loadcheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// flawedServer speaks just enough of Hallpass's forms for the load, and
// breaks the promise it is told to break, so the tests can show the checker
// notices. (The real Hallpass is checked by make test-compose and make soak.)
type flawedServer struct {
	mu       sync.Mutex
	users    map[string]string // name → password
	sessions map[string]string // cookie → user
	n        int
	// keepRevoked: a sign-out answers 303 but the session stays valid.
	keepRevoked bool
	// forgetAfter: from the forgetAfter-th sign-in on, sessions are lost.
	forgetAfter int
	// lagging, if set, is a replica cut off from this one's sign-outs: it
	// learns every account and sign-in made here, and no sign-out, as an app
	// replica left with the old Redis primary in a partition would.
	lagging *flawedServer
}

func (s *flawedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = r.ParseForm()
	cookie, _ := r.Cookie("__Host-hallpass")
	switch r.Method + " " + r.URL.Path {
	case "POST /signup":
		s.users[r.PostForm.Get("username")] = r.PostForm.Get("password")
		if s.lagging != nil {
			s.lagging.mu.Lock()
			s.lagging.users[r.PostForm.Get("username")] = r.PostForm.Get("password")
			s.lagging.mu.Unlock()
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	case "POST /login":
		name := r.PostForm.Get("username")
		if s.users[name] != r.PostForm.Get("password") {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		s.n++
		value := name + "-" + strings.Repeat("x", s.n)
		if s.forgetAfter == 0 || s.n < s.forgetAfter {
			s.sessions[value] = name
		}
		if s.lagging != nil {
			s.lagging.mu.Lock()
			s.lagging.sessions[value] = name
			s.lagging.mu.Unlock()
		}
		http.SetCookie(w, &http.Cookie{Name: "__Host-hallpass", Value: value, Path: "/"})
		http.Redirect(w, r, "/", http.StatusSeeOther)
	case "POST /logout":
		if cookie != nil && !s.keepRevoked {
			delete(s.sessions, cookie.Value)
		}
		http.SetCookie(w, &http.Cookie{Name: "__Host-hallpass", Value: "", Path: "/", MaxAge: -1})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	case "GET /":
		if cookie == nil || s.sessions[cookie.Value] == "" {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		w.Header().Set("X-Served-By", "app1")
		_, _ = w.Write([]byte("<h1>Hello, " + s.sessions[cookie.Value] + "</h1>"))
	default:
		http.NotFound(w, r)
	}
}

// runAgainst runs a short load against srv and returns its summary; the
// lanes also go to each of direct without srv in between.
func runAgainst(t *testing.T, srv *flawedServer, direct ...http.Handler) Summary {
	t.Helper()
	srv.users, srv.sessions = map[string]string{}, map[string]string{}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	var urls []string
	for _, h := range direct {
		d := httptest.NewServer(h)
		t.Cleanup(d.Close)
		urls = append(urls, d.URL)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	run, err := Start(ctx, Options{URL: ts.URL, Direct: urls, Lanes: 2, Pause: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run.Wait()
	run.History.Verify(t.Context(), 1, 5*time.Second, urls...)
	return run.History.Summarize(nil)
}

func TestHistoryOfAFaithfulServerHasNoViolation(t *testing.T) {
	sum := runAgainst(t, &flawedServer{})
	if len(sum.Violations) != 0 || sum.Failed() != 0 {
		t.Fatalf("violations or failures against a faithful server:\n%s", sum)
	}
	if sum.Counts[Revoke][Acknowledged] == 0 || sum.Counts[SignIn][Acknowledged] == 0 {
		t.Fatalf("the load neither signed in nor out:\n%s", sum)
	}
}

func TestHistoryOfAFaithfulServerReachedDirectlyToo(t *testing.T) {
	srv := &flawedServer{}
	sum := runAgainst(t, srv, srv)
	if len(sum.Violations) != 0 || sum.Failed() != 0 {
		t.Fatalf("violations or failures against a faithful server:\n%s", sum)
	}
	for _, kind := range []string{SignIn, PageView, Revoke} {
		if sum.Counts[kind][Acknowledged]+sum.Counts[kind][SignedIn] == 0 ||
			sum.Counts[kind+" direct"][Acknowledged]+sum.Counts[kind+" direct"][SignedIn] == 0 {
			t.Fatalf("%s went not both through the load balancer and directly:\n%s", kind, sum)
		}
	}
}

func TestPageServedDirectlyAfterSignOutElsewhereIsAViolation(t *testing.T) {
	lagging := &flawedServer{users: map[string]string{}, sessions: map[string]string{}}
	sum := runAgainst(t, &flawedServer{lagging: lagging}, lagging)
	var seen bool
	for _, e := range sum.Violations {
		if e.Breach == BreachRevoked && e.Via != "" {
			seen = true
		}
	}
	if !seen {
		t.Fatalf("a replica reached directly served revoked sessions and passed:\n%s", sum)
	}
	if !strings.Contains(sum.String(), "× "+BreachRevoked+", on app1 direct") {
		t.Fatalf("the summary does not say where the revoked sessions were served:\n%s", sum)
	}
}

func TestPageServedAfterAcknowledgedSignOutIsAViolation(t *testing.T) {
	sum := runAgainst(t, &flawedServer{keepRevoked: true})
	if len(sum.Violations) == 0 || !strings.Contains(sum.Violations[0].Violation, "after its sign-out was acknowledged") {
		t.Fatalf("a server that keeps revoked sessions passed:\n%s", sum)
	}
}

func TestLostAcknowledgedSignInIsAViolation(t *testing.T) {
	sum := runAgainst(t, &flawedServer{forgetAfter: 5})
	if len(sum.Violations) == 0 || !strings.Contains(sum.Violations[0].Violation, "never revoked") {
		t.Fatalf("a server that loses sessions passed:\n%s", sum)
	}
}

func TestReadMarks(t *testing.T) {
	path := t.TempDir() + "/marks"
	if err := os.WriteFile(path, []byte("1700000000.250000000 kill\n\n1700000003.5 promoted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	marks, err := ReadMarks(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(marks) != 2 || marks[0].Label != "kill" || marks[1].At.Sub(marks[0].At) != 3250*time.Millisecond {
		t.Fatalf("marks = %+v", marks)
	}
}
