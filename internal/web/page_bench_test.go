//go:build unix

package web

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/user"
)

// homePageMarker is what only alice's signed-in home page shows.
var homePageMarker = []byte("<h1>Hello, alice</h1>")

// homePageBench is the memory-store test server with alice signed in, and
// a GET / carrying her session cookie.
type homePageBench struct {
	handler http.Handler
	req     *http.Request
	logs    *testkit.LogBuffer
}

// newHomePageBench signs alice in over HTTPS. Serving the request straight
// through the handler then measures the handler's own CPU: no network, no
// request parsing. The one request serves every iteration: the router works
// on a copy (chi's WithContext) and nothing writes to the original.
func newHomePageBench(b *testing.B) homePageBench {
	b.Helper()
	ts := newTestServer(b, testOptions{backend: "memory"})
	ts.createUser("alice", alicePW, user.RoleUser)
	br := ts.newBrowser()
	br.login("alice", alicePW)
	cookie := &http.Cookie{Name: session.SecureCookieName, Value: br.sessionCookie()}
	if cookie.Value == "" {
		b.Fatal("no session cookie after signing in")
	}
	req := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
	req.AddCookie(cookie)
	return homePageBench{handler: ts.Config.Handler, req: req, logs: ts.logs}
}

// serve serves one GET / and fails b unless it is alice's home page. The
// access log line is formatted as on every request, then dropped, so the
// test's log buffer does not grow with the iteration count.
func (h homePageBench) serve(b *testing.B) bool {
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, h.req)
	h.logs.Reset()
	if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), homePageMarker) {
		b.Errorf("GET / = %d, want 200 and %q", rec.Code, homePageMarker)
		return false
	}
	return true
}

// BenchmarkSignedInHomePage measures the CPU of one signed-in GET /: the
// whole middleware chain, the session load from the memory store and the
// page rendering.
func BenchmarkSignedInHomePage(b *testing.B) {
	h := newHomePageBench(b)
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		if !h.serve(b) {
			return
		}
	}
	cpu.report()
}

// BenchmarkSignedInHomePageParallel is BenchmarkSignedInHomePage from
// GOMAXPROCS goroutines at once, as a busy replica serves it.
func BenchmarkSignedInHomePageParallel(b *testing.B) {
	h := newHomePageBench(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !h.serve(b) {
				return
			}
		}
	})
	cpu.report()
}

// cpuMeter reports the process's CPU time (user and system, every thread:
// the garbage collector's too) per operation as cpu-ns/op. It varies less
// than ns/op when other processes compete for the machine's cores.
type cpuMeter struct {
	b     *testing.B
	start time.Duration
}

func startCPU(b *testing.B) cpuMeter {
	return cpuMeter{b: b, start: processCPU(b)}
}

func (m cpuMeter) report() {
	used := processCPU(m.b) - m.start
	m.b.ReportMetric(float64(used.Nanoseconds())/float64(m.b.N), "cpu-ns/op")
}

func processCPU(b *testing.B) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
