// Package load is Hallpass's HTTP load generator: N clients, each on one
// keep-alive connection, send the same request (or cycle through a few) as
// fast as the server answers for a fixed time after a warm-up, and the run
// reports throughput, latency quantiles from a histogram, and errors.
//
// It speaks just enough HTTP/1.1 itself (Content-Length and chunked bodies)
// to stay light: on a two-core machine every cycle the generator spends is a
// cycle the server under test does not get, which is why wrk is written in
// C. Closed-loop clients like these measure the server's capacity at a given
// concurrency, not its latency under a fixed arrival rate.
package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Config describes one run.
type Config struct {
	// URL is an http:// URL (no TLS) with the path and query to request.
	URL string
	// Method defaults to GET.
	Method string
	// Header holds extra request headers, such as Cookie or Authorization.
	Header http.Header
	// Bodies are request bodies; each client sends them in turn, starting
	// at a different one. Empty means requests without a body.
	Bodies [][]byte
	// Concurrency is the number of clients, each with one connection.
	Concurrency int
	// Warmup is run before measuring and not counted.
	Warmup time.Duration
	// Duration is how long the measured part of the run lasts.
	Duration time.Duration
	// ExpectStatus is the status that counts as a success; 0 means 200.
	ExpectStatus int
	// ExpectBody, if set, must occur in every successful response's body:
	// a signed-out page served with 200 is then an error, not a success.
	ExpectBody []byte
	// Timeout bounds each request; 0 means 10 s.
	Timeout time.Duration
}

// Result is what one run measured. Only requests that finished inside the
// measured window count.
type Result struct {
	Concurrency int
	// Elapsed is the measured window.
	Elapsed time.Duration
	// Requests is every request that finished in the window, errors
	// included.
	Requests uint64
	// AllRequests also counts the warm-up and requests that finished
	// after the window: everything the server was sent, for dividing
	// server-side counters (Redis commands, CPU time) read around Run.
	AllRequests uint64
	// Errors are failed connections, unexpected statuses and bodies
	// without ExpectBody. FirstError describes one of them.
	Errors     uint64
	FirstError string
	// Statuses counts responses by status code.
	Statuses map[int]uint64
	// SetCookies counts responses that set a cookie.
	SetCookies uint64
	// ResponseBytes sums the size of every response, headers included.
	ResponseBytes uint64
	// RequestBytes is the size of one request, headers included.
	RequestBytes int
	// Latency holds the latencies of successful requests.
	Latency *Histogram
}

// Throughput returns successful requests per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
}

// P50 returns the median latency of successful requests.
func (r Result) P50() time.Duration { return r.Latency.Quantile(0.50) }

// P99 returns the 99th percentile latency of successful requests.
func (r Result) P99() time.Duration { return r.Latency.Quantile(0.99) }

// String summarises r on one line, like wrk's summary.
func (r Result) String() string {
	s := fmt.Sprintf("c=%d: %.0f req/s, p50 %s, p99 %s, %d requests, %d errors",
		r.Concurrency, r.Throughput(), round(r.P50()), round(r.P99()), r.Requests, r.Errors)
	if r.FirstError != "" {
		s += " (" + r.FirstError + ")"
	}
	return s
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}

// Run runs cfg until its warm-up and measured window are over, or ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	reqs, addr, err := buildRequests(cfg)
	if err != nil {
		return Result{}, err
	}
	if cfg.Concurrency < 1 {
		return Result{}, errors.New("load: concurrency must be at least 1")
	}
	if cfg.Duration <= 0 {
		return Result{}, errors.New("load: duration must be positive")
	}
	expect := cfg.ExpectStatus
	if expect == 0 {
		expect = http.StatusOK
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}

	start := time.Now()
	from := start.Add(cfg.Warmup)
	until := from.Add(cfg.Duration)
	results := make([]Result, cfg.Concurrency)
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Go(func() {
			results[w] = client(ctx, &conn{addr: addr, timeout: timeout}, reqs, w, expect, cfg.ExpectBody, from, until)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	total := Result{
		Concurrency:  cfg.Concurrency,
		Elapsed:      until.Sub(from),
		Statuses:     map[int]uint64{},
		RequestBytes: len(reqs[0]),
		Latency:      &Histogram{},
	}
	for _, r := range results {
		total.Requests += r.Requests
		total.AllRequests += r.AllRequests
		total.Errors += r.Errors
		total.SetCookies += r.SetCookies
		total.ResponseBytes += r.ResponseBytes
		if total.FirstError == "" {
			total.FirstError = r.FirstError
		}
		for code, n := range r.Statuses {
			total.Statuses[code] += n
		}
		total.Latency.Merge(r.Latency)
	}
	return total, nil
}

// client is one closed-loop client: it sends its next request as soon as
// the last one is answered, until the window closes.
func client(ctx context.Context, c *conn, reqs [][]byte, first, expect int, expectBody []byte, from, until time.Time) Result {
	defer c.close()
	r := Result{Statuses: map[int]uint64{}, Latency: &Histogram{}}
	keepBody := len(expectBody) > 0
	for i := first; ctx.Err() == nil; i++ {
		t0 := time.Now()
		if t0.After(until) {
			break
		}
		res, err := c.do(reqs[i%len(reqs)], keepBody)
		t1 := time.Now()
		if err == nil {
			r.AllRequests++
		}
		counted := !t1.Before(from) && !t1.After(until)
		fail := ""
		switch {
		case err != nil:
			fail = err.Error()
		case res.status != expect:
			fail = "status " + strconv.Itoa(res.status)
		case keepBody && !bytes.Contains(c.body, expectBody):
			fail = fmt.Sprintf("body without %q", expectBody)
		}
		if counted {
			r.Requests++
			r.ResponseBytes += uint64(res.bytes)
			if res.status != 0 {
				r.Statuses[res.status]++
			}
			if res.setCookie {
				r.SetCookies++
			}
			if fail == "" {
				r.Latency.Record(t1.Sub(t0))
			} else {
				r.Errors++
				if r.FirstError == "" {
					r.FirstError = fail
				}
			}
		}
		if err != nil {
			// A refused or reset connection fails fast: do not spin.
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return r
}

// buildRequests renders cfg's requests as bytes, once.
func buildRequests(cfg Config) ([][]byte, string, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, "", fmt.Errorf("load: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, "", fmt.Errorf("load: %q is not an http:// URL with a host", cfg.URL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr += ":80"
	}
	method := cfg.Method
	if method == "" {
		method = http.MethodGet
	}
	bodies := cfg.Bodies
	if len(bodies) == 0 {
		bodies = [][]byte{nil}
	}
	names := make([]string, 0, len(cfg.Header))
	for name := range cfg.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	var reqs [][]byte
	for _, body := range bodies {
		var b bytes.Buffer
		fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hallpass-bench\r\nAccept: */*\r\n", method, u.RequestURI(), u.Host)
		for _, name := range names {
			for _, v := range cfg.Header[name] {
				fmt.Fprintf(&b, "%s: %s\r\n", name, v)
			}
		}
		if body != nil {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		}
		b.WriteString("\r\n")
		b.Write(body)
		reqs = append(reqs, b.Bytes())
	}
	return reqs, addr, nil
}
