package cluster_test

import (
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// client is one browser: its own session cookie, sent by hand so that the
// Secure __Host- cookie travels over the cluster's plain http as a browser
// sends it to a loopback address. Redirects are not followed: a sign-out is
// a 303 to /login.
type client struct {
	name   string
	cookie *http.Cookie
	http   *http.Client
	// ip is the client's own address, sent as X-Forwarded-For (the
	// replicas trust loopback as a proxy): each simulated person has their
	// own, so one lane's refused sign-ins (a disabled user trying again)
	// do not throttle every other lane's, as one shared address would.
	ip string
}

// newTransport returns the connection pool a suite's clients share:
// keep-alive connections to HAProxy, enough of them for the load.
func newTransport() *http.Transport {
	return &http.Transport{MaxIdleConns: 100, MaxIdleConnsPerHost: 50, IdleConnTimeout: 30 * time.Second}
}

func newClient(name string, tr *http.Transport) *client {
	h := fnv.New32a()
	h.Write([]byte(name))
	n := h.Sum32()
	ip := fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff|1)
	return &client{name: name, ip: ip, http: &http.Client{
		Transport:     tr,
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// response is what a request came back with: the status, who served it,
// where it redirected, and the body's start.
type response struct {
	status   int
	servedBy string
	location string
	body     string
}

// do sends one request with the client's cookie, and keeps a cookie the
// response sets (a sign-in), unless keepCookie asks to resend the same one
// (to show that a revoked cookie is refused everywhere).
func (c *client) do(method, rawURL string, form url.Values, keepCookie bool) (response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		return response{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.cookie != nil {
		req.AddCookie(&http.Cookie{Name: c.cookie.Name, Value: c.cookie.Value})
	}
	req.Header.Set("X-Forwarded-For", c.ip)
	res, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", method, rawURL, err)
	}
	if !keepCookie {
		for _, sc := range res.Cookies() {
			if strings.HasSuffix(sc.Name, "hallpass") && sc.MaxAge >= 0 && sc.Value != "" {
				c.cookie = sc
			}
		}
	}
	return response{status: res.StatusCode, servedBy: res.Header.Get("X-Served-By"),
		location: res.Header.Get("Location"), body: string(b)}, nil
}

// login signs the client in through base and reports the response.
func (c *client) login(base, username, password string) (response, error) {
	c.cookie = nil
	res, err := c.do(http.MethodPost, base+"/login", url.Values{"username": {username}, "password": {password}}, false)
	if err == nil && res.status == http.StatusSeeOther && c.cookie == nil {
		return res, fmt.Errorf("login %s: 303 without a session cookie", username)
	}
	return res, err
}

// mustLogin signs the client in through base or fails the test.
func (c *client) mustLogin(t *testing.T, base, username, password string) {
	t.Helper()
	res, err := c.login(base, username, password)
	if err != nil || res.status != http.StatusSeeOther {
		t.Fatalf("login %s through %s: %d %v\n%.500s", username, base, res.status, err, res.body)
	}
}

// home loads the signed-in home page.
func (c *client) home(base string) (response, error) {
	return c.do(http.MethodGet, base+"/", nil, false)
}

// signedOut reports whether res sends a signed-in client to the login page.
func signedOut(res response) bool {
	return res.status == http.StatusSeeOther && strings.HasPrefix(res.location, "/login")
}

// tally counts what a load saw. Failures are connection errors and every
// status other than 200, 503 and a sign-out; 503s are counted apart, split by
// who answered (a replica names itself in X-Served-By; HAProxy answers 503
// itself when it has no replica in service).
type tally struct {
	mu            sync.Mutex
	requests      int
	ok            int
	unavailable   int
	unavailableLB int
	failures      int
	signOuts      int
	servedBy      map[string]int
	first503      time.Time
	last503       time.Time
	okTimes       []time.Time // when each signed-in page came back, in order
	samples       []string    // the first few failures and sign-outs, for the log
	signedOut     map[string]bool
}

func newTally() *tally {
	return &tally{servedBy: map[string]int{}, signedOut: map[string]bool{}}
}

func (t *tally) record(c *client, res response, err error, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requests++
	sample := ""
	switch {
	case err != nil:
		t.failures++
		sample = fmt.Sprintf("%s: %v", c.name, err)
	case res.status == http.StatusOK && strings.Contains(res.body, "Hello, "):
		t.ok++
		t.servedBy[res.servedBy]++
		t.okTimes = append(t.okTimes, at)
	case res.status == http.StatusServiceUnavailable:
		t.unavailable++
		if res.servedBy == "" {
			t.unavailableLB++
		}
		if t.first503.IsZero() {
			t.first503 = at
		}
		t.last503 = at
	case signedOut(res):
		t.signOuts++
		t.signedOut[c.name] = true
		sample = fmt.Sprintf("%s: signed out by %s: 303 to %s", c.name, res.servedBy, res.location)
	default:
		t.failures++
		sample = fmt.Sprintf("%s: %d from %q: %.200s", c.name, res.status, res.servedBy, res.body)
	}
	if sample != "" && len(t.samples) < 5 {
		t.samples = append(t.samples, sample)
	}
}

// firstOKAfter returns when the first signed-in page after since came back.
func (t *tally) firstOKAfter(since time.Time) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, at := range t.okTimes {
		if at.After(since) {
			return at, true
		}
	}
	return time.Time{}, false
}

// served returns how many signed-in pages each replica has served so far,
// by replica ID.
func (t *tally) served() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.servedBy)
}

// window is the time from the first 503 to the last (zero without 503s).
func (t *tally) window() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last503.Sub(t.first503)
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := fmt.Sprintf("%d requests: %d ok, %d failed, %d × 503 (%d from HAProxy), %d sign-outs; served by %v",
		t.requests, t.ok, t.failures, t.unavailable, t.unavailableLB, t.signOuts, t.servedBy)
	if t.unavailable > 0 {
		s += fmt.Sprintf("; 503s for %s", t.last503.Sub(t.first503).Round(10*time.Millisecond))
	}
	if len(t.samples) > 0 {
		s += "\n  " + strings.Join(t.samples, "\n  ")
	}
	return s
}

// load is signed-in clients each loading the home page through the load
// balancer once per interval, until stopped or a time limit.
type load struct {
	tally *tally
	stop  chan struct{}
	wg    sync.WaitGroup
}

// Limits that keep a load bounded on a 2-core machine shared with the
// cluster: one request per client every loadEvery, never for longer than
// loadLimit.
const (
	loadEvery = 50 * time.Millisecond
	loadLimit = 2 * time.Minute
)

func startLoad(base string, clients []*client) *load {
	return startLoadOn([]string{base}, clients)
}

// startLoadOn is startLoad with each client going round bases, one request
// to each in turn (the clients starting at different ones).
func startLoadOn(bases []string, clients []*client) *load {
	l := &load{tally: newTally(), stop: make(chan struct{})}
	deadline := time.Now().Add(loadLimit)
	for i, c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(loadEvery)
			defer tick.Stop()
			for n := i; time.Now().Before(deadline); n++ {
				res, err := c.home(bases[n%len(bases)])
				l.tally.record(c, res, err, time.Now())
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return l
}

// finish stops the load, waits for its last requests and returns the tally.
func (l *load) finish() *tally {
	close(l.stop)
	l.wg.Wait()
	return l.tally
}

// loginStream signs new clients in through the load balancer, one attempt
// per interval, and keeps every client whose sign-in was acknowledged (303
// with a cookie): those sessions must survive whatever happens next.
type loginStream struct {
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	attempts int
	acked    []*client
	ackTimes []time.Time
	refused  int // 503
	// firstRefused and lastRefused bound the refusals; unclear counts
	// those whose page did not say that sign-ins are paused.
	firstRefused, lastRefused time.Time
	unclear                   []string
	failed                    []string
}

// signInsPaused is what the page of a sign-in refused while the session
// store takes no writes says (internal/web's sessionWritesPaused).
const signInsPaused = "Signing in, signing out and ending sessions are paused"

func startLoginStream(tr *http.Transport, base, username, password string, every time.Duration) *loginStream {
	s := &loginStream{stop: make(chan struct{}), done: make(chan struct{})}
	deadline := time.Now().Add(loadLimit)
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; time.Now().Before(deadline); i++ {
			c := newClient(fmt.Sprintf("%s-login-%d", username, i), tr)
			res, err := c.login(base, username, password)
			s.mu.Lock()
			s.attempts++
			switch {
			case err == nil && res.status == http.StatusSeeOther:
				s.acked = append(s.acked, c)
				s.ackTimes = append(s.ackTimes, time.Now())
			case err == nil && res.status == http.StatusServiceUnavailable:
				s.refused++
				if s.firstRefused.IsZero() {
					s.firstRefused = time.Now()
				}
				s.lastRefused = time.Now()
				if !strings.Contains(res.body, signInsPaused) {
					s.unclear = append(s.unclear, fmt.Sprintf("from %q: %.200s", res.servedBy, res.body))
				}
			case err != nil:
				s.failed = append(s.failed, err.Error())
			default:
				s.failed = append(s.failed, fmt.Sprintf("%d from %q: %.200s", res.status, res.servedBy, res.body))
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// ackAfterRefusals returns when the first sign-in was acknowledged after
// since and after the last one refused so far: sign-ins work again. False
// while none was refused after since, or none acknowledged after the last
// refusal.
func (s *loginStream) ackAfterRefusals(since time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastRefused.After(since) {
		return time.Time{}, false
	}
	for _, at := range s.ackTimes {
		if at.After(s.lastRefused) {
			return at, true
		}
	}
	return time.Time{}, false
}

func (s *loginStream) finish() {
	close(s.stop)
	<-s.done
}
