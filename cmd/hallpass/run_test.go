package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/factor"
	"github.com/hallpass/hallpass/internal/secretbox"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/sessioncache"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
	"github.com/hallpass/hallpass/internal/user"
)

// getenvFrom turns a map into a getenv function.
func getenvFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// runCLI runs one hallpass command to completion.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), args, getenvFrom(env), strings.NewReader(stdin), &out, &errOut)
	return out.String() + errOut.String(), err
}

// replica is one running `hallpass serve`.
type replica struct {
	url  string
	logs *testkit.LogBuffer
	// stop sends the equivalent of SIGTERM and returns what serve returned.
	stop func() error
}

// testSecretKey is the HALLPASS_SECRET_KEY of test servers (32 bytes).
const testSecretKey = "dGVzdC1vbmx5LXNlY3JldC1rZXktMzItYnl0ZXMhISE="

// startServe runs `hallpass serve` with env until the test ends, and waits
// until it answers /healthz.
func startServe(t *testing.T, env map[string]string) *replica {
	t.Helper()
	env = copyEnv(env)
	port := testsvc.FreePort(t)
	env["HALLPASS_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
	if _, ok := env["HALLPASS_DRAIN_DELAY"]; !ok {
		env["HALLPASS_DRAIN_DELAY"] = "0s"
	}
	if _, ok := env["HALLPASS_SECRET_KEY"]; !ok {
		env["HALLPASS_SECRET_KEY"] = testSecretKey
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testkit.LogBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, getenvFrom(env), strings.NewReader(""), io.Discard, logs) }()
	var stopOnce sync.Once
	var stopErr error
	stop := func() error {
		stopOnce.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("serve did not stop within 30 s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve returned %v after shutdown; logs:\n%s", err, logs)
		}
	})
	r := &replica{url: fmt.Sprintf("http://127.0.0.1:%d", port), logs: logs, stop: stop}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("serve stopped early: %v; logs:\n%s", err, logs)
		default:
		}
		res, err := http.Get(r.url + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never became healthy; logs:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func copyEnv(env map[string]string) map[string]string {
	c := map[string]string{}
	for k, v := range env {
		c[k] = v
	}
	return c
}

// client talks to replicas with one session cookie, set by hand so the
// Secure cookie travels over the test's plain http like a browser's does to
// localhost.
type client struct {
	t      *testing.T
	cookie *http.Cookie
	http   *http.Client
}

func newClient(t *testing.T) *client {
	return &client{t: t, http: &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *client) do(method, rawURL string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.cookie != nil {
		req.AddCookie(&http.Cookie{Name: c.cookie.Name, Value: c.cookie.Value})
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, sc := range res.Cookies() {
		if strings.HasSuffix(sc.Name, "hallpass") {
			if sc.MaxAge < 0 {
				c.cookie = nil
			} else {
				c.cookie = sc
			}
		}
	}
	return res, string(b)
}

func (c *client) login(base, name, pw string) {
	c.t.Helper()
	res, body := c.do(http.MethodPost, base+"/login", url.Values{"username": {name}, "password": {pw}})
	if res.StatusCode != http.StatusSeeOther || c.cookie == nil {
		c.t.Fatalf("login %s at %s: %d, cookie %v; body:\n%s", name, base, res.StatusCode, c.cookie, body)
	}
}

func TestEmbeddedDefaultServesSignInAndOut(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(dir, "data", "hallpass.db"), "HALLPASS_REPLICA_ID": "solo"}
	r := startServe(t, env)
	if logs := r.logs.String(); !strings.Contains(logs, "hallpass user add NAME --admin") || !strings.Contains(logs, "sessions are local to this process") {
		t.Errorf("first start did not explain the admin command and local sessions; logs:\n%s", logs)
	}
	if out, err := runCLI(t, env, "correct horse battery\n", "user", "add", "alice", "--admin"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}

	c := newClient(t)
	c.login(r.url, "alice", "correct horse battery")
	if c.cookie.Name != "__Host-hallpass" || !c.cookie.Secure || !c.cookie.HttpOnly {
		t.Errorf("cookie %+v, want a Secure HttpOnly __Host-hallpass cookie by default", c.cookie)
	}
	res, body := c.do(http.MethodGet, r.url+"/", nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "Hello, alice") || res.Header.Get("X-Served-By") != "solo" {
		t.Fatalf("home: %d, X-Served-By %q; body:\n%s", res.StatusCode, res.Header.Get("X-Served-By"), body)
	}
	res, _ = c.do(http.MethodPost, r.url+"/logout", url.Values{})
	if res.StatusCode != http.StatusSeeOther || c.cookie != nil {
		t.Fatalf("logout: %d, cookie left %v", res.StatusCode, c.cookie)
	}
	if res, _ := c.do(http.MethodGet, r.url+"/", nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("home after logout: %d, want 303 to /login", res.StatusCode)
	}
}

func TestReplicasShareSessionsThroughRedisAndPostgres(t *testing.T) {
	rs := testsvc.StartRedis(t)
	pg := testsvc.StartPostgres(t)
	base := map[string]string{
		"HALLPASS_DATABASE_URL": pg.NewDatabase(t),
		"HALLPASS_REDIS_URL":    rs.URL,
		"HALLPASS_SIGNUP":       "closed",
	}
	if out, err := runCLI(t, base, "", "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if out, err := runCLI(t, base, "correct horse battery\n", "user", "add", "bob"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	envA, envB := copyEnv(base), copyEnv(base)
	envA["HALLPASS_REPLICA_ID"], envB["HALLPASS_REPLICA_ID"] = "replica-a", "replica-b"
	a, b := startServe(t, envA), startServe(t, envB)

	c := newClient(t)
	c.login(a.url, "bob", "correct horse battery")
	res, body := c.do(http.MethodGet, b.url+"/", nil)
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Served-By") != "replica-b" || !strings.Contains(body, "Hello, bob") {
		t.Fatalf("replica B did not recognise a session made on A: %d %q", res.StatusCode, res.Header.Get("X-Served-By"))
	}
	if !strings.Contains(body, "replica-a") {
		t.Error("home page does not show which replica created the session")
	}
	// Signing out on B ends the session on A too.
	c.do(http.MethodPost, b.url+"/logout", url.Values{})
	if res, _ := c.do(http.MethodGet, a.url+"/", nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("replica A after sign-out on B: %d, want 303", res.StatusCode)
	}
	if res, _ := c.do(http.MethodGet, b.url+"/signup", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("sign-up closed but /signup answered %d", res.StatusCode)
	}
}

// TestReplicasShareSessionsThroughARedisCluster runs two replicas over a
// real Redis Cluster (3 primaries, a replica each), each with its session
// cache: people whose sessions land on different primaries are recognised
// on either replica, a sign-out on one is refused at once on the other, and
// the command line reaches every shard.
func TestReplicasShareSessionsThroughARedisCluster(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 1)
	env := map[string]string{
		"HALLPASS_DATABASE_URL":        "sqlite:" + filepath.Join(t.TempDir(), "h.db"),
		"HALLPASS_REDIS_CLUSTER":       strings.Join(rc.Seeds()[:2], ","), // the rest are found
		"HALLPASS_REDIS_WAIT_REPLICAS": "1",
	}
	names := []string{"ann", "ben", "cat", "dan", "eve", "fay"}
	for _, name := range names {
		if out, err := runCLI(t, env, "correct horse battery\n", "user", "add", name); err != nil {
			t.Fatalf("user add %s: %v\n%s", name, err, out)
		}
	}
	envA, envB := copyEnv(env), copyEnv(env)
	envA["HALLPASS_REPLICA_ID"], envB["HALLPASS_REPLICA_ID"] = "replica-a", "replica-b"
	a, b := startServe(t, envA), startServe(t, envB)

	clients := map[string]*client{}
	for _, name := range names {
		c := newClient(t)
		c.login(a.url, name, "correct horse battery")
		clients[name] = c
		if res, body := c.do(http.MethodGet, b.url+"/", nil); res.StatusCode != http.StatusOK || !strings.Contains(body, "Hello, "+name) {
			t.Fatalf("replica B did not recognise %s's session made on A: %d", name, res.StatusCode)
		}
		// Cached on A now.
		if res, _ := c.do(http.MethodGet, a.url+"/", nil); res.StatusCode != http.StatusOK {
			t.Fatalf("replica A after the sign-in of %s: %d", name, res.StatusCode)
		}
	}
	// A sign-out on B is refused on A at once, whichever primary holds it.
	for _, name := range names[:3] {
		clients[name].do(http.MethodPost, b.url+"/logout", url.Values{})
		if res, _ := clients[name].do(http.MethodGet, a.url+"/", nil); res.StatusCode != http.StatusSeeOther {
			t.Errorf("replica A served %s after the sign-out on B: %d, want 303", name, res.StatusCode)
		}
	}
	out, err := runCLI(t, env, "", "sessions", "list", "--user", "dan")
	if err != nil || len(strings.Split(strings.TrimSpace(out), "\n")) != 2 {
		t.Fatalf("sessions list --user dan: %v\n%s", err, out)
	}
	if out, err := runCLI(t, env, "", "sessions", "revoke", "--everyone"); err != nil || !strings.Contains(out, "3 session(s) of every user signed out") {
		t.Fatalf("sessions revoke --everyone: %v\n%s", err, out)
	}
	// Where the shard tags are: every primary, every tag once.
	out, err = runCLI(t, env, "", "sessions", "shards")
	if err != nil {
		t.Fatalf("sessions shards: %v\n%s", err, out)
	}
	tags, rows := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		fields := strings.Fields(line)
		if len(fields) == 4 && slices.Contains(rc.Primaries(t), fields[0]) {
			n, _ := strconv.Atoi(fields[1])
			tags, rows = tags+n, rows+1
		}
	}
	if rows != 3 || tags != session.ShardTags || !strings.Contains(out, "256 shard tags over 3 primaries") {
		t.Errorf("sessions shards listed %d tags on %d primaries, want 256 on 3:\n%s", tags, rows, out)
	}
	for _, name := range names[3:] {
		for _, r := range []string{a.url, b.url} {
			if res, _ := clients[name].do(http.MethodGet, r+"/", nil); res.StatusCode != http.StatusSeeOther {
				t.Errorf("%s is still signed in on %s after sessions revoke --everyone: %d", name, r, res.StatusCode)
			}
		}
	}
}

func TestInvalidConfigurationStopsStartup(t *testing.T) {
	out, err := runCLI(t, map[string]string{"HALLPASS_SESSION_IDLE_TIMEOUT": "soon", "HALLPASS_SIGNUP": "maybe"}, "", "serve")
	if err == nil {
		t.Fatal("serve started with an invalid configuration")
	}
	for _, want := range []string{"HALLPASS_SESSION_IDLE_TIMEOUT", "HALLPASS_SIGNUP", "open or closed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v\n%s", want, err, out)
		}
	}
}

func TestUnreachableRedisStopsStartup(t *testing.T) {
	env := map[string]string{
		"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db"),
		"HALLPASS_REDIS_URL":    fmt.Sprintf("redis://127.0.0.1:%d", testsvc.FreePort(t)),
		"HALLPASS_ADDR":         fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t)),
		"HALLPASS_SECRET_KEY":   testSecretKey,
	}
	_, err := runCLI(t, env, "", "serve")
	if err == nil || !strings.Contains(err.Error(), "session store") {
		t.Fatalf("serve with Redis down: %v, want an error about the session store", err)
	}
}

func TestUserCommands(t *testing.T) {
	env := map[string]string{"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db")}
	if _, err := runCLI(t, env, "short\n", "user", "add", "carol"); err == nil {
		t.Error("user add accepted a 5-byte password")
	}
	if out, err := runCLI(t, env, "correct horse battery\n", "user", "add", "carol"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	if _, err := runCLI(t, env, "correct horse battery\n", "user", "add", "CAROL"); err == nil {
		t.Error("user add accepted a duplicate username differing in case")
	}
	if out, err := runCLI(t, env, "", "user", "disable", "carol"); err != nil {
		t.Fatalf("user disable: %v\n%s", err, out)
	}
	out, err := runCLI(t, env, "", "user", "list")
	if err != nil || !strings.Contains(out, "carol") || !strings.Contains(out, "disabled") {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	if out, err := runCLI(t, env, "another long passphrase\n", "user", "passwd", "carol"); err != nil {
		t.Fatalf("user passwd: %v\n%s", err, out)
	}
	if _, err := runCLI(t, env, "", "user", "frobnicate", "carol"); !errors.Is(err, errUsage) {
		t.Errorf("unknown subcommand: %v, want a usage error", err)
	}
	if _, err := runCLI(t, env, ""); !errors.Is(err, errUsage) {
		t.Errorf("no command: %v, want a usage error", err)
	}
}

func TestUserCommandsRefuseAWeakPasswordAndSayWhy(t *testing.T) {
	const guessable = "This password is too easy to guess: it is a common password or close to one. Use a longer passphrase of unrelated words."
	env := map[string]string{"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db")}
	_, err := runCLI(t, env, "password1\n", "user", "add", "carol")
	if !errors.Is(err, account.ErrInvalid) || !strings.Contains(err.Error(), guessable) {
		t.Errorf("user add with password1: %v, want the message %q", err, guessable)
	}
	if out, err := runCLI(t, env, "", "user", "list"); err != nil || strings.Contains(out, "carol") {
		t.Errorf("user list after the refusal: %v\n%s", err, out)
	}
	if out, err := runCLI(t, env, "correct horse battery\n", "user", "add", "carol"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	for pw, want := range map[string]string{
		"password1":           guessable,
		"correct horse CAROL": "The password must not contain your user name.",
	} {
		out, err := runCLI(t, env, pw+"\n", "user", "passwd", "carol")
		if !errors.Is(err, account.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("user passwd with %q: %v, want the message %q", pw, err, want)
		}
		if strings.Contains(out, "password of carol changed") {
			t.Errorf("user passwd with %q said:\n%s", pw, out)
		}
	}
}

func TestSessionsCommandsActOnRunningReplicasAtOnce(t *testing.T) {
	rs := testsvc.StartRedis(t)
	env := map[string]string{
		"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db"),
		"HALLPASS_REDIS_URL":    rs.URL,
		"HALLPASS_REPLICA_ID":   "r1",
	}
	if out, err := runCLI(t, env, "correct horse battery\n", "user", "add", "dave"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	r := startServe(t, env)
	phone, laptop := newClient(t), newClient(t)
	phone.login(r.url, "dave", "correct horse battery")
	laptop.login(r.url, "dave", "correct horse battery")

	out, err := runCLI(t, env, "", "sessions", "list", "--user", "dave")
	if err != nil {
		t.Fatalf("sessions list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("sessions list printed %d lines, want a header and 2 sessions:\n%s", len(lines), out)
	}
	id := strings.Fields(lines[1])[0]
	if out, err := runCLI(t, env, "", "sessions", "revoke", "--id", id); err != nil {
		t.Fatalf("sessions revoke --id: %v\n%s", err, out)
	}
	signedIn := 0
	for _, c := range []*client{phone, laptop} {
		if res, _ := c.do(http.MethodGet, r.url+"/", nil); res.StatusCode == http.StatusOK {
			signedIn++
		}
	}
	if signedIn != 1 {
		t.Fatalf("after revoking one session by ID, %d of 2 devices are signed in, want 1", signedIn)
	}
	if out, err := runCLI(t, env, "", "sessions", "revoke", "--user", "dave"); err != nil || !strings.Contains(out, "1 session(s) of dave signed out") {
		t.Fatalf("sessions revoke --user: %v\n%s", err, out)
	}
	for _, c := range []*client{phone, laptop} {
		if res, _ := c.do(http.MethodGet, r.url+"/", nil); res.StatusCode != http.StatusSeeOther {
			t.Errorf("a device is still signed in after sessions revoke --user: %d", res.StatusCode)
		}
	}
	if _, err := runCLI(t, env, "", "sessions", "revoke"); !errors.Is(err, errUsage) {
		t.Errorf("sessions revoke without a target: %v, want a usage error", err)
	}
	if _, err := runCLI(t, env, "", "sessions", "revoke", "--everyone", "--user", "dave"); !errors.Is(err, errUsage) {
		t.Errorf("sessions revoke with two targets: %v, want a usage error", err)
	}

	// Incident response from the command line: everyone, on every replica.
	if out, err := runCLI(t, env, "correct horse battery\n", "user", "add", "erin"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	erin := newClient(t)
	phone.login(r.url, "dave", "correct horse battery")
	erin.login(r.url, "erin", "correct horse battery")
	if out, err := runCLI(t, env, "", "sessions", "revoke", "--everyone"); err != nil || !strings.Contains(out, "2 session(s) of every user signed out") {
		t.Fatalf("sessions revoke --everyone: %v\n%s", err, out)
	}
	for _, c := range []*client{phone, erin} {
		if res, _ := c.do(http.MethodGet, r.url+"/", nil); res.StatusCode != http.StatusSeeOther {
			t.Errorf("a device is still signed in after sessions revoke --everyone: %d", res.StatusCode)
		}
	}
}

func TestSessionsListNeedsASharedStore(t *testing.T) {
	env := map[string]string{"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db")}
	if _, err := runCLI(t, env, "", "sessions", "list"); !errors.Is(err, account.ErrSessionsOutOfReach) {
		t.Errorf("sessions list without Redis: %v, want ErrSessionsOutOfReach", err)
	}
}

func TestGracefulShutdownDrainsThenExits(t *testing.T) {
	env := map[string]string{
		"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db"),
		"HALLPASS_DRAIN_DELAY":  "2s",
	}
	r := startServe(t, env)
	// An open tab's event stream: the drain ends it at once, so the
	// browser reconnects to another replica instead of holding the
	// shutdown up.
	if out, err := runCLI(t, env, "correct horse battery\n", "user", "add", "alice"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	c := newClient(t)
	c.login(r.url, "alice", "correct horse battery")
	req, _ := http.NewRequest(http.MethodGet, r.url+"/events", nil)
	req.AddCookie(&http.Cookie{Name: c.cookie.Name, Value: c.cookie.Value})
	stream, err := (&http.Client{}).Do(req)
	if err != nil || stream.StatusCode != http.StatusOK {
		t.Fatalf("GET /events: %v %v", stream, err)
	}
	defer stream.Body.Close()
	streamEnded := make(chan time.Time, 1)
	go func() {
		io.Copy(io.Discard, stream.Body)
		streamEnded <- time.Now()
	}()

	stopAsked := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	select {
	case ended := <-streamEnded:
		if took := ended.Sub(stopAsked); took > time.Second {
			t.Errorf("the event stream ended %v after SIGTERM, want at the start of the 2 s drain", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream was still open 5 s after SIGTERM")
	}

	// While draining, /readyz says so and pages are still served.
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := http.Get(r.url + "/readyz")
		if err != nil {
			t.Fatalf("replica stopped before draining: %v", err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "shutting down") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never reported the drain: %d %q", res.StatusCode, body)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if res, err := http.Get(r.url + "/login"); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("page during the drain: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if err := <-stopped; err != nil {
		t.Fatalf("serve after SIGTERM: %v, want a clean exit", err)
	}
	if _, err := http.Get(r.url + "/healthz"); err == nil {
		t.Error("the replica still answers after shutdown")
	}
}

func TestMetricsAreServedOnTheirOwnListenerOnly(t *testing.T) {
	metricsPort := testsvc.FreePort(t)
	env := map[string]string{
		"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db"),
		"HALLPASS_METRICS_ADDR": fmt.Sprintf("127.0.0.1:%d", metricsPort),
	}
	if out, err := runCLI(t, env, "correct horse battery\n", "user", "add", "erin"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	r := startServe(t, env)
	c := newClient(t)
	c.login(r.url, "erin", "correct horse battery")
	c.do(http.MethodGet, r.url+"/", nil)
	c.do(http.MethodPost, r.url+"/login", url.Values{"username": {"erin"}, "password": {"wrong password"}})

	if res, _ := c.do(http.MethodGet, r.url+"/metrics", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("public listener /metrics: %d, want 404", res.StatusCode)
	}
	if res, _ := c.do(http.MethodGet, r.url+"/debug/pprof/", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("public listener /debug/pprof/: %d, want 404", res.StatusCode)
	}
	if res, _ := c.do(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", metricsPort), nil); res.StatusCode != http.StatusOK {
		t.Errorf("metrics listener /debug/pprof/: %d, want 200", res.StatusCode)
	}
	res, body := c.do(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("metrics listener: %d", res.StatusCode)
	}
	for _, want := range []string{
		`hallpass_logins_total{result="succeeded"} 1`,
		`hallpass_logins_total{result="failed"} 1`,
		`hallpass_active_sessions 1`,
		`hallpass_http_requests_total{method="GET",route="/",status="200"} 1`,
		`hallpass_session_store_duration_seconds_count{op="find"}`,
		`hallpass_database_duration_seconds_count{op="user_by_username"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "hallpass_session_cache_") {
		t.Error("a replica without Redis, so without a session cache, reports hallpass_session_cache_* series")
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if !strings.HasPrefix(line, "hallpass_") {
			t.Errorf("metric %q does not start with hallpass_", line)
			break
		}
	}
}

func TestSessionCacheReportsItsLinkAndFencesOnTheMetricsListener(t *testing.T) {
	rs := testsvc.StartRedis(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t))
	metricsURL := "http://" + metricsAddr + "/metrics"
	env := map[string]string{
		"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db"),
		"HALLPASS_REDIS_URL":    rs.URL,
		"HALLPASS_METRICS_ADDR": metricsAddr,
	}
	if out, err := runCLI(t, env, "correct horse battery\n", "user", "add", "fay"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	r := startServe(t, env)
	var body string
	testkit.Eventually(t, 10*time.Second, "the session cache's link to be up and trusted", func() error {
		var err error
		if body, err = fetch(metricsURL); err != nil {
			return err
		}
		for _, want := range []string{"hallpass_session_cache_link_up 1\n", "hallpass_session_cache_trusted 1\n"} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("/metrics lacks %q", want)
			}
		}
		return nil
	})
	if age := sample(t, body, "hallpass_session_cache_lease_age_seconds"); age < 0 || age > sessioncache.Lease.Seconds() {
		t.Errorf("lease age %v s on a trusted link, want within [0, %v]", age, sessioncache.Lease.Seconds())
	}

	// Signing out fences the session; the only caching replica is this one,
	// and it confirms its own fence rather than waiting out the lease.
	c := newClient(t)
	c.login(r.url, "fay", "correct horse battery")
	c.do(http.MethodGet, r.url+"/", nil)
	c.do(http.MethodPost, r.url+"/logout", url.Values{})
	body, err := fetch(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	if n := sample(t, body, `hallpass_session_cache_fences_total{result="confirmed"}`); n < 1 {
		t.Errorf("confirmed fences after a sign-out: %v, want at least 1", n)
	}
	if n := sample(t, body, `hallpass_session_cache_fences_total{result="lapsed"}`); n != 0 {
		t.Errorf("lapsed fences on a lone caching replica: %v, want 0", n)
	}
	for _, name := range []string{"hallpass_session_cache_hits_total", "hallpass_session_cache_misses_total", "hallpass_session_cache_heartbeats_total"} {
		sample(t, body, name)
	}
}

// sample returns the value of the series named (with its labels, as
// exposed) in a scrape, failing t when the scrape lacks it.
func sample(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Errorf("/metrics lacks %s", series)
	return math.NaN()
}

func TestOversizedHeadersGet431(t *testing.T) {
	r := startServe(t, map[string]string{"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db")})
	req, err := http.NewRequest(http.MethodGet, r.url+"/login", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header: %d, want 431", res.StatusCode)
	}
}

func TestServeFollowsASentinelFailoverWithoutSigningAnyoneOut(t *testing.T) {
	cluster := testsvc.StartSentinelCluster(t)
	env := map[string]string{
		"HALLPASS_DATABASE_URL":        "sqlite:" + filepath.Join(t.TempDir(), "h.db"),
		"HALLPASS_REDIS_SENTINELS":     strings.Join(cluster.SentinelAddrs, ","),
		"HALLPASS_REDIS_MASTER":        cluster.MasterName,
		"HALLPASS_REDIS_WAIT_REPLICAS": "1",
	}
	if out, err := runCLI(t, env, "correct horse battery\n", "user", "add", "frank"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	r := startServe(t, env)
	c := newClient(t)
	c.login(r.url, "frank", "correct horse battery")

	oldPrimary := cluster.Primary(t)
	old := cluster.KillPrimary(t)
	statuses := map[int]int{}
	deadline := time.Now().Add(45 * time.Second)
	for {
		res, _ := c.do(http.MethodGet, r.url+"/", nil)
		statuses[res.StatusCode]++
		if res.StatusCode == http.StatusOK && cluster.PrimaryAddr(t) != old {
			break
		}
		if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("during the failover GET / answered %d (statuses so far %v): want only 200 or 503, never a sign-out or a 500", res.StatusCode, statuses)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 45 s of killing the primary: statuses %v", statuses)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	t.Logf("statuses while the primary was replaced: %v", statuses)

	// The promoted replica has no replica of its own while the old primary
	// is down, so a new sign-in cannot be confirmed: 503, not a session a
	// second failover could lose.
	res, _ := newClient(t).do(http.MethodPost, r.url+"/login", url.Values{"username": {"frank"}, "password": {"correct horse battery"}})
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("sign-in with no replica to confirm it: %d, want 503", res.StatusCode)
	}
	// The old primary comes back, Sentinel makes it a replica, and sign-ins
	// work again without restarting Hallpass.
	oldPrimary.Start(t)
	deadline = time.Now().Add(45 * time.Second)
	for {
		c2 := newClient(t)
		res, _ := c2.do(http.MethodPost, r.url+"/login", url.Values{"username": {"frank"}, "password": {"correct horse battery"}})
		if res.StatusCode == http.StatusSeeOther {
			break
		}
		if res.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("sign-in after the old primary returned: %d", res.StatusCode)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

func TestUserMFAResetRemovesEveryFactorAndIsAudited(t *testing.T) {
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "h.db")
	env := map[string]string{"HALLPASS_DATABASE_URL": dbURL} // no secret key: the reset needs none
	if out, err := runCLI(t, env, "correct horse battery\n", "user", "add", "carol"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	// Carol's factors, as enrolment leaves them: an authenticator app and
	// ten recovery codes.
	ctx := t.Context()
	db, err := database.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := secretbox.ParseKeys(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	carol, err := user.NewSQLStore(db, time.Now).ByUsername(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	factors := factor.NewSQLStore(db, box)
	now := time.Now()
	if err := factors.PutPendingTOTP(ctx, carol.ID, []byte("12345678901234567890"), now); err != nil {
		t.Fatal(err)
	}
	if err := factors.ConfirmTOTP(ctx, carol.ID, 1, now); err != nil {
		t.Fatal(err)
	}
	var hashes [][]byte
	for i := range 10 {
		hashes = append(hashes, []byte(fmt.Sprintf("%032d", i)))
	}
	if err := factors.ReplaceRecoveryCodes(ctx, carol.ID, hashes, now); err != nil {
		t.Fatal(err)
	}

	out, err := runCLI(t, env, "", "user", "mfa", "reset", "carol")
	if err != nil {
		t.Fatalf("user mfa reset: %v\n%s", err, out)
	}
	if !strings.Contains(out, "authenticator app yes, 0 passkey(s), 10 unused recovery code(s)") {
		t.Errorf("user mfa reset said:\n%s", out)
	}
	if sum, err := factors.Summary(ctx, carol.ID); err != nil || sum != (factor.Summary{}) {
		t.Errorf("after the reset carol has %+v (%v), want nothing", sum, err)
	}
	events, err := audit.NewSQLStore(db, time.Now).List(ctx, audit.ListOptions{})
	if err != nil || len(events) == 0 || events[0].Action != audit.FactorsReset || events[0].TargetName != "carol" {
		t.Errorf("newest audit event %+v (%v), want factors.reset of carol", events, err)
	}
	if _, err := runCLI(t, env, "", "user", "mfa", "reset", "nobody"); err == nil {
		t.Error("user mfa reset of an unknown user succeeded")
	}
	if _, err := runCLI(t, env, "", "user", "mfa", "carol"); !errors.Is(err, errUsage) {
		t.Errorf("user mfa without reset: %v, want a usage error", err)
	}
}

func TestServeRefusesToStartWithoutASecretKeyWhileFactorsAreOn(t *testing.T) {
	env := map[string]string{"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db")}
	_, err := runCLI(t, env, "", "serve")
	if err == nil || !strings.Contains(err.Error(), "HALLPASS_SECRET_KEY is required") {
		t.Fatalf("serve without a key: %v", err)
	}
	env["HALLPASS_SECRET_KEY"] = "c2hvcnQta2V5"
	if _, err := runCLI(t, env, "", "serve"); err == nil || strings.Contains(err.Error(), "c2hvcnQta2V5") {
		t.Fatalf("serve with a short key: %v (must fail and not show the key)", err)
	}
}
