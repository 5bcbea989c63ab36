package session

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/testsvc"
)

// signOutEveryoneBatch is the page of users account.SignOutEveryone hands
// RevokeUsers at a time.
const signOutEveryoneBatch = 500

// BenchmarkSignOutEveryone signs out every user as account.SignOutEveryone
// does — RevokeUsers a page of 500 users at a time — with 1 000 000 sessions
// stored over 10 000 users (HALLPASS_BENCH_SESSIONS to change the number,
// still 100 a user), while another client reads a session with GET in a
// loop, as every signed-in page view does. It reports the time to sign
// everyone out (s) and the reader's worst and 99th-percentile wait during
// it (worst-ms, p99-ms), next to its worst wait over one second before
// (idle-worst-ms): the stall signing out everyone inflicts on page views.
func BenchmarkSignOutEveryone(b *testing.B) {
	sessions := 1_000_000
	if v := os.Getenv("HALLPASS_BENCH_SESSIONS"); v != "" {
		var err error
		if sessions, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	const perUser = 100
	users := make([]int64, sessions/perUser)
	for i := range users {
		users[i] = int64(i + 1)
	}
	store, _, srv := benchStore(b)
	ctx := context.Background()
	seeder := srv.Conn(b)

	var took, worst, p99 time.Duration
	idle := readWhile(b, srv, func() { time.Sleep(time.Second) })
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		seedUsers(b, seeder, users, perUser)
		b.StartTimer()
		var ended int
		start := time.Now()
		waits := readWhile(b, srv, func() {
			for page := range slices.Chunk(users, signOutEveryoneBatch) {
				n, err := store.RevokeUsers(ctx, page, "", EndedEveryone)
				if err != nil {
					b.Fatalf("RevokeUsers: %v", err)
				}
				ended += n
			}
		})
		took += time.Since(start)
		b.StopTimer()
		if ended != len(users)*perUser {
			b.Fatalf("RevokeUsers ended %d sessions, want %d", ended, len(users)*perUser)
		}
		if left, err := redis.Int(seeder.Do("ZCARD", globalIndex)); err != nil || left != 0 {
			b.Fatalf("%d sessions left in the global index (%v), want none", left, err)
		}
		worst = max(worst, waits[len(waits)-1])
		p99 = max(p99, waits[len(waits)*99/100])
		b.Logf("%d sessions of %d users signed out in %v; %d reads meanwhile, worst %v, p99 %v",
			ended, len(users), time.Since(start), len(waits), waits[len(waits)-1], waits[len(waits)*99/100])
		b.StartTimer()
	}
	b.ReportMetric(took.Seconds()/float64(b.N), "s")
	b.ReportMetric(ms(worst), "worst-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(idle[len(idle)-1]), "idle-worst-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// readWhile runs f while a client of its own GETs a session key in a loop,
// and returns how long each GET took, sorted.
func readWhile(b *testing.B, srv *testsvc.RedisServer, f func()) []time.Duration {
	b.Helper()
	c := srv.Conn(b)
	if _, err := c.Do("PING"); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var (
		wg    sync.WaitGroup
		waits []time.Duration
		err   error
	)
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if _, err = c.Do("GET", sessionPrefix+"u1-0"); err != nil {
				return
			}
			waits = append(waits, time.Since(start))
		}
	})
	f()
	close(stop)
	wg.Wait()
	if err != nil {
		b.Fatalf("reader: %v", err)
	}
	if len(waits) == 0 {
		b.Fatal("the reader made no request")
	}
	slices.Sort(waits)
	return waits
}

// seedUsers stores perUser sessions of each of users in the store's layout
// (session, user index, global index), pipelined, each value the size of a
// typical session.
func seedUsers(b *testing.B, c redis.Conn, users []int64, perUser int) {
	b.Helper()
	value := strings.Repeat("x", 250)
	expiry := time.Now().Add(12 * time.Hour)
	ttl, score := time.Until(expiry).Milliseconds(), expiry.UnixMilli()
	const usersAtOnce = 20 // 2000 sessions a pipeline
	for page := range slices.Chunk(users, usersAtOnce) {
		sent := 0
		for _, u := range page {
			index := userIndex(u)
			for i := range perUser {
				key := fmt.Sprintf("u%d-%d", u, i)
				for _, err := range []error{
					c.Send("SET", sessionPrefix+key, value, "PX", ttl),
					c.Send("ZADD", index, score, key),
					c.Send("ZADD", globalIndex, score, key),
				} {
					if err != nil {
						b.Fatal(err)
					}
				}
				sent += 3
			}
		}
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
		for range sent {
			if _, err := c.Receive(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
