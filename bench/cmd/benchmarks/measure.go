package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/hallpass/hallpass/bench/load"
)

// scenario is one server under load: what to request and what to count.
type scenario struct {
	key   string // short, stable: used in chart legends and file names
	label string // what the report calls it
	cfg   load.Config
	// redisAddr is the Redis whose commands a request costs; "" for none.
	redisAddr string
	// monitor attaches MONITOR to redisAddr during the run, to tell the
	// commands the replicas send from those their scripts run: only where
	// Redis hears little (the replicas answer from their caches).
	monitor bool
	// pids are the server-side processes whose CPU time a request costs.
	pids []int
}

// sample is one measured run of a scenario at one concurrency.
type sample struct {
	res load.Result
	// cmds are the Redis commands the run's requests sent, by name;
	// setupCmds those sent to set up new connections.
	cmds, setupCmds map[string]int64
	// newConns counts connections Redis accepted during the run.
	newConns int64
	// traffic is what MONITOR saw over the run, warm-up included; nil
	// when the scenario is not monitored.
	traffic *redisTraffic
	// cpu is the CPU time the scenario's processes used during the run,
	// warm-up included, as res.AllRequests is.
	cpu time.Duration
}

// measure runs sc once at concurrency c.
func measure(ctx context.Context, sc scenario, c int, warmup, d time.Duration) (sample, error) {
	cfg := sc.cfg
	cfg.Concurrency, cfg.Warmup, cfg.Duration = c, warmup, d
	var before redisCounters
	var err error
	if sc.redisAddr != "" {
		if before, err = readRedisCounters(sc.redisAddr); err != nil {
			return sample{}, fmt.Errorf("%s: commandstats: %w", sc.key, err)
		}
	}
	var mon *monitor
	if sc.monitor {
		if mon, err = startMonitor(sc.redisAddr); err != nil {
			return sample{}, fmt.Errorf("%s: %w", sc.key, err)
		}
	}
	cpu0 := cpuTimes(sc.pids)
	res, err := load.Run(ctx, cfg)
	cpu := cpuTimes(sc.pids) - cpu0
	var traffic redisTraffic
	var monErr error
	if mon != nil {
		traffic, monErr = mon.stop()
	}
	if err != nil {
		return sample{}, fmt.Errorf("%s at c=%d: %w", sc.key, c, err)
	}
	if monErr != nil {
		return sample{}, fmt.Errorf("%s at c=%d: %w", sc.key, c, monErr)
	}
	s := sample{res: res, cpu: cpu}
	if mon != nil {
		s.traffic = &traffic
	}
	if sc.redisAddr != "" {
		after, err := readRedisCounters(sc.redisAddr)
		if err != nil {
			return sample{}, fmt.Errorf("%s: commandstats: %w", sc.key, err)
		}
		s.cmds, s.setupCmds = commandDeltas(before.calls, after.calls)
		s.newConns = after.connections - before.connections - 1 // the driver's own INFO connection
		if mon != nil {
			s.newConns-- // and its MONITOR connection
		}
	}
	return s, nil
}

// point is the median of a scenario's samples at one concurrency.
type point struct {
	concurrency int
	samples     int
	throughput  float64 // successful requests per second
	// rounds are the throughput of each run, in the order of the rounds,
	// which measure every scenario one after the other.
	rounds     []float64
	p50, p99   time.Duration
	errors     uint64
	firstError string
	requests   uint64
	// perRequest are Redis commands per successful request, by name.
	perRequest map[string]float64
	cmdsPerReq float64
	// setupPerReq are connection set-up commands per request, by name;
	// connsPer1k new Redis connections per 1000 requests.
	setupPerReq   map[string]float64
	connsPer1k    float64
	measuredRedis bool
	// From MONITOR, when the scenario has it: sentPerReq are the commands
	// clients sent per request, by name (round trips), sentTotal their sum;
	// scriptedPerReq the commands scripts ran per request; sentPerSec the
	// commands sent per second, by name (the heartbeats run on a clock,
	// not per request).
	monitored      bool
	sentPerReq     map[string]float64
	sentTotal      float64
	scriptedPerReq float64
	sentPerSec     map[string]float64
	// cpuPerReq is server-side CPU per request; 0 when not measured.
	cpuPerReq time.Duration
	// respBytes is the mean response size, headers included.
	respBytes  float64
	setCookies uint64
	statuses   map[int]uint64
}

// summarize takes the median of each figure over samples, so one noisy
// run on the shared machine does not decide a result.
func summarize(c int, samples []sample) point {
	p := point{concurrency: c, samples: len(samples), perRequest: map[string]float64{}, setupPerReq: map[string]float64{}, statuses: map[int]uint64{},
		sentPerReq: map[string]float64{}, sentPerSec: map[string]float64{}}
	var tput, cmds, cpu, bytes, conns, sent, scripted []float64
	perSent, perSentSec := map[string][]float64{}, map[string][]float64{}
	perSetup := map[string][]float64{}
	var p50s, p99s []time.Duration
	perCmd := map[string][]float64{}
	for _, s := range samples {
		r := s.res
		ok := float64(r.Requests - r.Errors)
		tput = append(tput, r.Throughput())
		p50s = append(p50s, r.P50())
		p99s = append(p99s, r.P99())
		p.errors += r.Errors
		p.requests += r.Requests
		p.setCookies += r.SetCookies
		if p.firstError == "" {
			p.firstError = r.FirstError
		}
		for code, n := range r.Statuses {
			p.statuses[code] += n
		}
		if r.Requests > 0 {
			bytes = append(bytes, float64(r.ResponseBytes)/float64(r.Requests))
		}
		if ok == 0 || r.AllRequests == 0 {
			continue
		}
		// Commands and CPU accrue over the warm-up too: divide by every
		// request answered.
		all := float64(r.AllRequests)
		if s.cmds != nil {
			var total int64
			for name, n := range s.cmds {
				total += n
				perCmd[name] = append(perCmd[name], float64(n)/all)
			}
			cmds = append(cmds, float64(total)/all)
			for name, n := range s.setupCmds {
				perSetup[name] = append(perSetup[name], float64(n)/all)
			}
			conns = append(conns, 1000*float64(max(s.newConns, 0))/all)
			p.measuredRedis = true
		}
		if t := s.traffic; t != nil {
			var total, inScripts int64
			for name, n := range t.sent {
				total += n
				perSent[name] = append(perSent[name], float64(n)/all)
				perSentSec[name] = append(perSentSec[name], float64(n)/t.window.Seconds())
			}
			for _, n := range t.inScripts {
				inScripts += n
			}
			sent = append(sent, float64(total)/all)
			scripted = append(scripted, float64(inScripts)/all)
			p.monitored = true
		}
		if s.cpu > 0 {
			cpu = append(cpu, float64(s.cpu)/all)
		}
	}
	p.sentTotal, p.scriptedPerReq = median(sent), median(scripted)
	fill := func(dst map[string]float64, src map[string][]float64, n int) {
		for name, v := range src {
			for len(v) < n {
				v = append(v, 0)
			}
			dst[name] = median(v)
		}
	}
	fill(p.sentPerReq, perSent, len(sent))
	fill(p.sentPerSec, perSentSec, len(sent))
	p.throughput = median(tput)
	p.rounds = tput
	p.p50, p.p99 = medianDur(p50s), medianDur(p99s)
	p.cmdsPerReq = median(cmds)
	p.cpuPerReq = time.Duration(median(cpu))
	p.respBytes = median(bytes)
	fill(p.perRequest, perCmd, len(samples))
	fill(p.setupPerReq, perSetup, len(samples))
	p.connsPer1k = median(conns)
	return p
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDur(v []time.Duration) time.Duration {
	f := make([]float64, len(v))
	for i, d := range v {
		f[i] = float64(d)
	}
	return time.Duration(median(f))
}

// readConfig is the load for a signed-in page view with cookie.
func readConfig(url, cookie string, expect string) load.Config {
	return load.Config{
		URL:        url,
		Header:     http.Header{"Cookie": {cookie}},
		ExpectBody: []byte(expect),
	}
}
