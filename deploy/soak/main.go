// Command soak runs the loopback cluster (internal/cluster: three replicas
// behind HAProxy, Redis with Sentinel, PostgreSQL) under mixed load for a
// long while — sign-ins, page views and sign-outs (internal/loadcheck), and a
// rolling restart of the replicas every few minutes — and reports how each
// replica's resident memory, goroutines and open files, and the Redis
// primary's memory, moved over time, with their slopes. It fails on any
// request that failed outside the deliberate restarts, and on any broken
// promise of the history (an acknowledged sign-in lost, a page served after
// its sign-out was acknowledged). `make soak`; not part of CI.
//
//	soak -hallpass bin/hallpass -duration 15m
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/cluster"
	"github.com/hallpass/hallpass/internal/loadcheck"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("soak", flag.ContinueOnError)
	fl.SetOutput(stderr)
	bin := fl.String("hallpass", "bin/hallpass", "the hallpass binary the replicas run (make build)")
	duration := fl.Duration("duration", 15*time.Minute, "how long the load runs")
	restartEvery := fl.Duration("restart-every", 0, "time between rolling restarts (0: 3 min, or a third of a shorter run)")
	sampleEvery := fl.Duration("sample-every", 0, "time between samples (0: 10 s, or a fifteenth of a shorter run)")
	lanes := fl.Int("lanes", 6, "people using the cluster at once")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *restartEvery == 0 {
		*restartEvery = min(3*time.Minute, *duration/3)
	}
	if *sampleEvery == 0 {
		*sampleEvery = min(10*time.Second, *duration/15)
	}

	dir, err := os.MkdirTemp("", "hallpass-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// PostgreSQL runs as its own user, who must reach the cluster's directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	// The cluster gives its replicas no metrics listener: run them through a
	// wrapper that gives each its own (the replica ID is on the command line).
	wrapper, metricsAddrs, err := writeMetricsWrapper(dir, *bin)
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "soak: "+format+"\n", args...)
	}
	logf("starting the loopback cluster")
	c, err := cluster.Start(ctx, cluster.Options{Hallpass: wrapper, Dir: filepath.Join(dir, "cluster"), Log: stderr})
	if err != nil {
		return err
	}
	defer func() {
		if err := c.Stop(); err != nil {
			logf("stop: %v", err)
		}
	}()

	loadCtx, stopLoad := context.WithTimeout(ctx, *duration)
	defer stopLoad()
	load, err := loadcheck.Start(loadCtx, loadcheck.Options{URL: c.URL(), Lanes: *lanes, Prefix: "soak",
		Pause: 100 * time.Millisecond, RevokeEvery: 6})
	if err != nil {
		return err
	}
	began := time.Now()
	logf("load running on %s for %s: %d lanes, a rolling restart every %s, a sample every %s",
		c.URL(), *duration, *lanes, *restartEvery, *sampleEvery)

	var (
		wg       sync.WaitGroup
		samples  []sample
		restarts []window
		restartE error
	)
	wg.Go(func() {
		tick := time.NewTicker(*sampleEvery)
		defer tick.Stop()
		for {
			samples = append(samples, take(c, metricsAddrs, began))
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-time.After(*restartEvery):
			}
			for i := range cluster.Replicas {
				if loadCtx.Err() != nil {
					return
				}
				w := window{replica: c.ReplicaID(i), start: time.Now()}
				// A restart started before the end finishes even if the load
				// stops meanwhile: the final checks need every replica up.
				err := c.RestartReplica(context.WithoutCancel(ctx), i)
				w.end = time.Now()
				restarts = append(restarts, w)
				if err != nil {
					restartE = fmt.Errorf("restart %s: %w", w.replica, err)
					return
				}
				logf("restarted %s in %s", w.replica, w.end.Sub(w.start).Round(100*time.Millisecond))
			}
		}
	})
	<-loadCtx.Done()
	wg.Wait()
	load.Wait()
	samples = append(samples, take(c, metricsAddrs, began))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if restartE != nil {
		return restartE
	}
	h := load.History
	h.Verify(ctx, 3, time.Minute)

	sum := h.Summarize(nil)
	outside := failedOutside(h.Events(), restarts)
	fmt.Fprintf(stdout, "soak: %s of load on the loopback cluster, %d rolling restarts of each replica\n",
		*duration, len(restarts)/cluster.Replicas)
	fmt.Fprint(stdout, sum)
	fmt.Fprintf(stdout, "  requests failed outside the restarts: %d (during them: %d)\n", outside, sum.Failed()-outside)
	report(stdout, samples)

	var problems []error
	if n := len(sum.Violations); n > 0 {
		problems = append(problems, fmt.Errorf("%d violations", n))
	}
	if outside > 0 {
		problems = append(problems, fmt.Errorf("%d requests failed outside the deliberate restarts", outside))
	}
	if final := sum.Counts["final check"]; final[loadcheck.Refused]+final[loadcheck.Failed] > 0 {
		problems = append(problems, errors.New("final checks got 503s or failures"))
	}
	if len(restarts) < cluster.Replicas {
		problems = append(problems, errors.New("no rolling restart happened: run longer or restart more often"))
	}
	return errors.Join(problems...)
}

// writeMetricsWrapper writes a script that runs bin with
// HALLPASS_METRICS_ADDR set to its own free port for each replica, and returns
// it with the replicas' metrics addresses (app1, app2, app3).
func writeMetricsWrapper(dir, bin string) (string, []string, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", nil, fmt.Errorf("hallpass binary: %w (make build)", err)
	}
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# Written by deploy/soak: a metrics listener for each replica.\ncase \" $* \" in\n")
	var addrs []string
	for i := range cluster.Replicas {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		addr := l.Addr().String()
		l.Close()
		addrs = append(addrs, addr)
		fmt.Fprintf(&b, "*\" --replica-id app%d \"*) export HALLPASS_METRICS_ADDR=%s ;;\n", i+1, addr)
	}
	fmt.Fprintf(&b, "esac\nexec %q \"$@\"\n", abs)
	path := filepath.Join(dir, "hallpass")
	return path, addrs, os.WriteFile(path, []byte(b.String()), 0o755)
}

// window is a deliberate restart of one replica.
type window struct {
	replica    string
	start, end time.Time
}

// failedOutside counts failed requests that overlap no restart.
func failedOutside(events []loadcheck.Event, restarts []window) int {
	n := 0
	for _, e := range events {
		if e.Outcome != loadcheck.Failed {
			continue
		}
		during := false
		for _, w := range restarts {
			if e.Start.Before(w.end) && e.End.After(w.start) {
				during = true
				break
			}
		}
		if !during {
			n++
		}
	}
	return n
}

// sample is one reading of every replica and of the Redis primary.
type sample struct {
	at       time.Duration // since the load began
	replicas []replicaSample
	redis    map[string]float64 // INFO memory: used_memory, used_memory_rss
	redisErr error
}

type replicaSample struct {
	pid        int
	rssKiB     float64 // VmRSS, /proc/PID/status
	fds        float64 // entries of /proc/PID/fd
	goroutines float64 // hallpass_go_goroutines from the metrics listener
	err        error
}

func take(c *cluster.Cluster, metricsAddrs []string, began time.Time) sample {
	s := sample{at: time.Since(began)}
	for i := range cluster.Replicas {
		r := replicaSample{pid: c.ReplicaPID(i)}
		if r.pid == 0 {
			r.err = errors.New("down")
		} else {
			r.rssKiB, r.err = statusField(r.pid, "VmRSS")
			if entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.pid)); err == nil {
				r.fds = float64(len(entries))
			} else if r.err == nil {
				r.err = err
			}
			if g, err := metric(metricsAddrs[i], "hallpass_go_goroutines"); err == nil {
				r.goroutines = g
			} else if r.err == nil {
				r.err = err
			}
		}
		s.replicas = append(s.replicas, r)
	}
	s.redis, s.redisErr = redisMemory(c)
	return s
}

// statusField reads a "Name: N kB" line of /proc/PID/status.
func statusField(pid int, name string) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, name)
}

var metricsClient = &http.Client{Timeout: 3 * time.Second}

// metric reads one unlabelled sample from a replica's metrics listener.
func metric(addr, name string) (float64, error) {
	res, err := metricsClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s/metrics: no %s", addr, name)
}

// redisMemory reads INFO memory from the current primary.
func redisMemory(c *cluster.Cluster) (map[string]float64, error) {
	addr, err := c.RedisPrimary()
	if err != nil {
		return nil, err
	}
	conn, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	info, err := redis.String(conn.Do("INFO", "memory"))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "used_memory" || k == "used_memory_rss") {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				out[k] = f
			}
		}
	}
	return out, nil
}
