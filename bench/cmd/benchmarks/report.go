package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// series is one scenario's points, by concurrency.
type series struct {
	key, label string
	points     []point
}

// report is everything one run measured.
type report struct {
	started, finished time.Time
	opts              options
	machine           machine
	goBench           benchFigures
	cluster           bool
	clusterMissing    string

	sessionCookie, sessionSetCookie string
	jwtCookie, jwtSetCookie         string

	reads []series
	login series
	// hashWall and hashCPU are one argon2id hash timed between the
	// sign-in runs.
	hashWall, hashCPU time.Duration
	redisBench        []redisBenchResult
	revocation        revocation
	charts            []chart
}

func (r *report) series(key string) *series {
	for i := range r.reads {
		if r.reads[i].key == key {
			return &r.reads[i]
		}
	}
	return nil
}

func (s *series) at(c int) *point {
	if s == nil {
		return nil
	}
	for i := range s.points {
		if s.points[i].concurrency == c {
			return &s.points[i]
		}
	}
	return nil
}

// target is one of the targets and how this run fared.
type target struct {
	what, measured string
	met, known     bool
}

// pairedRatio is the median over the rounds of a's throughput over b's in
// the same round, and the lowest and highest of those ratios. Each round
// measures the scenarios one after the other, so a burst of other work on
// the shared machine lands on both of a pair more often than on the median
// of each taken apart.
func pairedRatio(a, b *point) (ratio, lo, hi float64, ok bool) {
	if a == nil || b == nil {
		return 0, 0, 0, false
	}
	var v []float64
	for i := range min(len(a.rounds), len(b.rounds)) {
		if b.rounds[i] > 0 {
			v = append(v, a.rounds[i]/b.rounds[i])
		}
	}
	if len(v) == 0 {
		return 0, 0, 0, false
	}
	return median(v), slices.Min(v), slices.Max(v), true
}

// ratios returns a's throughput over b's at each concurrency both have, as
// "0.97× at c=1 (rounds 0.90–1.02), …", and the lowest median.
func (r *report) ratios(a, b *series, spread bool) (text string, worst float64, known bool) {
	var parts []string
	for _, c := range r.opts.concurrency {
		ratio, lo, hi, ok := pairedRatio(a.at(c), b.at(c))
		if !ok {
			continue
		}
		if !known || ratio < worst {
			worst = ratio
		}
		known = true
		part := fmt.Sprintf("%.2f× at c=%d", ratio, c)
		if spread && len(a.at(c).rounds) > 1 {
			part += fmt.Sprintf(" (rounds %.2f–%.2f)", lo, hi)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", "), worst, known
}

// cachedKeys are the scenarios whose replicas answer page views from their
// session caches, and whose Redis traffic MONITOR splits.
var cachedKeys = []string{"replica-redis", "cluster", "haproxy-1"}

// shortNames name the caching scenarios in the targets table.
var shortNames = map[string]string{"replica-redis": "one replica", "cluster": "cluster (3 replicas)", "haproxy-1": "stand-in behind HAProxy"}

func (r *report) targets() []target {
	var ts []target
	cached, noCache, memory, jwt := r.series("replica-redis"), r.series("replica-redis-nocache"), r.series("replica-memory"), r.series("jwt")

	text, worst, known := r.ratios(cached, memory, true)
	if old, _, ok := r.ratios(noCache, memory, false); ok {
		text += fmt.Sprintf(" (without the cache: %s)", old)
	}
	ts = append(ts, target{"Page on one replica with Redis (session cache on, the default) ≥ 0.95× the same page with the memory store, side by side",
		text, known && worst >= 0.95, known})

	text, worst, known = r.ratios(cached, jwt, true)
	if old, _, ok := r.ratios(noCache, jwt, false); ok {
		text += fmt.Sprintf(" (without the cache: %s)", old)
	}
	ts = append(ts, target{"Page on one replica with Redis ≥ 0.5× the minimal JWT handler (`bench/jwtbaseline`, the limit row)",
		text, known && worst >= 0.5, known})

	// Round trips are what the issue counts: a heartbeat is one EVALSHA,
	// whatever its script runs inside Redis. Both are reported.
	var parts []string
	worstSent, worstOther, allMonitored := 0.0, 0.0, true
	for _, key := range cachedKeys {
		s := r.series(key)
		if s == nil {
			continue
		}
		var sent, exec []string
		for _, p := range s.points {
			if !p.monitored {
				allMonitored = false
				continue
			}
			sent = append(sent, fmt.Sprintf("%.4f", p.sentTotal))
			exec = append(exec, fmt.Sprintf("%.3f", p.cmdsPerReq))
			worstSent = max(worstSent, p.sentTotal)
			other := 0.0
			for name, v := range p.sentPerReq {
				if name != "evalsha" {
					other += v
				}
			}
			worstOther = max(worstOther, other)
		}
		hb := 0.0
		if len(s.points) > 0 {
			hb = medianHeartbeatRate(s)
		}
		parts = append(parts, fmt.Sprintf("%s: **%s** sent at c=%s (heartbeats: %.0f EVALSHA/s); %s executed, the scripts' own commands included",
			shortNames[key], strings.Join(sent, " / "), joinInts(r.opts.concurrency, "/"), hb, strings.Join(exec, " / ")))
	}
	measured := strings.Join(parts, "; ")
	known = len(parts) > 0 && allMonitored
	if known {
		measured += fmt.Sprintf(". Sent other than EVALSHA (heartbeats, and a last-seen refresh at most once a minute per session): at most %.4f per page view", max(worstOther, 0))
	}
	ts = append(ts, target{"≤ 0.01 Redis commands per signed-in page view at steady state, the cache's heartbeats included (every caching scenario, every concurrency)",
		measured, known && worstSent <= 0.01, known})

	rv := r.revocation
	if rv.rounds > 0 {
		measured := fmt.Sprintf("%d rounds, A and B two replicas sharing Redis: B served the session after A's sign-out answered **%d** times; B's first refusal came %s / %s / %s after A's response (p50 / p99 / max, B's own round trip included); the sign-out itself took %s / %s / %s",
			rv.rounds, rv.servedAfter,
			fmtDur(quantile(rv.toRefusal, 0.5)), fmtDur(quantile(rv.toRefusal, 0.99)), fmtDur(quantile(rv.toRefusal, 1)),
			fmtDur(quantile(rv.revoke, 0.5)), fmtDur(quantile(rv.revoke, 0.99)), fmtDur(quantile(rv.revoke, 1)))
		ts = append(ts, target{"A session signed out on one replica is refused at once by another that had it cached (served after the sign-out's response: 0)",
			measured, rv.servedAfter == 0, true})
	} else {
		ts = append(ts, target{"A session signed out on one replica is refused at once by another that had it cached", "", false, false})
	}

	small, okS := r.goBench["BenchmarkForcedLogoutScale/others=10000"]["ns/op"]
	large, okL := r.goBench["BenchmarkForcedLogoutScale/others=1000000"]["ns/op"]
	ts = append(ts, target{"Forced logout (user with 10 sessions) among 1 000 000 sessions ≤ 1.2× its time among 10 000",
		fmt.Sprintf("%s vs %s: %.2f×", fmtDur(time.Duration(large)), fmtDur(time.Duration(small)), large/small), okS && okL && large <= 1.2*small, okS && okL})

	mem, okM := r.goBench["BenchmarkRedisMemoryPerSession/sessions-per-user=1"]["B/session"]
	ts = append(ts, target{"≤ 512 B of Redis memory per session, indexes included (100 000 sessions)",
		fmt.Sprintf("%.1f B with one session per user (the worst case)", mem), okM && mem <= 512, okM})
	return ts
}

// medianHeartbeatRate is the EVALSHA sent per second, the median over the
// scenario's concurrencies: the heartbeats run on a clock.
func medianHeartbeatRate(s *series) float64 {
	var v []float64
	for _, p := range s.points {
		if p.monitored {
			v = append(v, p.sentPerSec["evalsha"])
		}
	}
	return median(v)
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, sep)
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

func yes(t target) string {
	switch {
	case !t.known:
		return "not measured"
	case t.met:
		return "**met**"
	default:
		return "**not met**"
	}
}

// markdown renders the report; out is where it will be written, for
// relative chart links.
func (r *report) markdown(out string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := r.machine
	conc := joinInts(r.opts.concurrency, ", ")

	w("# Benchmarks: what Hallpass's control costs\n\n")
	w("Generated by `make bench` (`bench/cmd/benchmarks`) on **%s UTC**; the run took %s. Every figure below\n",
		r.started.UTC().Format("2006-01-02 15:04"), r.finished.Sub(r.started).Round(time.Second))
	w("comes from that run: run `make bench` again to refresh them. The machine is shared with other work and noisy, so\n")
	w("each measurement ran %d times, interleaved across scenarios, and the tables give the median; trust the ratios\n", r.opts.reps)
	w("between scenarios measured side by side more than the absolute figures.\n\n")
	w("| Machine | |\n|---|---|\n")
	w("| CPU | %s, %d cores, %.0f GiB RAM |\n| System | %s, Linux %s |\n", m.cpu, m.cores, m.memGiB, m.os, m.kernel)
	w("| Software | %s, Redis %s, HAProxy %s |\n| Load average at start | %s |\n", m.goVersion, m.redis, m.haproxy, m.loadAvg)
	w("| Network | loopback only; the load generator runs on the same two cores as the servers |\n\n")

	w("## Targets\n\n| Target | This run | |\n|---|---|---|\n")
	for _, t := range r.targets() {
		w("| %s | %s | %s |\n", t.what, t.measured, yes(t))
	}
	w("\n")

	w("## The signed-in home page\n\n")
	w("`GET /` with a valid session cookie (a token for the baseline), which must answer 200 with the page that says\n")
	w("\"Hello, bench\"; anything else counts as an error. At each concurrency (%s), that many clients on keep-alive\n", conc)
	w("connections send requests back to back for %s after a %s warm-up (`bench/load`). The scenarios, measured in the\n", r.opts.duration, r.opts.warmup)
	w("same rounds one after the other:\n\n")
	w("- **One replica, Redis + session cache (default)**: `hallpass serve` with `HALLPASS_REDIS_URL` and nothing else, so the\n")
	w("  session cache is on (`HALLPASS_SESSION_CACHE=true`): a page view is answered from the replica's memory.\n")
	w("- **One replica, Redis, no cache**: the same with `HALLPASS_SESSION_CACHE=false`, the path before the cache: one\n")
	w("  Redis `GET` per page view. Each of these two replicas has a Redis of its own.\n")
	w("- **One replica, memory**: sessions in the process (`HALLPASS_REDIS_URL` unset), the ceiling for a session store.\n")
	w("- **Stateless JWT baseline**: the minimal JWT handler in `bench/jwtbaseline`, rendering the same page: the limit row.\n")
	w("- **Cluster**: HAProxy round-robin over three replicas (session cache on), Redis found through Sentinel, `WAIT 1`.\n\n")
	w("Requests/s, latencies and CPU are the median of the runs; × memory and × JWT are the median of the ratios within\n")
	w("each round (the scenarios measured one after the other), which a burst of other work on the shared machine skews\n")
	w("less than a ratio of medians taken from different rounds. The targets above give the spread of those ratios.\n")
	w("CPU per page view is the CPU time of every server-side process of the scenario (`/proc/<pid>/stat`: replica, its\n")
	w("Redis, HAProxy) over the run divided by every request answered, warm-up included; it is steadier on a shared machine\n")
	w("than throughput.\n\n")
	if r.clusterMissing != "" {
		w("> **Scenario 1 is missing from this run.** %s. In its place, \"Stand-in\" is HAProxy with the same\n", strings.TrimSuffix(r.clusterMissing, "."))
		w("> configuration (`deploy/haproxy/haproxy.cfg`) in front of the one Redis replica: it shows what the proxy hop costs,\n")
		w("> not what three replicas and Sentinel do.\n\n")
	}
	jwt, memory := r.series("jwt"), r.series("replica-memory")
	ratio := func(p point, base *series) string {
		if ratio, _, _, ok := pairedRatio(&p, base.at(p.concurrency)); ok {
			return fmt.Sprintf("%.2f", ratio)
		}
		return "–"
	}
	w("| Scenario | Clients | Requests/s | p50 | p99 | × memory | × JWT | CPU/page view | Redis commands/page view | Errors |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.reads {
		for _, p := range s.points {
			xMem, xJWT := "–", "–"
			if pageKeys[s.key] {
				xMem, xJWT = ratio(p, memory), ratio(p, jwt)
			}
			cmds := "–"
			switch {
			case p.monitored:
				cmds = fmt.Sprintf("%.4f", p.sentTotal)
			case p.measuredRedis:
				cmds = fmt.Sprintf("%.3f", p.cmdsPerReq)
			}
			w("| %s | %d | %.0f | %s | %s | %s | %s | %s | %s | %d |\n", s.label, p.concurrency, p.throughput, fmtDur(p.p50), fmtDur(p.p99), xMem, xJWT, fmtDur(p.cpuPerReq), cmds, p.errors)
		}
	}
	w("\n")
	w("Redis commands per page view are those the replicas sent (round trips, heartbeats included) where the replicas\n")
	w("cache sessions, and those Redis executed for the replica without the cache, whose page views send one `GET` each;\n")
	w("both counts, by command, are in the next table.\n\n")
	var sizes []string
	for _, s := range r.reads {
		if pageKeys[s.key] && len(s.points) > 0 {
			sizes = append(sizes, fmt.Sprintf("%s %.0f B", s.label, s.points[0].respBytes))
		}
	}
	w("Response size, headers included: %s. ", strings.Join(sizes, "; "))
	setCookies := uint64(0)
	for _, s := range r.reads {
		for _, p := range s.points {
			setCookies += p.setCookies
		}
	}
	w("Responses to page views that set a cookie: %d.\n\n", setCookies)
	for _, c := range r.charts {
		rel, err := filepath.Rel(filepath.Dir(out), filepath.Join(r.opts.charts, c.file))
		if err != nil {
			rel = filepath.Join(r.opts.charts, c.file)
		}
		w("![%s](%s)\n\n*%s*\n\n", strings.TrimSuffix(c.file, ".png"), filepath.ToSlash(rel), c.caption)
	}
	r.redisTraffic(w)
	r.revocationSection(w)

	r.errorNotes(w, r.reads)
	w("## Limits\n\n")
	w("What the pieces do alone on this machine. `redis-benchmark -t get` against the Redis servers the scenarios use, reading\n")
	w("a %d-byte value (about a stored session), and a static response (`/healthz` on HAProxy's stats frontend, which\n", sessionValueBytes)
	w("HAProxy answers itself) through the same HAProxy, loaded like the page.\n\n")
	w("| Limit | Clients | Requests/s | p50 | p99 |\n|---|---:|---:|---:|---:|\n")
	for _, rb := range r.redisBench {
		w("| redis-benchmark GET: %s | %d | %.0f | %s | %s |\n", rb.target, rb.concurrency, rb.rps, fmtDur(rb.p50), fmtDur(rb.p99))
	}
	if s := r.series("haproxy-static"); s != nil {
		for _, p := range s.points {
			w("| HAProxy static response | %d | %.0f | %s | %s |\n", p.concurrency, p.throughput, fmtDur(p.p50), fmtDur(p.p99))
		}
	}
	w("\n")

	w("## Cookie bytes per request\n\n")
	w("| | Sent with every request | Bytes | Set at sign-in | Bytes |\n|---|---|---:|---|---:|\n")
	w("| Hallpass session | `Cookie: %s` | %d | `Set-Cookie` | %d |\n", elide(r.sessionCookie), len("Cookie: ")+len(r.sessionCookie)+2, len("Set-Cookie: ")+len(r.sessionSetCookie)+2)
	w("| JWT (HS256) | `Cookie: %s` | %d | `Set-Cookie` | %d |\n\n", elide(r.jwtCookie), len("Cookie: ")+len(r.jwtCookie)+2, len("Set-Cookie: ")+len(r.jwtSetCookie)+2)
	w("Bytes count the whole header line with its CRLF. The session cookie is a 43-character random token; the JWT carries\n")
	w("`iss`, `sub`, `aud`, `exp`, `iat`, `jti`, the name, the role and the issuing replica: what the page shows, as a token\n")
	w("app would put in it.\n\n")

	w("## Sign-in\n\n")
	goHash := time.Duration(r.goBench["BenchmarkHashDefault"]["ns/op"])
	w("`POST /login` with a real password on the Redis replica (argon2id m=19456 KiB, t=2, p=1; at most two hashes per core\n")
	w("at once), cycling through %d users; a success is the 303 with the session cookie. One argon2id hash alone, timed\n", loginUsers)
	w("by the driver between the sign-in runs, takes **%s** (%s of CPU; `BenchmarkHashDefault` said %s earlier in the\n", fmtDur(r.hashWall), fmtDur(r.hashCPU), fmtDur(goHash))
	ceiling := 0.0
	if r.hashCPU > 0 {
		ceiling = float64(m.cores) / r.hashCPU.Seconds()
	}
	w("run), so two cores cannot sign in more than about %.0f people per second whatever else the path does.\n\n", ceiling)
	w("| Clients | Sign-ins/s | p50 | p99 | Redis commands/sign-in | Replica CPU/sign-in | CPU beyond the hash | Errors |\n")
	w("|---:|---:|---:|---:|---|---:|---:|---:|\n")
	for _, p := range r.login.points {
		beyond := "–"
		if p.cpuPerReq > 0 && r.hashCPU > 0 {
			beyond = beyondHash(p.cpuPerReq - r.hashCPU)
		}
		w("| %d | %.1f | %s | %s | %.1f%s | %s | %s | %d |\n", p.concurrency, p.throughput, fmtDur(p.p50), fmtDur(p.p99), p.cmdsPerReq, cmdBreakdown(p.perRequest), fmtDur(p.cpuPerReq), beyond, p.errors)
	}
	if one := r.login.at(1); one != nil && r.hashWall > 0 {
		w("\nWith one client a sign-in takes %s (p50), of which the hash is %s: the path beyond the hash (form parsing,\n", fmtDur(one.p50), fmtDur(r.hashWall))
		w("throttle counters, the user lookup and audit record in SQLite, the session script in Redis, the redirect) adds\n")
		w("about **%s** of latency and %s of replica CPU per sign-in (CPU/sign-in minus the hash's CPU). The hash's own\n", beyondHash(one.p50-r.hashWall), beyondHash(one.cpuPerReq-r.hashCPU))
		w("time varies by more than that from one moment to the next on this machine, so read these as \"a few\n")
		w("milliseconds at most\": the sign-in's price is the hash.\n\n")
	}
	r.errorNotes(w, []series{r.login})
	w("Most of a sign-in's commands run inside scripts (`create.lua` among them, which prunes and indexes). Its `EXISTS`\n")
	w("count is one per session the user already has, as the script prunes the user's index on every sign-in: here each of\n")
	w("the %d users piles up tens of sessions over the runs (nobody signs out), more than a person's handful of devices,\n", loginUsers)
	w("so that figure overstates a real sign-in. The fractional parts (of `EVALSHA`, `TIME`, `PUBLISH`…) are the\n")
	w("replica's session-cache heartbeats over the run, 20 a second, divided by the few dozen sign-ins a second.\n\n")

	w("## Forced logout at scale\n\n")
	w("Signing out every session of a user with 10 sessions (`RevokeUser`: one script call over the user's index) while\n")
	w("other sessions are stored (`BenchmarkForcedLogoutScale`, 2000 iterations each, median of 3 runs):\n\n| Other sessions | Time per forced logout | Ratio |\n|---:|---:|---:|\n")
	small := r.goBench["BenchmarkForcedLogoutScale/others=10000"]["ns/op"]
	for _, n := range []string{"10000", "1000000"} {
		v := r.goBench["BenchmarkForcedLogoutScale/others="+n]["ns/op"]
		ratio := 0.0
		if small > 0 {
			ratio = v / small
		}
		w("| %s | %s | %.2f |\n", thousands(n), fmtDur(time.Duration(v)), ratio)
	}
	w("\n## Redis memory per session\n\n")
	w("`used_memory` growth per session over 100 000 sessions created through the real `create.lua`, key, tombstone-free\n")
	w("value and both index entries included (`BenchmarkRedisMemoryPerSession`):\n\n| Sessions per user | Bytes per session |\n|---:|---:|\n")
	for _, n := range []string{"1", "2", "5"} {
		w("| %s | %.1f |\n", n, r.goBench["BenchmarkRedisMemoryPerSession/sessions-per-user="+n]["B/session"])
	}
	w("\n")
	r.primariesSection(w)

	w("## How the comparison is kept fair\n\n")
	w("- **Same page.** The baseline (`bench/jwtbaseline`) renders Hallpass's own templates from the `web` package (layout,\n")
	w("  partials, `pages/home.html`) with the same template functions and fields, into a buffer, as Hallpass does; the\n")
	w("  response sizes above show the pages match.\n")
	w("- **Same work around the page.** chi, `X-Served-By`, a request ID and one access-log line per request (slog, as\n")
	w("  Hallpass logs at its default level), the same security headers, Go's cross-origin protection, `no-store`. The only\n")
	w("  difference left is how the request is authenticated: a session from the replica's cache, Redis or memory, or a\n")
	w("  JWT check.\n")
	w("- **A real JWT library.** `github.com/golang-jwt/jwt/v5`, pinned to HS256, issuer, audience and expiry required:\n")
	w("  what Go token apps ship. A bare HMAC check would be a few microseconds faster; no app ships that.\n")
	w("- **Same load.** Every scenario gets the same clients, durations and runs, interleaved, from `bench/load`, a\n")
	w("  closed-loop HTTP/1.1 generator light enough (no net/http client) to leave the cores to the servers, like wrk.\n")
	w("- **Same machine share.** All servers run for the whole benchmark; only the one under load is busy (the caching\n")
	w("  replicas idle at their heartbeats, 20 small scripts a second each).\n")
	w("- Hallpass runs as shipped (`hallpass serve`, SQLite for users, default settings: session cache on with Redis,\n")
	w("  30 min idle timeout, last-seen refresh at most once a minute, no metrics listener); only the no-cache replica\n")
	w("  changes one setting, `HALLPASS_SESSION_CACHE=false`.\n\n")

	if notes, err := os.ReadFile(filepath.Join(r.opts.repo, "bench", "FINDINGS.md")); err == nil {
		w("%s\n", strings.TrimSpace(string(notes)))
	}
	return b.String()
}

// redisTraffic writes the section on what Redis does per page view.
func (r *report) redisTraffic(w func(string, ...any)) {
	w("### What Redis does per page view\n\n")
	w("Two counts. **Executed**: `INFO commandstats` deltas over the run divided by every request answered, warm-up included;\n")
	w("it counts the commands a script runs as well as the `EVALSHA` that ran it, and leaves out what monitoring sends (INFO,\n")
	w("PING, REPLCONF; in the cluster it keeps Sentinel's hello `PUBLISH`es, a few a second, which overstates the replicas'\n")
	w("share a little). **Sent**: for the caching scenarios, `MONITOR` over the same run tells the commands clients sent\n")
	w("(round trips; a heartbeat is one `EVALSHA`) from those the scripts ran (\"[0 lua]\"), and Sentinel's messages by\n")
	w("channel; it is attached only where Redis hears little, as it would slow a busy Redis. A caching replica sends one\n")
	w("heartbeat every 50 ms whether or not anyone is reading, so its share per page view falls as traffic grows: the\n")
	w("per-second column is the figure that does not depend on the load. Connection set-up (`CLIENT SETNAME`, `ROLE`, …)\n")
	w("is shown apart, with the new connections Redis accepted per 1000 requests: a pool that keeps its connections has\n")
	w("none.\n\n")
	w("| Scenario | Clients | Executed/page view | Sent/page view | Run inside scripts/page view | Sent/second | New conns/1k requests |\n")
	w("|---|---:|---|---|---:|---|---:|\n")
	for _, s := range r.reads {
		for _, p := range s.points {
			if !p.measuredRedis || !pageKeys[s.key] {
				continue
			}
			executed := fmt.Sprintf("%.4f%s", p.cmdsPerReq, cmdBreakdown(p.perRequest))
			if setup := cmdBreakdown(p.setupPerReq); setup != "" {
				executed += ", set-up" + setup
			}
			sent, scripted, perSec := "not monitored", "–", "–"
			if p.monitored {
				sent = fmt.Sprintf("%.4f%s", p.sentTotal, cmdBreakdown(p.sentPerReq))
				scripted = fmt.Sprintf("%.4f", p.scriptedPerReq)
				perSec = perSecond(p.sentPerSec)
			}
			w("| %s | %d | %s | %s | %s | %s | %.1f |\n", s.label, p.concurrency, executed, sent, scripted, perSec, p.connsPer1k)
		}
	}
	w("\n")
}

// perSecond lists commands per second by name: "EVALSHA 20.0".
func perSecond(per map[string]float64) string {
	names := sortedByValue(per, 0.05)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.1f", strings.ToUpper(n), per[n])
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// revocationSection writes the revocation → refusal measurement.
func (r *report) revocationSection(w func(string, ...any)) {
	rv := r.revocation
	w("## Revocation → refusal on another replica\n\n")
	if rv.rounds == 0 {
		w("Not measured in this run.\n\n")
		return
	}
	w("On %s: sign in on replica A (`POST /login`); view the page twice on replica B with the\n", rv.where)
	w("cookie, so B has the session in its cache; sign out on A with the page's own form (`POST /logout`, same-origin\n")
	w("`Origin` and `Sec-Fetch-Site`, as the browser sends it); the moment A's response arrives, view the page on B again\n")
	w("with the same cookie, and keep doing so until B refuses it (a 303 to the login page). %d rounds, one after the\n", rv.rounds)
	w("other, on warm keep-alive connections, nothing else loading the cluster.\n\n")
	w("| | p50 | p99 | max |\n|---|---:|---:|---:|\n")
	row := func(label string, v []time.Duration) {
		w("| %s | %s | %s | %s |\n", label, fmtDur(quantile(v, 0.5)), fmtDur(quantile(v, 0.99)), fmtDur(quantile(v, 1)))
	}
	row("A's sign-out response → B's refusal (B's own round trip included)", rv.toRefusal)
	row("The sign-out request on A (it returns once every caching replica confirmed, or the 250 ms lease ran out)", rv.revoke)
	w("\nPage views B served with the session after A's sign-out had answered: **%d** of %d rounds", rv.servedAfter, rv.rounds)
	if rv.servedAfter == 0 {
		w(" — B refused the session on the first request every time, so the delay above is one page view's round trip.")
	}
	w("\n")
	var reasons []string
	for reason, n := range rv.reasons {
		if reason == "" {
			reason = "(none)"
		}
		reasons = append(reasons, fmt.Sprintf("`%s` %d", reason, n))
	}
	slices.Sort(reasons)
	w("The reason B gave the login page: %s (the manager reports a session its own user signed out as `expired`,\n", strings.Join(reasons, ", "))
	w("as it does without the cache: `session.Manager.endReason`).")
	if rv.warmMisses > 0 {
		w(" In %d rounds B did not serve the fresh session while warming it; those rounds are not counted.", rv.warmMisses)
	}
	w("\n\n")
}

// cmdBreakdown lists commands per request by name: " (get 1.000)".
func cmdBreakdown(per map[string]float64) string {
	names := sortedByValue(per, 0.00005)
	if len(names) == 0 {
		return ""
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.4g", strings.ToUpper(n), per[n])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// sortedByValue returns the names in per whose value is at least least,
// largest first.
func sortedByValue(per map[string]float64, least float64) []string {
	var names []string
	for name, v := range per {
		if v >= least {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if per[a] != per[b] {
			if per[a] > per[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return names
}

// elide shortens a cookie for display.
func elide(cookie string) string {
	name, value, _ := strings.Cut(cookie, "=")
	if len(value) <= 12 {
		return cookie
	}
	return fmt.Sprintf("%s=%s…(%d chars)", name, value[:8], len(value))
}

func thousands(n string) string {
	var out []byte
	for i := range len(n) {
		if i > 0 && (len(n)-i)%3 == 0 {
			out = append(out, []byte("\u202f")...)
		}
		out = append(out, n[i])
	}
	return string(out)
}

// summary is what the driver prints when it is done.
func (r *report) summary() string {
	var b strings.Builder
	for _, t := range r.targets() {
		fmt.Fprintf(&b, "%-12s %s: %s\n", strings.Trim(yes(t), "*"), t.what, t.measured)
	}
	return b.String()
}

// errorNotes says what the first error was wherever a run had some.
func (r *report) errorNotes(w func(string, ...any), all []series) {
	for _, s := range all {
		for _, p := range s.points {
			if p.errors > 0 {
				w("Errors, %s at %d clients: %d of %d requests over the runs; the first: %s.\n\n", s.label, p.concurrency, p.errors, p.requests, p.firstError)
			}
		}
	}
}

// beyondHash shows a difference from the hash's cost, which noise can make
// negative.
func beyondHash(d time.Duration) string {
	if d <= 0 {
		return "< 0 (within noise)"
	}
	return fmtDur(d)
}
