package cluster_test

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/cluster"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// hallpassBin is the hallpass binary built from this checkout by TestMain.
var hallpassBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hallpass-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster tests:", err)
		os.Exit(1)
	}
	hallpassBin = filepath.Join(dir, "hallpass")
	build := exec.Command("go", "build", "-o", hallpassBin, "github.com/hallpass/hallpass/cmd/hallpass")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cluster tests: build hallpass: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The suite's users. Every password is the same: only sessions are under
// test here.
const (
	password   = "correct horse battery"
	loadUser   = "carol" // the signed-in clients of the loads
	revokeUser = "dana"  // scenario 2's two devices
	loginUser  = "erin"  // scenario 5's stream of sign-ins
	loadSize   = 10      // signed-in clients in each load
	// reliabilityEnv names the variable that makes the suite write
	// docs/RELIABILITY.md.
	reliabilityEnv = "HALLPASS_WRITE_RELIABILITY"
)

// suite is one cluster shared by the scenarios, which run in order; each
// leaves the cluster healthy for the next.
type suite struct {
	c            *cluster.Cluster
	tr           *http.Transport
	loaders      []*client
	lanes        []*lane    // the cache scenarios' (see cacheLanes)
	hashes       *hashSlots // the suite's shares of the replicas' password hashes
	figures      []figure
	cacheFigures []cacheFigure
}

// figure is one scenario's line in docs/RELIABILITY.md.
type figure struct {
	scenario      string
	load          string
	requests      int
	failures      int
	unavailable   int
	unavailableLB int
	signOuts      int
	lost          int
	window        time.Duration // first to last 503; zero when there were none
	// signIns is true when the scenario signs people in under load;
	// signInsRefused counts those answered 503 (not counted in
	// unavailable, which is page views only).
	signIns        bool
	signInsRefused int
	notes          string
}

func TestClusterKeepsEveryoneSignedInThroughCrashesRestartsAndFailovers(t *testing.T) {
	began := time.Now()
	c, err := cluster.Start(t.Context(), cluster.Options{Hallpass: hallpassBin, Log: testLog{t}})
	if errors.Is(err, cluster.ErrNotInstalled) {
		if os.Getenv(testsvc.RequireBackendsEnv) != "" {
			t.Fatalf("%v (%s is set, so a missing backend fails the test)", err, testsvc.RequireBackendsEnv)
		}
		t.Skipf("%v (set %s to make this a failure)", err, testsvc.RequireBackendsEnv)
	}
	if err != nil {
		t.Fatalf("start the cluster: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop() }) // after a failure; normally the last scenario stops it
	t.Logf("cluster up on %s in %s (dir %s)", c.URL(), time.Since(began).Round(time.Millisecond), c.Dir())
	for _, u := range []string{loadUser, revokeUser, loginUser} {
		if err := c.AddUser(t.Context(), u, password, false); err != nil {
			t.Fatal(err)
		}
	}

	shared := readDeployFiles(t)
	s := &suite{c: c, tr: newTransport()}
	defer s.tr.CloseIdleConnections()
	for _, sc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"1_SignInThroughTheLoadBalancerReachesEveryReplica", s.signInReachesEveryReplica},
		{"2_RevokeOnOneReplicaSignsOutOnEvery", s.revokeOnOneReplicaSignsOutOnEvery},
		{"3_KillOneReplicaUnderLoad", s.killOneReplicaUnderLoad},
		{"4_RollingRestart", s.rollingRestart},
		{"5_KillTheRedisPrimaryUnderLoad", s.killRedisPrimaryUnderLoad},
		{"6_RedisFullyDownThenBack", s.redisFullyDownThenBack},
		{"7_RevokedSessionIsRefusedAtOnceOnEveryReplica", s.revokedSessionIsRefusedAtOnceEverywhere},
		{"8_CutTheCacheInvalidationChannelsUnderLoad", s.cutInvalidationChannelsUnderLoad},
		{"9_FailOverRedisUnderLoadWhileRevoking", s.failOverRedisWhileRevoking},
		{"10_StopLeavesNoProcess", s.stopLeavesNoProcess},
	} {
		if !t.Run(sc.name, sc.run) {
			t.Fatalf("%s failed: the later scenarios need a healthy cluster, so they do not run", sc.name)
		}
	}
	// Redis rewrites its configuration file when Sentinel reconfigures it:
	// the shared files under deploy/ must come out of the failovers as they
	// went in.
	if after := readDeployFiles(t); !maps.Equal(shared, after) {
		for name, content := range shared {
			if after[name] != content {
				t.Errorf("%s changed while the cluster ran", name)
			}
		}
	}
	elapsed := time.Since(began)
	t.Logf("suite took %s", elapsed.Round(time.Second))
	if os.Getenv(reliabilityEnv) == "1" {
		path := filepath.Join("..", "..", "docs", "RELIABILITY.md")
		if err := writeReliability(path, s.figures, s.cacheFigures, elapsed); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

// signInReachesEveryReplica: one sign-in through HAProxy, then 60 page loads
// that round robin spreads over the three replicas, each of which knows the
// session.
func (s *suite) signInReachesEveryReplica(t *testing.T) {
	c := newClient("carol-browser", s.tr)
	c.mustLogin(t, s.c.URL(), loadUser, password)
	tl := newTally()
	for range 60 {
		res, err := c.home(s.c.URL())
		tl.record(c, res, err, time.Now())
	}
	t.Log(tl)
	if tl.ok != 60 {
		t.Errorf("%d of 60 page loads were signed in, want all: %v", tl.ok, tl)
	}
	for i := range cluster.Replicas {
		if tl.servedBy[s.c.ReplicaID(i)] == 0 {
			t.Errorf("no page load reached %s: %v", s.c.ReplicaID(i), tl.servedBy)
		}
	}
	s.add(figure{scenario: "1. Sign in through HAProxy, 60 page loads", load: "1 client, 60 requests", requests: tl.requests,
		failures: tl.failures, unavailable: tl.unavailable, unavailableLB: tl.unavailableLB, signOuts: tl.signOuts,
		notes: fmt.Sprintf("served by app1/app2/app3: %d/%d/%d, all signed in",
			tl.servedBy[s.c.ReplicaID(0)], tl.servedBy[s.c.ReplicaID(1)], tl.servedBy[s.c.ReplicaID(2)])})
}

// revokeOnOneReplicaSignsOutOnEvery: a session every replica has served is
// revoked from another device on app1; its very next request on each replica
// is a sign-out. The revoked cookie is resent unchanged, as a second tab or
// an attacker holding it would.
func (s *suite) revokeOnOneReplicaSignsOutOnEvery(t *testing.T) {
	phone, laptop := newClient("dana-phone", s.tr), newClient("dana-laptop", s.tr)
	phone.mustLogin(t, s.c.URL(), revokeUser, password)
	laptop.mustLogin(t, s.c.URL(), revokeUser, password)
	requests := 2
	for i := range cluster.Replicas {
		res, err := phone.home(s.c.ReplicaURL(i))
		requests++
		if err != nil || res.status != http.StatusOK {
			t.Fatalf("phone on %s before the revocation: %d %v", s.c.ReplicaID(i), res.status, err)
		}
	}
	res, err := laptop.do(http.MethodPost, s.c.ReplicaURL(0)+"/account/sessions/revoke-others", url.Values{}, false)
	requests++
	if err != nil || res.status != http.StatusSeeOther {
		t.Fatalf("revoke the other sessions on %s: %d %v\n%.500s", s.c.ReplicaID(0), res.status, err, res.body)
	}
	signOuts := 0
	var reasons []string
	for i := range cluster.Replicas {
		res, err := phone.do(http.MethodGet, s.c.ReplicaURL(i)+"/", nil, true)
		requests++
		if err != nil || !signedOut(res) {
			t.Errorf("revoked phone on %s: %d %v, want a 303 to /login", s.c.ReplicaID(i), res.status, err)
			continue
		}
		signOuts++
		if u, err := url.Parse(res.location); err == nil {
			reasons = append(reasons, u.Query().Get("reason"))
		}
	}
	for i := range cluster.Replicas {
		res, err := laptop.home(s.c.ReplicaURL(i))
		requests++
		if err != nil || res.status != http.StatusOK {
			t.Errorf("the laptop that revoked, on %s: %d %v, want still signed in", s.c.ReplicaID(i), res.status, err)
		}
	}
	t.Logf("revoked session refused on %d of 3 replicas, reasons %q", signOuts, reasons)
	s.add(figure{scenario: "2. Revoke a session on app1", load: "2 devices, direct to each replica", requests: requests,
		notes: fmt.Sprintf("the revoked device's next request was a sign-out on %d of 3 replicas (reason %q); the revoking device stayed signed in everywhere",
			signOuts, strings.Join(slices.Compact(reasons), ","))})
}

// killOneReplicaUnderLoad: app2 is killed with SIGKILL in the middle of a
// load. HAProxy retries what it had sent there (a GET that got no answer, a
// refused connection) on another replica until its health checks take app2
// out, so no request fails and nobody is signed out.
func (s *suite) killOneReplicaUnderLoad(t *testing.T) {
	const (
		duration = 10 * time.Second
		killAt   = 3 * time.Second
		victim   = 1
	)
	for i := range loadSize {
		c := newClient(fmt.Sprintf("carol-%d", i), s.tr)
		c.mustLogin(t, s.c.URL(), loadUser, password)
		s.loaders = append(s.loaders, c)
	}
	start := time.Now()
	l := startLoad(s.c.URL(), s.loaders)
	time.Sleep(killAt) // the scenario's schedule: the crash comes mid-load
	if err := s.c.KillReplica(victim); err != nil {
		t.Fatal(err)
	}
	time.Sleep(duration - time.Since(start)) // the rest of the load
	tl := l.finish()
	t.Log(tl)
	if err := s.c.StartReplica(t.Context(), victim); err != nil {
		t.Fatal(err)
	}
	lost := s.lostSessions(t, s.loaders)
	s.check(t, tl, lost, false)
	s.add(figure{scenario: "3. kill -9 app2 under load", load: fmt.Sprintf("%d clients × %s", loadSize, duration),
		requests: tl.requests, failures: tl.failures, unavailable: tl.unavailable, unavailableLB: tl.unavailableLB,
		signOuts: tl.signOuts, lost: lost,
		notes: fmt.Sprintf("app2 killed %s in, restarted after the load; app1/app2/app3 served %d/%d/%d signed-in pages",
			killAt, tl.servedBy[s.c.ReplicaID(0)], tl.servedBy[s.c.ReplicaID(1)], tl.servedBy[s.c.ReplicaID(2)])})
}

// rollingRestart: every replica in turn gets SIGTERM (it reports not-ready,
// HAProxy takes it out, it drains and exits), is started again and waited
// for until HAProxy sends it traffic, all under load.
func (s *suite) rollingRestart(t *testing.T) {
	before := s.replicaPIDs()
	start := time.Now()
	l := startLoad(s.c.URL(), s.loaders)
	for i := range cluster.Replicas {
		if err := s.c.RestartReplica(t.Context(), i); err != nil {
			l.finish()
			t.Fatal(err)
		}
	}
	tl := l.finish()
	took := time.Since(start)
	t.Log(tl)
	for i, pid := range s.replicaPIDs() {
		if pid == before[i] {
			t.Errorf("%s was not restarted (pid %d)", s.c.ReplicaID(i), pid)
		}
	}
	lost := s.lostSessions(t, s.loaders)
	s.check(t, tl, lost, false)
	s.add(figure{scenario: "4. Rolling restart (SIGTERM, drain, start) of app1, app2, app3", load: fmt.Sprintf("%d clients × %s", loadSize, took.Round(time.Second)),
		requests: tl.requests, failures: tl.failures, unavailable: tl.unavailable, unavailableLB: tl.unavailableLB,
		signOuts: tl.signOuts, lost: lost,
		notes: fmt.Sprintf("drain delay %s; each replica waited for until HAProxy had it UP again", cluster.DefaultDrainDelay)})
}

// signInsBackAfterPromotion bounds how long after the promotion (every
// Sentinel naming the new primary) sign-ins may still be refused in scenario
// 5. The leading Sentinel tells the other replica to follow the new primary
// as soon as it sees the promotion, the replica resyncs partially at once,
// and the replicas hear +switch-master: measured 0.2 s after it, sometimes
// before (the other Sentinels learn of the promotion up to 2 s after the
// leader). Measured from the promotion rather than the kill, so a Sentinel
// election that has to be tried again does not make the bound flaky.
const signInsBackAfterPromotion = 2 * time.Second

// killRedisPrimaryUnderLoad: the Redis primary is killed with SIGKILL while
// signed-in clients load pages and new clients sign in. Sentinel promotes
// one replica and has the other follow it; meanwhile signed-in pages are read
// from a Redis replica (and, once it is promoted, from the new primary): not
// one page view gets a 503, a 500 or a sign-out. Sign-ins are refused (503,
// with a page that says sign-ins are paused) until a replica follows the new
// primary, because each must be confirmed by a replica; then they work
// again, with the old primary still down (it is started again only then).
// Every sign-in acknowledged before, during or after survives, and no
// replica restarts.
func (s *suite) killRedisPrimaryUnderLoad(t *testing.T) {
	ctx := t.Context()
	before := s.replicaPIDs()
	l := startLoad(s.c.URL(), s.loaders)
	logins := startLoginStream(s.tr, s.c.URL(), loginUser, password, 300*time.Millisecond)
	stopAll := func() *tally {
		logins.finish()
		return l.finish()
	}
	time.Sleep(2 * time.Second) // the scenario's schedule: sign-ins acknowledged before the crash

	killed := time.Now()
	since := func(at time.Time) string { return fmt.Sprintf("%.1f s", at.Sub(killed).Seconds()) }
	old, err := s.c.KillRedisPrimary()
	if err != nil {
		stopAll()
		t.Fatal(err)
	}
	promoted, err := s.c.WaitForFailover(ctx, old)
	if err != nil {
		stopAll()
		t.Fatal(err)
	}
	promotedAt := time.Now()
	if _, err := s.waitOK(t, l.tally, promotedAt); err != nil {
		stopAll()
		t.Fatal(err)
	}
	// Sign-ins come back with the old primary still down: the replica that
	// was not promoted follows the new primary and confirms them.
	var signInsBack time.Time
	err = testkit.PollUntil(time.Minute, func() error {
		var ok bool
		if signInsBack, ok = logins.ackAfterRefusals(killed); !ok {
			return errors.New("no sign-in acknowledged since the refusals after the kill")
		}
		return nil
	})
	if err != nil {
		stopAll()
		t.Fatalf("sign-ins never came back with the old primary down (did the other replica follow %s?): %v\n%s", promoted, err, s.replicaWarnings())
	}
	// Then the old primary comes back; the cluster starts it as a replica
	// of the new one, as Sentinel would reconfigure it.
	restoring := time.Now()
	if err := s.c.RestoreRedis(ctx); err != nil {
		stopAll()
		t.Fatal(err)
	}
	rejoined := time.Now()
	err = s.c.WaitHealthy(ctx)
	time.Sleep(2 * time.Second) // the scenario's schedule: load on the recovered cluster
	tl := stopAll()
	t.Log(tl)
	if err != nil {
		t.Fatalf("the session store did not settle after the old primary came back: %v", err)
	}
	refusals := "none"
	if logins.refused > 0 {
		refusals = fmt.Sprintf("from %s to %s", since(logins.firstRefused), since(logins.lastRefused))
	}
	timeline := fmt.Sprintf("Sentinel promoted a replica at %s (every Sentinel naming it); sign-ins refused (503) %s; first sign-in acknowledged again at %s, the old primary still down; started again at %s, it was a replica in sync at %s",
		since(promotedAt), refusals, since(signInsBack), since(restoring), since(rejoined))
	t.Logf("primary %s killed, %s promoted. After the kill: %s", old, promoted, timeline)
	if late := signInsBack.Sub(promotedAt); late > signInsBackAfterPromotion {
		t.Errorf("sign-ins came back %s after the promotion, over %s: the replica that was not promoted should follow the new primary within about a second",
			late.Round(100*time.Millisecond), signInsBackAfterPromotion)
	}
	t.Logf("sign-ins: %d attempts, %d acknowledged, %d refused with 503, failed: %q", logins.attempts, len(logins.acked), logins.refused, logins.failed)
	if len(logins.failed) > 0 {
		t.Errorf("sign-ins failed (want 303 or 503 only): %q", logins.failed)
	}
	if len(logins.unclear) > 0 {
		t.Errorf("%d of %d refused sign-ins did not say that sign-ins are paused: %q", len(logins.unclear), logins.refused, logins.unclear)
	}
	s.checkNotRestarted(t, before)
	lost := s.lostSessions(t, append(slices.Clone(s.loaders), logins.acked...))
	// Page views only read a session: a replica of Redis answers them while
	// no primary can be reached, so not one may get a 503.
	if tl.unavailable > 0 {
		t.Logf("why page views got 503:\n%s", s.replicaWarnings())
	}
	s.check(t, tl, lost, false)
	s.add(figure{scenario: "5. kill -9 the Redis primary under load", load: fmt.Sprintf("%d clients + 1 sign-in every 300 ms, %s", loadSize, time.Since(killed.Add(-2*time.Second)).Round(time.Second)),
		requests: tl.requests + logins.attempts, failures: tl.failures + len(logins.failed), unavailable: tl.unavailable,
		unavailableLB: tl.unavailableLB, signOuts: tl.signOuts, lost: lost, window: tl.window(),
		signIns: true, signInsRefused: logins.refused,
		notes: fmt.Sprintf("times after the kill: %s. Page views: %d, every one served signed in. Sign-ins: %d attempts, %d acknowledged (all still signed in afterwards), %d refused with 503 while no replica could confirm them, each page saying that signing in is paused. No replica restarted",
			timeline, tl.requests, logins.attempts, len(logins.acked), logins.refused)})
}

// redisFullyDownThenBack: the whole session store (every server and the
// Sentinels) stops under load for a few seconds and comes back. Meanwhile
// pages get 503; afterwards every session is still there and the replicas,
// never restarted, serve again.
func (s *suite) redisFullyDownThenBack(t *testing.T) {
	const outage = 5 * time.Second
	ctx := t.Context()
	before := s.replicaPIDs()
	l := startLoad(s.c.URL(), s.loaders)
	time.Sleep(2 * time.Second) // the scenario's schedule: load before the outage
	stopping := time.Now()
	since := func(at time.Time) string { return fmt.Sprintf("%.1f s", at.Sub(stopping).Seconds()) }
	if err := s.c.StopRedis(); err != nil {
		l.finish()
		t.Fatal(err)
	}
	stopped := time.Now()
	time.Sleep(outage) // the outage itself
	starting := time.Now()
	if err := s.c.StartRedis(ctx); err != nil {
		l.finish()
		t.Fatal(err)
	}
	settled := time.Now()
	backOK, err := s.waitOK(t, l.tally, starting)
	if err == nil {
		err = s.c.WaitHealthy(ctx)
	}
	time.Sleep(2 * time.Second) // the scenario's schedule: load on the recovered cluster
	tl := l.finish()
	t.Log(tl)
	if err != nil {
		t.Fatal(err)
	}
	timeline := fmt.Sprintf("all stopped at %s; started again at %s, servers and Sentinels settled at %s; 503s from %s to %s; first signed-in page at %s",
		since(stopped), since(starting), since(settled), since(tl.first503), since(tl.last503), since(backOK))
	t.Logf("after the stop began: %s", timeline)
	s.checkNotRestarted(t, before)
	lost := s.lostSessions(t, s.loaders)
	s.check(t, tl, lost, true)
	if tl.unavailable == 0 {
		t.Errorf("no 503 while Redis was down: %v", tl)
	}
	newcomer := newClient("carol-after-outage", s.tr)
	newcomer.mustLogin(t, s.c.URL(), loadUser, password)
	s.add(figure{scenario: "6. Redis (servers and Sentinels) down, then back", load: fmt.Sprintf("%d clients, %s outage", loadSize, outage),
		requests: tl.requests, failures: tl.failures, unavailable: tl.unavailable, unavailableLB: tl.unavailableLB,
		signOuts: tl.signOuts, lost: lost, window: tl.window(),
		notes: fmt.Sprintf("times after the stop began: %s. Sign-in works again; no replica restarted", timeline)})
}

// stopLeavesNoProcess: Stop ends every process of the cluster; pgrep finds
// none of them.
func (s *suite) stopLeavesNoProcess(t *testing.T) {
	procs := s.c.Processes()
	if len(procs) != 1+3+3+cluster.Replicas+1 {
		t.Errorf("cluster lists %d processes, want 11 (postgres, 3 redis, 3 sentinels, 3 replicas, haproxy): %v", len(procs), procs)
	}
	dir := s.c.Dir()
	if err := s.c.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, p := range procs {
		if err := syscall.Kill(p.PID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after Stop: %v", p.Name, p.PID, err)
		}
		if out, err := exec.Command("pgrep", "-a", "-f", p.Pattern).Output(); err == nil || len(out) > 0 {
			t.Errorf("pgrep -f %q finds %s after Stop: %s", p.Pattern, p.Name, out)
		}
	}
	if out, err := exec.Command("pgrep", "-a", "-f", dir).Output(); err == nil || len(out) > 0 {
		t.Errorf("pgrep -f %s finds processes after Stop: %s", dir, out)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cluster's directory %s is left behind: %v", dir, err)
	}
}

// readDeployFiles returns the configuration files the cluster shares with
// docker-compose.yml, by path.
func readDeployFiles(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "deploy", "redis", "*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no files under deploy/redis: %v", err)
	}
	paths = append(paths, filepath.Join("..", "..", "deploy", "haproxy", "haproxy.cfg"))
	files := map[string]string{}
	for _, p := range paths {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = string(b)
	}
	return files
}

// check asserts what every load scenario promises: no failed request, no
// sign-out, no lost session; 503s only where an outage allows them.
func (s *suite) check(t *testing.T, tl *tally, lost int, outage bool) {
	t.Helper()
	if tl.failures > 0 {
		t.Errorf("%d requests failed (connection errors or 5xx other than 503): %v", tl.failures, tl)
	}
	if tl.signOuts > 0 {
		t.Errorf("%d sign-outs of %d clients: %v", tl.signOuts, len(tl.signedOut), tl)
	}
	if lost > 0 {
		t.Errorf("%d sessions lost", lost)
	}
	if !outage && tl.unavailable > 0 {
		t.Errorf("%d × 503 with Redis and the database up: %v", tl.unavailable, tl)
	}
}

// lostSessions counts clients that are no longer signed in through the load
// balancer. A 503 is retried for a while: the cluster may still be
// finishing its recovery.
func (s *suite) lostSessions(t *testing.T, clients []*client) int {
	t.Helper()
	lost := 0
	for _, c := range clients {
		var res response
		var err error
		_ = testkit.PollUntil(30*time.Second, func() error {
			if res, err = c.home(s.c.URL()); err == nil && res.status == http.StatusServiceUnavailable {
				return errors.New("503")
			}
			return nil
		})
		if err != nil || res.status != http.StatusOK {
			lost++
			t.Errorf("%s is no longer signed in: %d %v (location %q)", c.name, res.status, err, res.location)
		}
	}
	return lost
}

// waitOK waits until the load has had a signed-in page after since, and
// returns when the first one came.
func (s *suite) waitOK(t *testing.T, tl *tally, since time.Time) (time.Time, error) {
	t.Helper()
	var at time.Time
	err := testkit.PollUntil(time.Minute, func() error {
		var ok bool
		if at, ok = tl.firstOKAfter(since); !ok {
			return errors.New("no signed-in page yet")
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("no signed-in page within a minute: %v", tl)
	}
	return at, nil
}

func (s *suite) replicaPIDs() []int {
	pids := make([]int, cluster.Replicas)
	for i := range pids {
		pids[i] = s.c.ReplicaPID(i)
	}
	return pids
}

// checkNotRestarted asserts that the replicas are the processes they were.
func (s *suite) checkNotRestarted(t *testing.T, before []int) {
	t.Helper()
	if after := s.replicaPIDs(); !slices.Equal(before, after) {
		t.Errorf("replica PIDs changed from %v to %v: a replica restarted", before, after)
	}
}

func (s *suite) add(f figure) { s.figures = append(s.figures, f) }

// cacheFigure is one cache scenario's line in docs/RELIABILITY.md's table of
// revocations.
type cacheFigure struct {
	scenario    string
	revocations *revocations
	notes       string
}

func (s *suite) addCache(f cacheFigure) { s.cacheFigures = append(s.cacheFigures, f) }

// testLog passes the cluster's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
