package web

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/user"
)

// BenchmarkIdleEventStreamMemory measures what one open, idle tab costs a
// replica: the memory (heap and goroutine stacks) of b.N event streams
// held open at once, divided by b.N. The replica runs as in production:
// Redis with the session cache, its hub fed by the link, plain HTTP (TLS
// ends at the load balancer). The clients are bare TCP connections that
// read the first events and then sit idle, so nearly all of the growth is
// the server's. Target (issue 13): ≤ 16 KiB per stream. Run with
// -benchtime=2000x or more (make bench does).
func BenchmarkIdleEventStreamMemory(b *testing.B) {
	ts := newTestServer(b, testOptions{backend: "redis"})
	ts.createUser("alice", alicePW, user.RoleUser)
	plain := httptest.NewServer(ts.Config.Handler)
	b.Cleanup(plain.Close)

	// Each stream is a session of its own: one session may open only a
	// few streams.
	cookies := make([]string, b.N)
	for i := range cookies {
		other := ts.newBrowser()
		other.login("alice", alicePW)
		cookies[i] = ts.sessions.CookieName() + "=" + other.sessionCookie()
	}

	open := func(c string) (net.Conn, error) {
		conn, err := net.Dial("tcp", plain.Listener.Addr().String())
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\nCookie: %s\r\n\r\n", c)
		// Read up to the first event (the session's deadlines), so the
		// stream is fully set up before measuring.
		r := bufio.NewReader(conn)
		res, err := http.ReadResponse(r, nil)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if res.StatusCode != http.StatusOK {
			conn.Close()
			return nil, fmt.Errorf("GET /events: %d", res.StatusCode)
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				conn.Close()
				return nil, err
			}
			if strings.HasPrefix(line, "event: session") {
				return conn, nil
			}
		}
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	conns := make([]net.Conn, 0, b.N)
	for _, c := range cookies {
		conn, err := open(c)
		if err != nil {
			b.Fatalf("open stream %d: %v", len(conns)+1, err)
		}
		conns = append(conns, conn)
	}
	b.StopTimer()
	time.Sleep(100 * time.Millisecond) // let the handlers settle into their wait
	// Each collection may halve a goroutine stack that uses under a quarter
	// of itself: what an idle stream keeps is what is left after a few.
	for range 4 {
		runtime.GC()
	}
	runtime.ReadMemStats(&after)
	if n := ts.live.Count(); n != b.N {
		b.Fatalf("%d streams open, want %d", n, b.N)
	}
	grown := int64(after.HeapInuse+after.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	b.ReportMetric(float64(grown)/float64(b.N), "B/stream")
	b.ReportMetric(float64(after.NumGC-before.NumGC), "GCs")
	for _, c := range conns {
		c.Close()
	}
}
