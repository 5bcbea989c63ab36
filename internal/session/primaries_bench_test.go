package session_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/rediscluster"
	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/testsvc"
)

const (
	// primariesInFlight is how many requests the benchmark keeps in flight
	// against the store, as a busy replica would.
	primariesInFlight = 32
	// primariesSessions is how many signed-in users the page views and
	// refreshes pick from.
	primariesSessions = 10_000
	// primariesValueBytes is a stored session's size, as seedOthers in
	// scale_bench_test.go takes it.
	primariesValueBytes = 250
)

// BenchmarkPrimaries puts the same session store operations to one Redis
// (NewRedisStore) and to a Redis Cluster of three primaries (NewRedisClusterStore
// over rediscluster), with 32 requests in flight:
//
//   - op=pageview: FindCtx of one of 10 000 sessions of distinct users,
//     picked at random — a page view without the session cache, one GET;
//   - op=refresh: CommitCtx of one of them, the once-a-minute last-seen
//     refresh;
//   - op=signin: Create of a session for a new user, the store's part of a
//     sign-in (no password hash).
//
// Neither side has replicas and WaitReplicas is 0: the figure is
// throughput, and WAIT would time the replication link instead.
//
// Besides ns/op it reports ops/s; the commands Redis executed per
// operation (cmds/op: INFO commandstats deltas summed over the primaries,
// the commands scripts run included); the CPU the Redis servers spent per
// operation (redis-cpu-us/op); and the benchmark process's own CPU per
// operation (client-cpu-us/op: the store, redigo and, over the cluster,
// the routing layer). The benchmark process and every Redis share the
// machine's cores, so three primaries cannot be three times one here: the
// figures show the routing layer's cost and how the work spreads.
func BenchmarkPrimaries(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("primaries=%d", n), func(b *testing.B) {
			bs := startPrimaries(b, n)
			keys := bs.seed(b, primariesSessions)
			value := []byte(strings.Repeat("x", primariesValueBytes))
			ctx := context.Background()

			b.Run("op=pageview", func(b *testing.B) {
				bs.measure(b, func(int) error {
					_, found, err := bs.store.FindCtx(ctx, keys[rand.IntN(len(keys))])
					if err == nil && !found {
						err = fmt.Errorf("a stored session was not found")
					}
					return err
				})
			})
			b.Run("op=refresh", func(b *testing.B) {
				bs.measure(b, func(int) error {
					return bs.store.CommitCtx(ctx, keys[rand.IntN(len(keys))], value, time.Now().Add(12*time.Hour))
				})
			})
			b.Run("op=signin", func(b *testing.B) {
				// New users and their tokens are drawn before the timer starts.
				users, fresh := make([]int64, b.N), make([]string, b.N)
				for i := range b.N {
					users[i] = sessiontest.NewUserID(b)
					fresh[i] = sessiontest.NewKeyFor(b, users[i])
				}
				bs.measure(b, func(i int) error {
					_, err := bs.store.Create(ctx, fresh[i], users[i], value, time.Now().Add(12*time.Hour), session.Limit{}, session.Origin{})
					return err
				})
			})
		})
	}
}

// primariesBench is a session store over n Redis primaries, with a
// connection of its own to each primary for INFO.
type primariesBench struct {
	store     *session.RedisStore
	primaries []redis.Conn
}

// startPrimaries starts one Redis (n = 1) or a Redis Cluster of n
// primaries without replicas, and a store over it, pooled as
// cmd/hallpass pools it.
func startPrimaries(b *testing.B, n int) *primariesBench {
	b.Helper()
	opts := session.StoreOptions(30*time.Minute, 12*time.Hour, nil)
	if n == 1 {
		srv := testsvc.StartRedis(b)
		pool, err := redisx.NewPool(srv.URL, redisx.DefaultPoolOptions())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pool.Close() })
		return &primariesBench{store: session.NewRedisStore(pool, opts), primaries: []redis.Conn{srv.Conn(b)}}
	}
	rc := testsvc.StartRedisCluster(b, n, 0)
	o := redisx.DefaultPoolOptions()
	c, err := rediscluster.New(b.Context(), rc.Seeds(), rediscluster.Options{
		Dial: func(ctx context.Context, addr string) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr,
				redis.DialConnectTimeout(o.ConnectTimeout),
				redis.DialReadTimeout(o.ReadTimeout),
				redis.DialWriteTimeout(o.WriteTimeout))
		},
		MaxIdlePerNode: o.MaxIdle,
	})
	if err != nil {
		b.Fatalf("connect to the cluster: %v", err)
	}
	b.Cleanup(func() { c.Close() })
	bs := &primariesBench{store: session.NewRedisClusterStore(c.Pool(), c.PrimaryFor, opts)}
	for _, addr := range rc.Primaries(b) {
		bs.primaries = append(bs.primaries, rc.Conn(b, addr))
	}
	if len(bs.primaries) != n {
		b.Fatalf("the cluster has %d primaries, want %d", len(bs.primaries), n)
	}
	return bs
}

// seed stores n sessions of distinct users from primariesInFlight
// goroutines, which also fills the connection pools the timed runs use,
// and returns their keys.
func (bs *primariesBench) seed(b *testing.B, n int) []string {
	b.Helper()
	keys := make([]string, n)
	users := make([]int64, n)
	for i := range keys {
		users[i] = sessiontest.NewUserID(b)
		keys[i] = sessiontest.NewKeyFor(b, users[i])
	}
	value := []byte(strings.Repeat("x", primariesValueBytes))
	var next atomic.Int64
	errs := make(chan error, primariesInFlight)
	var wg sync.WaitGroup
	for range primariesInFlight {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if _, err := bs.store.Create(context.Background(), keys[i], users[i], value, time.Now().Add(12*time.Hour), session.Limit{}, session.Origin{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("seed: create: %v", err)
	}
	return keys
}

// measure runs op b.N times (op gets 0…b.N-1) from primariesInFlight
// goroutines and reports ops/s, cmds/op and redis-cpu-us/op.
func (bs *primariesBench) measure(b *testing.B, op func(i int) error) {
	b.Helper()
	b.SetParallelism(max(1, primariesInFlight/runtime.GOMAXPROCS(0)))
	before, clientBefore := bs.counters(b), processCPU(b)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(int(next.Add(1) - 1)); err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		}
	})
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	after, clientAfter := bs.counters(b), processCPU(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(after.calls-before.calls)/float64(b.N), "cmds/op")
	b.ReportMetric((after.cpu-before.cpu).Seconds()*1e6/float64(b.N), "redis-cpu-us/op")
	b.ReportMetric((clientAfter-clientBefore).Seconds()*1e6/float64(b.N), "client-cpu-us/op")
	if b.N >= 1000 {
		var per []string
		for name, n := range after.byCommand {
			if d := n - before.byCommand[name]; d > 0 {
				per = append(per, fmt.Sprintf("%s %.3f", name, float64(d)/float64(b.N)))
			}
		}
		slices.Sort(per)
		b.Logf("per operation: %s", strings.Join(per, ", "))
	}
}

// processCPU is the CPU time the benchmark process used so far: the
// store's and the routing layer's side of every operation.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCounters are what the primaries did so far, summed over them.
type redisCounters struct {
	calls     int64            // commands executed, INFO's own left out
	byCommand map[string]int64 // the same by command
	cpu       time.Duration    // used_cpu_user + used_cpu_sys
}

func (bs *primariesBench) counters(b *testing.B) redisCounters {
	b.Helper()
	sum := redisCounters{byCommand: map[string]int64{}}
	for _, c := range bs.primaries {
		info, err := redis.String(c.Do("INFO", "commandstats", "cpu"))
		if err != nil {
			b.Fatalf("INFO: %v", err)
		}
		for line := range strings.SplitSeq(info, "\r\n") {
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch {
			case name == "used_cpu_user" || name == "used_cpu_sys":
				s, err := strconv.ParseFloat(value, 64)
				if err != nil {
					b.Fatalf("INFO line %q: %v", line, err)
				}
				sum.cpu += time.Duration(s * float64(time.Second))
			case strings.HasPrefix(name, "cmdstat_") && name != "cmdstat_info":
				// cmdstat_get:calls=10,usec=...
				calls, _, _ := strings.Cut(strings.TrimPrefix(value, "calls="), ",")
				n, err := strconv.ParseInt(calls, 10, 64)
				if err != nil {
					b.Fatalf("INFO line %q: %v", line, err)
				}
				sum.calls += n
				sum.byCommand[strings.TrimPrefix(name, "cmdstat_")] += n
			}
		}
	}
	return sum
}
