// Command benchmarks is the driver behind `make bench`: it starts Hallpass
// (one replica with Redis and its session cache, as shipped; one with Redis
// and the cache turned off; one with in-process sessions; and the
// three-replica cluster behind HAProxy when internal/cluster provides it),
// the stateless JWT baseline in bench/jwtbaseline, and the limits
// (redis-benchmark GET, a response HAProxy answers itself); loads each with
// bench/load at a few concurrencies, a few times over, interleaved so
// noise on the shared machine hits every scenario alike; and writes
// docs/BENCHMARKS.md with the medians and PNG charts in docs/benchmarks/.
// It also times how soon a session signed out on one replica is refused by
// another that had it in its cache.
//
// Figures that Go benchmarks already measure (Redis memory per session,
// forced logout at scale, the argon2id hash) are read from the output of
// the commands the Makefile runs just before, and run here when missing.
//
// Everything listens on 127.0.0.1 only and stops when the driver ends.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hallpass/hallpass/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks:", err)
		os.Exit(1)
	}
}

// options are the driver's flags.
type options struct {
	repo, out, charts, goTestDir, work string
	concurrency, loginConcurrency      []int
	warmup, duration, loginDuration    time.Duration
	reps, revocations                  int
	timeout                            time.Duration
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("benchmarks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var conc, loginConc string
	// The defaults suit running from bench/, the module's directory
	// (`go -C bench run ./cmd/benchmarks`); make bench passes them all.
	fs.StringVar(&o.repo, "repo", "..", "repository root")
	fs.StringVar(&o.out, "out", "../docs/BENCHMARKS.md", "report to write")
	fs.StringVar(&o.charts, "charts", "../docs/benchmarks", "directory for the PNG charts")
	fs.StringVar(&o.goTestDir, "gotest-dir", "../bin/bench", "where the Makefile saved the Go benchmarks' output (missing ones are run)")
	fs.StringVar(&o.work, "work", "", "directory for binaries, databases and logs (default: a new temporary one, removed afterwards)")
	fs.StringVar(&conc, "c", "1,8,32", "concurrency levels for page views")
	fs.StringVar(&loginConc, "login-c", "1,2,4", "concurrency levels for sign-ins")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each measurement")
	fs.DurationVar(&o.duration, "d", 5*time.Second, "measured time per run")
	fs.DurationVar(&o.loginDuration, "login-d", 4*time.Second, "measured time per sign-in run")
	fs.IntVar(&o.reps, "reps", 3, "runs of each measurement; the report gives the median")
	fs.IntVar(&o.revocations, "revocations", 200, "sign-out → refusal rounds across two replicas")
	fs.DurationVar(&o.timeout, "timeout", 12*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err1, err2 error
	o.concurrency, err1 = parseInts(conc)
	o.loginConcurrency, err2 = parseInts(loginConc)
	if err := errors.Join(err1, err2); err != nil {
		return o, err
	}
	if o.reps < 1 || o.revocations < 1 || o.duration <= 0 || o.loginDuration <= 0 {
		return o, errors.New("-reps, -revocations, -d and -login-d must be positive")
	}
	// Absolute, as the cluster and HAProxy read files from it while running
	// in directories of their own.
	abs, err := filepath.Abs(o.repo)
	if err != nil {
		return o, fmt.Errorf("-repo: %w", err)
	}
	o.repo = abs
	return o, nil
}

func parseInts(s string) ([]int, error) {
	var v []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad concurrency %q", f)
		}
		v = append(v, n)
	}
	return v, nil
}

const (
	benchUser     = "bench"
	benchPassword = "correct horse battery staple"
	loginUsers    = 16
	homeMarker    = "Hello, " + benchUser
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	began := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "[%5.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, a...))
	}
	rep := &report{started: began, opts: o, machine: machineInfo()}

	if err := os.MkdirAll(o.goTestDir, 0o755); err != nil {
		return err
	}
	logf("Go benchmarks (memory per session, forced logout, argon2id): reading %s", o.goTestDir)
	if rep.goBench, err = goBenchResults(ctx, o.repo, o.goTestDir, stderr); err != nil {
		return err
	}

	work := o.work
	if work == "" {
		if work, err = os.MkdirTemp("", "hallpass-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	// The cluster's PostgreSQL runs as its own user, who must reach its
	// directory inside this one.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	logf("building hallpass and the JWT baseline into %s", work)
	hallpassBin, baselineBin := filepath.Join(work, "hallpass"), filepath.Join(work, "jwtbaseline")
	// The baseline is in the bench module (bench/go.mod), Hallpass in the
	// product's: each is built from its own module's directory.
	for _, b := range []struct{ bin, dir, pkg string }{
		{hallpassBin, o.repo, "./cmd/hallpass"},
		{baselineBin, filepath.Join(o.repo, "bench"), "./jwtbaseline"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, b.pkg)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s in %s: %w\n%s", b.pkg, b.dir, err, out)
		}
	}

	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	// Each Redis replica has a Redis of its own, so INFO commandstats over a
	// run counts that replica's commands only (the caching one's heartbeats
	// go on between runs).
	logf("starting Redis, three replicas (Redis with the session cache, Redis without, memory) and the JWT baseline")
	rds, err := startRedis(ctx, work, "redis")
	if err != nil {
		return err
	}
	stops = append(stops, rds.stop)
	rep.machine.redis = redisVersion(rds.addr)
	// As shipped: HALLPASS_SESSION_CACHE is left at its default (true).
	withRedis, err := startHallpass(ctx, hallpassBin, work, "hallpass-redis", map[string]string{
		"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(work, "redis-replica.db"),
		"HALLPASS_REDIS_URL":    "redis://" + rds.addr,
	})
	if err != nil {
		return err
	}
	stops = append(stops, withRedis.stop)
	rdsNoCache, err := startRedis(ctx, work, "redis-nocache")
	if err != nil {
		return err
	}
	stops = append(stops, rdsNoCache.stop)
	noCache, err := startHallpass(ctx, hallpassBin, work, "hallpass-redis-nocache", map[string]string{
		"HALLPASS_DATABASE_URL":  "sqlite:" + filepath.Join(work, "redis-nocache-replica.db"),
		"HALLPASS_REDIS_URL":     "redis://" + rdsNoCache.addr,
		"HALLPASS_SESSION_CACHE": "false",
	})
	if err != nil {
		return err
	}
	stops = append(stops, noCache.stop)
	inMemory, err := startHallpass(ctx, hallpassBin, work, "hallpass-memory", map[string]string{
		"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(work, "memory-replica.db"),
	})
	if err != nil {
		return err
	}
	stops = append(stops, inMemory.stop)
	baseline, err := startBaseline(ctx, baselineBin, work)
	if err != nil {
		return err
	}
	stops = append(stops, baseline.stop)
	for _, r := range []*hallpassReplica{withRedis, noCache, inMemory} {
		if err := r.addUser(ctx, hallpassBin, benchUser, benchPassword); err != nil {
			return err
		}
	}
	for i := 1; i <= loginUsers; i++ {
		if err := withRedis.addUser(ctx, hallpassBin, fmt.Sprintf("%s-login-%d", benchUser, i), benchPassword); err != nil {
			return err
		}
	}

	// Scenario 1, or a stand-in when the cluster cannot run here.
	logf("starting the 3-replica cluster (internal/cluster)")
	var proxyURL, statsURL string
	var proxyPIDs, staticPIDs []int
	cluster, err := startCluster(ctx, hallpassBin, o.repo, work, stderr)
	switch {
	case err == nil:
		stops = append(stops, cluster.Close)
		rep.cluster = true
		if err := cluster.AddUser(ctx, benchUser, benchPassword); err != nil {
			return err
		}
		proxyURL, statsURL, proxyPIDs, staticPIDs = cluster.URL, cluster.StatsURL, cluster.PIDs, []int{cluster.HAProxyPID}
	case errors.Is(err, errNoCluster):
		logf("%v", err)
		rep.clusterMissing = err.Error()
		hp, err := startHAProxy(ctx, o.repo, work, [3]string{hostPort(withRedis.url), hostPort(withRedis.url), hostPort(withRedis.url)})
		if err != nil {
			return err
		}
		stops = append(stops, hp.stop)
		proxyURL, statsURL = hp.url, hp.statsURL
		proxyPIDs, staticPIDs = []int{hp.pid(), withRedis.pid(), rds.pid()}, []int{hp.pid()}
	default:
		return err
	}
	rep.machine.haproxy = haproxyVersion(ctx)

	logf("signing in")
	redisCookie, setCookie, err := signIn(withRedis.url, benchUser, benchPassword)
	if err != nil {
		return err
	}
	rep.sessionCookie, rep.sessionSetCookie = redisCookie, setCookie
	proxyCookie := redisCookie // the stand-in's replica shares this Redis
	if rep.cluster {
		if proxyCookie, _, err = signIn(proxyURL, benchUser, benchPassword); err != nil {
			return err
		}
	}
	noCacheCookie, _, err := signIn(noCache.url, benchUser, benchPassword)
	if err != nil {
		return err
	}
	memoryCookie, _, err := signIn(inMemory.url, benchUser, benchPassword)
	if err != nil {
		return err
	}
	jwtCookie, setCookie, err := signIn(baseline.url, benchUser, "")
	if err != nil {
		return err
	}
	rep.jwtCookie, rep.jwtSetCookie = jwtCookie, setCookie

	scenarios := []scenario{
		{key: "replica-redis", label: "One replica, Redis + session cache (default)", cfg: readConfig(withRedis.url+"/", redisCookie, homeMarker),
			redisAddr: rds.addr, monitor: true, pids: []int{withRedis.pid(), rds.pid()}},
		{key: "replica-redis-nocache", label: "One replica, Redis, no cache (HALLPASS_SESSION_CACHE=false)", cfg: readConfig(noCache.url+"/", noCacheCookie, homeMarker),
			redisAddr: rdsNoCache.addr, pids: []int{noCache.pid(), rdsNoCache.pid()}},
		{key: "replica-memory", label: "One replica, memory", cfg: readConfig(inMemory.url+"/", memoryCookie, homeMarker),
			pids: []int{inMemory.pid()}},
		{key: "jwt", label: "Stateless JWT baseline", cfg: readConfig(baseline.url+"/", jwtCookie, homeMarker),
			pids: []int{baseline.pid()}},
		{key: "haproxy-static", label: "HAProxy static response (limit)", cfg: load.Config{URL: statsURL + "/healthz", ExpectBody: []byte("ok")},
			pids: staticPIDs},
	}
	// The replicas behind HAProxy cache sessions too: Redis hears little,
	// so MONITOR costs nothing worth counting.
	proxied := scenario{key: "cluster", label: "Cluster: HAProxy → 3 replicas, Redis via Sentinel", cfg: readConfig(proxyURL+"/", proxyCookie, homeMarker),
		pids: proxyPIDs, monitor: true}
	if rep.cluster {
		proxied.redisAddr = cluster.RedisPrimary
	} else {
		proxied.key, proxied.label = "haproxy-1", "Stand-in: HAProxy → 1 replica, Redis"
		proxied.redisAddr = rds.addr
	}
	scenarios = append([]scenario{proxied}, scenarios...)

	samples := map[string]map[int][]sample{}
	for _, sc := range scenarios {
		samples[sc.key] = map[int][]sample{}
	}
	for r := 1; r <= o.reps; r++ {
		for _, c := range o.concurrency {
			for _, sc := range scenarios {
				s, err := measure(ctx, sc, c, o.warmup, o.duration)
				if err != nil {
					return err
				}
				logf("run %d/%d %-15s %s", r, o.reps, sc.key, s.res)
				samples[sc.key][c] = append(samples[sc.key][c], s)
			}
		}
	}
	for _, sc := range scenarios {
		series := series{key: sc.key, label: sc.label}
		for _, c := range o.concurrency {
			series.points = append(series.points, summarize(c, samples[sc.key][c]))
		}
		rep.reads = append(rep.reads, series)
	}

	// Revocation → refusal: two replicas sharing Redis, addressed directly.
	revA, revB, where := "", "", ""
	if rep.cluster {
		revA, revB = cluster.Replicas[0], cluster.Replicas[1]
		where = "two of the cluster's replicas (Redis via Sentinel, WAIT 1), addressed directly, the third caching too"
	} else {
		second, err := startHallpass(ctx, hallpassBin, work, "hallpass-redis-b", withRedis.env)
		if err != nil {
			return err
		}
		stops = append(stops, second.stop)
		revA, revB = withRedis.url, second.url
		where = "the single replica with Redis and a second one started on the same Redis and database (the cluster could not run)"
	}
	logf("revocation → refusal: %d rounds, sign out on %s, probe %s", o.revocations, revA, revB)
	if rep.revocation, err = measureRevocation(ctx, revA, revB, where, o.revocations); err != nil {
		return fmt.Errorf("revocation → refusal: %w", err)
	}
	rv := rep.revocation
	logf("revocation → refusal: %d rounds, %d served after the sign-out answered; refusal after p50 %s, p99 %s, max %s; sign-out p50 %s, p99 %s",
		rv.rounds, rv.servedAfter, quantile(rv.toRefusal, 0.5), quantile(rv.toRefusal, 0.99), quantile(rv.toRefusal, 1),
		quantile(rv.revoke, 0.5), quantile(rv.revoke, 0.99))

	logf("sign-ins (argon2id) on the Redis replica")
	var bodies [][]byte
	for i := 1; i <= loginUsers; i++ {
		bodies = append(bodies, []byte(url.Values{"username": {fmt.Sprintf("%s-login-%d", benchUser, i)}, "password": {benchPassword}}.Encode()))
	}
	login := scenario{key: "login", label: "Sign-in, one replica, Redis", redisAddr: rds.addr, pids: []int{withRedis.pid()}, cfg: load.Config{
		URL: withRedis.url + "/login", Method: http.MethodPost, Bodies: bodies, ExpectStatus: http.StatusSeeOther,
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
	}}
	loginSamples := map[int][]sample{}
	var hashWalls, hashCPUs []time.Duration
	for r := 1; r <= o.reps; r++ {
		walls, cpus, err := hashTimes(ctx, 9)
		if err != nil {
			return err
		}
		logf("run %d/%d argon2id hash alone: %s (CPU %s)", r, o.reps, fmtDur(medianDur(walls)), fmtDur(medianDur(cpus)))
		hashWalls, hashCPUs = append(hashWalls, walls...), append(hashCPUs, cpus...)
		for _, c := range o.loginConcurrency {
			s, err := measure(ctx, login, c, o.warmup, o.loginDuration)
			if err != nil {
				return err
			}
			logf("run %d/%d %-15s %s", r, o.reps, login.key, s.res)
			loginSamples[c] = append(loginSamples[c], s)
		}
	}
	rep.hashWall, rep.hashCPU = medianDur(hashWalls), medianDur(hashCPUs)
	rep.login = series{key: login.key, label: login.label}
	for _, c := range o.loginConcurrency {
		rep.login.points = append(rep.login.points, summarize(c, loginSamples[c]))
	}

	redisTargets := []struct{ label, addr string }{{"Redis of the single replica", rds.addr}}
	if rep.cluster {
		redisTargets = append(redisTargets, struct{ label, addr string }{"Cluster primary (AOF, one replica)", cluster.RedisPrimary})
	}
	for _, t := range redisTargets {
		logf("redis-benchmark GET against %s (%s)", t.addr, t.label)
		for _, c := range o.concurrency {
			var runs []redisBenchResult
			for range o.reps {
				n := max(20_000, min(c*10_000, 150_000))
				res, err := redisBenchmarkGET(ctx, t.addr, c, n)
				if err != nil {
					return err
				}
				logf("redis-benchmark GET c=%d: %.0f req/s, p50 %s, p99 %s", c, res.rps, res.p50, res.p99)
				runs = append(runs, res)
			}
			m := medianRedisBench(runs)
			m.target = t.label
			rep.redisBench = append(rep.redisBench, m)
		}
	}

	rep.finished = time.Now()
	logf("writing %s and charts in %s", o.out, o.charts)
	if err := os.MkdirAll(o.charts, 0o755); err != nil {
		return err
	}
	if rep.charts, err = drawCharts(rep, o.charts); err != nil {
		return err
	}
	if err := os.WriteFile(o.out, []byte(rep.markdown(o.out)), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.summary())
	logf("done")
	return nil
}

func hostPort(rawURL string) string {
	u, _ := url.Parse(rawURL)
	return u.Host
}

func medianRedisBench(runs []redisBenchResult) redisBenchResult {
	var rps []float64
	var p50, p99 []time.Duration
	for _, r := range runs {
		rps = append(rps, r.rps)
		p50 = append(p50, r.p50)
		p99 = append(p99, r.p99)
	}
	return redisBenchResult{concurrency: runs[0].concurrency, rps: median(rps), p50: medianDur(p50), p99: medianDur(p99)}
}

// signIn posts the sign-in form and returns the "name=value" session
// cookie the response sets (Hallpass's __Host-hallpass or the baseline's
// __Host-token; Hallpass also sets a device cookie, which is not it), and
// the whole Set-Cookie header.
func signIn(base, name, password string) (cookie, setCookie string, err error) {
	c := http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"username": {name}}
	if password != "" {
		form.Set("password", password)
	}
	res, err := c.PostForm(base+"/login", form)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusSeeOther {
		return "", "", fmt.Errorf("sign in at %s: status %d", base, res.StatusCode)
	}
	for _, sc := range res.Header.Values("Set-Cookie") {
		pair, _, _ := strings.Cut(sc, ";")
		if v, ok := strings.CutPrefix(pair, "__Host-"); ok && !strings.HasSuffix(v, "=") && !strings.HasPrefix(v, "hallpass-device=") {
			return pair, sc, nil
		}
	}
	return "", "", fmt.Errorf("sign in at %s: no __Host- cookie in %q", base, res.Header.Values("Set-Cookie"))
}
