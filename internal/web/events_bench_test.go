package web

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
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
		other.client.CloseIdleConnections() // descriptors are for the streams

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

// manyStreams is how many open tabs BenchmarkPageViewsWithManyOpenStreams
// holds on the replica while it serves pages (issue 13: 10 000).
const manyStreams = 10000

// holdStreamsEnv makes the test binary the benchmark's browsers: it opens a
// stream to the address it names for each cookie read from standard input,
// says "ready", and holds them until its input closes. A process of their
// own, so the replica's process needs descriptors for its own ends only.
const holdStreamsEnv = "HALLPASS_HOLD_STREAMS"

func TestMain(m *testing.M) {
	if addr := os.Getenv(holdStreamsEnv); addr != "" {
		os.Exit(holdStreams(addr))
	}
	os.Exit(m.Run())
}

// holdStreams is the browsers' process: see holdStreamsEnv.
func holdStreams(addr string) int {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	in := bufio.NewScanner(os.Stdin)
	var conns []net.Conn
	for in.Scan() {
		cookie := in.Text()
		if cookie == "" {
			break
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		conns = append(conns, conn)
		fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: localhost\r\nCookie: %s\r\n\r\n", cookie)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || res.StatusCode != http.StatusOK {
			fmt.Println("error: stream", len(conns), err)
			return 1
		}
	}
	fmt.Println("ready", len(conns))
	for in.Scan() { // until the benchmark closes our input
	}
	return 0
}

// BenchmarkPageViewsWithManyOpenStreams serves signed-in page views from a
// replica (Redis with the session cache, plain HTTP) that holds 10 000
// open, idle event streams, one per session, from another process: ns/op
// is one page view (sequential, over a kept-alive connection), B/stream
// what the streams hold in the replica.
func BenchmarkPageViewsWithManyOpenStreams(b *testing.B) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < manyStreams+2048 {
		b.Fatalf("the descriptor limit %d is too low for %d streams", lim.Cur, manyStreams)
	}
	ts := newTestServer(b, testOptions{backend: "redis"})
	ts.createUser("alice", alicePW, user.RoleUser)
	plain := httptest.NewServer(ts.Config.Handler)
	b.Cleanup(plain.Close)
	name := ts.sessions.CookieName()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	signIn := func() string {
		res, err := client.PostForm(plain.URL+"/login", url.Values{"username": {"alice"}, "password": {alicePW}})
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		for _, c := range res.Cookies() {
			if c.Name == name {
				return c.Value
			}
		}
		b.Fatalf("sign-in: %d, no session cookie", res.StatusCode)
		return ""
	}
	cookies := make([]string, manyStreams)
	for i := range cookies {
		cookies[i] = name + "=" + signIn()
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	browsers := exec.Command(os.Args[0], "-test.run=^$")
	browsers.Env = append(os.Environ(), holdStreamsEnv+"="+plain.Listener.Addr().String())
	stdin, err := browsers.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := browsers.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := browsers.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); browsers.Wait() })
	go func() {
		w := bufio.NewWriter(stdin)
		for _, c := range cookies {
			fmt.Fprintln(w, c)
		}
		fmt.Fprintln(w)
		w.Flush()
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready") {
		b.Fatalf("the browsers' process: %q %v", line, err)
	}
	for range 4 {
		runtime.GC()
	}
	runtime.ReadMemStats(&after)
	if n := ts.live.Count(); n != manyStreams {
		b.Fatalf("%d streams open, want %d", n, manyStreams)
	}

	req, _ := http.NewRequest(http.MethodGet, plain.URL+"/", nil)
	req.Header.Set("Cookie", name+"="+signIn())
	b.ResetTimer()
	for range b.N {
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("page view with %d streams open: %d", manyStreams, res.StatusCode)
		}
	}
	b.StopTimer()
	if n := ts.live.Count(); n != manyStreams {
		b.Fatalf("%d streams open after the page views, want %d", n, manyStreams)
	}
	grown := int64(after.HeapInuse+after.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	b.ReportMetric(float64(grown)/manyStreams, "B/stream")
	b.ReportMetric(manyStreams, "streams")
}
