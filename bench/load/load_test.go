package load

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testServer answers like the pages under test: a large page (chunked), a
// small one (Content-Length), a sign-in that sets a cookie, and failures.
func testServer(t *testing.T) *httptest.Server {
	t.Helper()
	big := strings.Repeat("<p>Hello, alice</p>\n", 500)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Cookie") != "sid=abc" {
			http.Error(w, "signed out", http.StatusOK)
			return
		}
		for i := 0; i < len(big); i += 1000 {
			io.WriteString(w, big[i:min(i+1000, len(big))])
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("GET /small", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !strings.HasPrefix(string(b), "user=") {
			http.Error(w, "no user", http.StatusBadRequest)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: string(b)})
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusServiceUnavailable) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func run(t *testing.T, cfg Config) Result {
	t.Helper()
	cfg.Warmup = 50 * time.Millisecond
	cfg.Duration = 300 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestChunkedPagesWithTheRightCookieAreSuccesses(t *testing.T) {
	srv := testServer(t)
	res := run(t, Config{
		URL: srv.URL + "/big", Concurrency: 4,
		Header:     http.Header{"Cookie": {"sid=abc"}},
		ExpectBody: []byte("Hello, alice"),
	})
	if res.Errors != 0 || res.Requests < 10 {
		t.Fatalf("%s", res)
	}
	if avg := res.ResponseBytes / res.Requests; avg < 10_000 {
		t.Errorf("average response %d bytes, want the whole 10 kB page", avg)
	}
	if res.Throughput() <= 0 || res.P50() <= 0 || res.P99() < res.P50() || res.Latency.Count() != res.Requests {
		t.Errorf("inconsistent figures: %s", res)
	}
	if !strings.Contains(res.String(), "req/s") {
		t.Errorf("summary %q", res)
	}
}

func TestSignedOutPageIsAnError(t *testing.T) {
	srv := testServer(t)
	res := run(t, Config{URL: srv.URL + "/big", Concurrency: 2, ExpectBody: []byte("Hello, alice")})
	if res.Requests == 0 || res.Errors != res.Requests || !strings.Contains(res.FirstError, "body without") {
		t.Fatalf("%s", res)
	}
}

func TestContentLengthAndStatuses(t *testing.T) {
	srv := testServer(t)
	if res := run(t, Config{URL: srv.URL + "/small", Concurrency: 2}); res.Errors != 0 || res.Statuses[200] != res.Requests {
		t.Fatalf("small: %s, statuses %v", res, res.Statuses)
	}
	res := run(t, Config{URL: srv.URL + "/fail", Concurrency: 2})
	if res.Errors != res.Requests || res.Statuses[503] != res.Requests || res.FirstError != "status 503" {
		t.Fatalf("fail: %s, statuses %v", res, res.Statuses)
	}
}

func TestPostsCycleThroughBodiesAndCountCookies(t *testing.T) {
	srv := testServer(t)
	res := run(t, Config{
		URL: srv.URL + "/login", Method: http.MethodPost, Concurrency: 2, ExpectStatus: http.StatusSeeOther,
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Bodies: [][]byte{[]byte("user=a"), []byte("user=b")},
	})
	if res.Errors != 0 || res.SetCookies != res.Requests || res.Requests == 0 {
		t.Fatalf("%s, %d Set-Cookie", res, res.SetCookies)
	}
}

func TestRefusedConnectionsAreErrorsNotAHang(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res := run(t, Config{URL: url + "/", Concurrency: 2})
	if res.Requests == 0 || res.Errors != res.Requests {
		t.Fatalf("%s", res)
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "https://example.com/", Concurrency: 1, Duration: time.Second},
		{URL: "http://127.0.0.1:1/", Concurrency: 0, Duration: time.Second},
		{URL: "http://127.0.0.1:1/", Concurrency: 1},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) accepted", cfg)
		}
	}
}
