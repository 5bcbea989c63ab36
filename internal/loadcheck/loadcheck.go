// Package loadcheck drives Hallpass through its public URL the way people
// do — signing in, loading the signed-in page, signing devices out — records
// every answer with its time, and checks the history against what Hallpass
// promises: an acknowledged sign-in stays signed in, and once a sign-out was
// acknowledged no page is served with that session again.
//
// It serves deploy/partitioncheck (docker-compose: the Redis primary killed,
// or cut off together with an app replica, which the load then also reaches
// directly) and deploy/soak (the loopback cluster for 15 minutes). It knows
// Hallpass only as a browser does: forms, cookies, redirects and the
// X-Served-By header.
package loadcheck

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Kinds of request a lane sends.
const (
	SignUp   = "sign-up"
	SignIn   = "sign-in"
	PageView = "page-view"
	Revoke   = "revoke"
)

// Outcomes of a request.
const (
	Acknowledged = "ack"         // a sign-in or sign-out answered with its redirect
	Refused      = "503"         // temporarily unavailable: nothing was promised
	SignedIn     = "signed-in"   // the home page, for the session's user
	SignedOut    = "signed-out"  // a 303 to /login
	Failed       = "failed"      // a connection error or any other answer
	Throttled    = "throttled"   // 429: too many attempts from the lane's address
	Unconfirmed  = "unconfirmed" // a revocation without its answer: the session's fate is unknown
)

// Options configure Run.
type Options struct {
	// URL is where Hallpass is served (HAProxy), e.g. http://127.0.0.1:8080.
	URL string
	// Direct lists replicas' own addresses, reached without the load
	// balancer, e.g. the app replica on the Redis primary's side of a
	// partition, which the load balancer no longer reaches. Each lane sends
	// its sign-ins, sign-outs and page views to URL and to each of these in
	// turn, so a session signed in or out on one side is used on the other.
	Direct []string
	// Lanes is how many people use it at once, each with their own account,
	// address and devices. Default 6.
	Lanes int
	// Prefix starts every account's name; Run adds the lane and a random
	// suffix, so runs never share accounts. Default "load".
	Prefix string
	// Pause is how long a lane waits between rounds. Default 50 ms.
	Pause time.Duration
	// Devices is how many sessions a lane keeps signed in at once (far
	// below HALLPASS_MAX_SESSIONS_PER_USER). Default 4.
	Devices int
	// RevokeEvery: a lane signs its oldest device out every RevokeEvery
	// rounds. Default 3.
	RevokeEvery int
	// Timeout bounds each request. Default 15 s.
	Timeout time.Duration
}

func (o *Options) defaults() {
	if o.Lanes == 0 {
		o.Lanes = 6
	}
	if o.Prefix == "" {
		o.Prefix = "load"
	}
	if o.Pause == 0 {
		o.Pause = 50 * time.Millisecond
	}
	if o.Devices == 0 {
		o.Devices = 4
	}
	if o.RevokeEvery == 0 {
		o.RevokeEvery = 3
	}
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Second
	}
}

// Event is one request and its answer.
type Event struct {
	Lane     int       `json:"lane"`
	Kind     string    `json:"kind"`
	Session  string    `json:"session,omitempty"` // a short hash of the cookie, never the cookie
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Status   int       `json:"status,omitempty"`
	ServedBy string    `json:"served_by,omitempty"`
	Outcome  string    `json:"outcome"`
	Err      string    `json:"err,omitempty"`
	// Via is the Direct address the request went to; empty for the load
	// balancer.
	Via string `json:"via,omitempty"`
	// Violation says what promise this answer broke, if any, and Breach
	// which one (BreachRevoked or BreachLost).
	Violation string `json:"violation,omitempty"`
	Breach    string `json:"breach,omitempty"`
	// Final marks the checks made by Verify once the load had stopped.
	Final bool `json:"final,omitempty"`
}

// The promises a page view can break.
const (
	// BreachRevoked: served signed in after its sign-out was acknowledged.
	BreachRevoked = "served after its sign-out"
	// BreachLost: signed out though its sign-in was acknowledged and it was
	// never revoked.
	BreachLost = "signed out while never revoked"
)

// session is one signed-in device of a lane.
type session struct {
	id        string // short hash, for the history
	cookie    *http.Cookie
	ackedAt   time.Time // sign-in acknowledged
	revokedAt time.Time // sign-out acknowledged; zero while live
}

// lane is one person: an account, an address, some devices.
type lane struct {
	n        int
	user     string
	password string
	ip       string
	http     *http.Client
	bases    []string // the load balancer, then the Direct addresses
	views    int      // page views sent, to take bases in turn
	writes   int      // sign-ins and sign-outs sent, likewise
	live     []*session
	revoked  []*session
	dropped  int // sessions whose sign-out was never answered
	h        *History
}

// History is everything a run sent and got back. Its methods are safe for
// concurrent use.
type History struct {
	mu     sync.Mutex
	events []Event
	lanes  []*lane
	base   string // the load balancer
}

func (h *History) add(e Event) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
}

// Events returns a copy of the events so far, in the order they ended.
func (h *History) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

// Run is a load started by Start: its lanes run until Start's context ends,
// and History is complete once Wait returns.
type Run struct {
	History *History
	wg      sync.WaitGroup
}

// Start creates the lanes' accounts (POST /signup, tried again while
// Hallpass answers 503, for up to a minute) and starts the load.
func Start(ctx context.Context, opts Options) (*Run, error) {
	opts.defaults()
	tr := &http.Transport{MaxIdleConns: 100, MaxIdleConnsPerHost: 50, IdleConnTimeout: 30 * time.Second}
	h := &History{base: strings.TrimRight(opts.URL, "/")}
	suffix := randomHex(3)
	for i := range opts.Lanes {
		l := &lane{
			n:        i,
			user:     fmt.Sprintf("%s%d-%s", opts.Prefix, i, suffix),
			password: randomHex(12),
			ip:       laneAddr(fmt.Sprintf("%s%d-%s", opts.Prefix, i, suffix)),
			http: &http.Client{Transport: tr, Timeout: opts.Timeout,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
			bases: append([]string{h.base}, trimAll(opts.Direct)...),
			h:     h,
		}
		if err := l.signUp(ctx); err != nil {
			return nil, err
		}
		h.lanes = append(h.lanes, l)
	}
	r := &Run{History: h}
	for _, l := range h.lanes {
		r.wg.Go(func() { l.run(ctx, opts) })
	}
	return r, nil
}

// Wait waits until every lane has stopped (its context ended).
func (r *Run) Wait() { r.wg.Wait() }

// laneAddr is the lane's own client address, sent as X-Forwarded-For (the
// replicas trust HAProxy's network as a proxy): a person of their own, so one
// lane's refused attempts never throttle the others.
func laneAddr(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	n := h.Sum32()
	return fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff|1)
}

func trimAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = strings.TrimRight(u, "/")
	}
	return out
}

// via is what Event.Via says of a request sent to base.
func (l *lane) via(base string) string {
	if base == l.h.base {
		return ""
	}
	return base
}

// nextView and nextWrite pick where the lane's next page view or sign-in /
// sign-out goes: the load balancer and each Direct address in turn.
func (l *lane) nextView() string {
	b := l.bases[l.views%len(l.bases)]
	l.views++
	return b
}

func (l *lane) nextWrite() string {
	b := l.bases[l.writes%len(l.bases)]
	l.writes++
	return b
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// answer is what one request came back with.
type answer struct {
	status   int
	servedBy string
	location string
	body     string
	cookie   *http.Cookie // the session cookie it set, if any
	cleared  bool         // it expired the session cookie
}

// do sends one request as the lane to base, with the given session's cookie.
func (l *lane) do(ctx context.Context, base, method, path string, form url.Values, s *session) (answer, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return answer{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	// Sent by hand: the Secure __Host- cookie travels over plain http as a
	// browser sends it to a loopback address.
	if s != nil {
		req.AddCookie(&http.Cookie{Name: s.cookie.Name, Value: s.cookie.Value})
	}
	req.Header.Set("X-Forwarded-For", l.ip)
	res, err := l.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return answer{}, fmt.Errorf("read body: %w", err)
	}
	a := answer{status: res.StatusCode, servedBy: res.Header.Get("X-Served-By"),
		location: res.Header.Get("Location"), body: string(b)}
	for _, c := range res.Cookies() {
		if c.Name != "__Host-hallpass" {
			continue
		}
		if c.MaxAge < 0 || c.Value == "" {
			a.cleared = true
		} else {
			a.cookie = c
		}
	}
	return a, nil
}

// verdict is what judge made of a page view.
type verdict struct {
	outcome   string
	violation string // empty: no promise broken
	breach    string
}

// record adds an event for one request sent to base.
func (l *lane) record(kind, base string, s *session, start time.Time, a answer, err error, v verdict) Event {
	return l.recordFinal(kind, base, s, start, a, err, v, false)
}

func (l *lane) recordFinal(kind, base string, s *session, start time.Time, a answer, err error, v verdict, final bool) Event {
	e := Event{Lane: l.n, Kind: kind, Start: start, End: time.Now(), Status: a.status, ServedBy: a.servedBy,
		Via: l.via(base), Outcome: v.outcome, Violation: v.violation, Breach: v.breach, Final: final}
	if s != nil {
		e.Session = s.id
	}
	if err != nil {
		e.Err = err.Error()
	}
	l.h.add(e)
	return e
}

// classify names the outcome of an answer that is neither an acknowledgement
// nor a page.
func classify(a answer, err error) string {
	switch {
	case err != nil:
		return Failed
	case a.status == http.StatusServiceUnavailable:
		return Refused
	case a.status == http.StatusTooManyRequests:
		return Throttled
	default:
		return Failed
	}
}

func (l *lane) signUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		start := time.Now()
		a, err := l.do(ctx, l.h.base, http.MethodPost, "/signup",
			url.Values{"username": {l.user}, "password": {l.password}, "confirm_password": {l.password}}, nil)
		if err == nil && a.status == http.StatusSeeOther {
			l.record(SignUp, l.h.base, nil, start, a, nil, verdict{outcome: Acknowledged})
			return nil
		}
		l.record(SignUp, l.h.base, nil, start, a, err, verdict{outcome: classify(a, err)})
		if err == nil && a.status != http.StatusServiceUnavailable {
			return fmt.Errorf("sign up %s: %d %.300s", l.user, a.status, a.body)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sign up %s: no answer but 503 or an error within a minute: %v", l.user, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// run is the lane's loop: keep Devices sessions signed in, load the page
// with each in turn, sign the oldest out every RevokeEvery rounds and then
// try its cookie again, and try one earlier revoked cookie each round.
//
// A request once sent is never cancelled, even when ctx ends meanwhile: a
// sign-out cut off on the client's side may still have happened on the
// server's, and the history would then expect the session to live on.
// The lane stops between requests instead.
func (l *lane) run(ctx context.Context, opts Options) {
	stopped := func() bool { return ctx.Err() != nil }
	for round := 0; !stopped(); round++ {
		if len(l.live) < opts.Devices {
			l.signIn()
		}
		if len(l.live) > 0 && !stopped() {
			l.view(l.live[round%len(l.live)])
		}
		if round%opts.RevokeEvery == opts.RevokeEvery-1 && len(l.live) > 0 && !stopped() {
			if s := l.revoke(l.live[0]); s != nil {
				l.view(s)
			}
		}
		if len(l.revoked) > 0 && !stopped() {
			l.view(l.revoked[round%len(l.revoked)])
		}
		select {
		case <-ctx.Done():
		case <-time.After(opts.Pause):
		}
	}
}

func (l *lane) signIn() {
	base := l.nextWrite()
	start := time.Now()
	a, err := l.do(context.Background(), base, http.MethodPost, "/login", url.Values{"username": {l.user}, "password": {l.password}}, nil)
	if err == nil && a.status == http.StatusSeeOther && a.cookie != nil {
		sum := sha256.Sum256([]byte(a.cookie.Value))
		s := &session{id: hex.EncodeToString(sum[:4]), cookie: a.cookie, ackedAt: time.Now()}
		l.live = append(l.live, s)
		l.record(SignIn, base, s, start, a, nil, verdict{outcome: Acknowledged})
		return
	}
	l.record(SignIn, base, nil, start, a, err, verdict{outcome: classify(a, err)})
}

// view loads the home page with s and checks the answer against s's state.
func (l *lane) view(s *session) Event {
	base := l.nextView()
	start := time.Now()
	a, err := l.do(context.Background(), base, http.MethodGet, "/", nil, s)
	return l.record(PageView, base, s, start, a, err, l.judge(s, a, err))
}

// judge names a page view's outcome and the promise it broke, if any.
func (l *lane) judge(s *session, a answer, err error) verdict {
	signedIn := err == nil && a.status == http.StatusOK && strings.Contains(a.body, "Hello, "+l.user)
	signedOut := err == nil && a.status == http.StatusSeeOther && strings.HasPrefix(a.location, "/login")
	switch {
	case signedIn && !s.revokedAt.IsZero():
		return verdict{SignedIn, fmt.Sprintf("served signed in %s after its sign-out was acknowledged",
			time.Since(s.revokedAt).Round(time.Millisecond)), BreachRevoked}
	case signedIn:
		return verdict{outcome: SignedIn}
	case signedOut && s.revokedAt.IsZero():
		return verdict{SignedOut, fmt.Sprintf("signed out %s after its sign-in was acknowledged, never revoked",
			time.Since(s.ackedAt).Round(time.Millisecond)), BreachLost}
	case signedOut:
		return verdict{outcome: SignedOut}
	default:
		return verdict{outcome: classify(a, err)}
	}
}

// revoke signs s out (POST /logout, as "sign out" on that device). An
// acknowledged sign-out moves s to the revoked sessions and returns it; one
// without its answer drops s from every later check, since whether it took
// effect is unknown.
func (l *lane) revoke(s *session) *session {
	base := l.nextWrite()
	start := time.Now()
	a, err := l.do(context.Background(), base, http.MethodPost, "/logout", url.Values{}, s)
	l.live = l.live[1:]
	if err == nil && a.status == http.StatusSeeOther && a.cleared {
		s.revokedAt = time.Now()
		l.revoked = append(l.revoked, s)
		l.record(Revoke, base, s, start, a, nil, verdict{outcome: Acknowledged})
		return s
	}
	outcome := classify(a, err)
	if outcome == Failed && err == nil && a.status == http.StatusSeeOther {
		outcome = Unconfirmed
	}
	l.dropped++
	l.record(Revoke, base, s, start, a, err, verdict{outcome: outcome})
	return nil
}

// Verify checks, once the load has stopped and the cluster has healed, every
// session the lanes still hold and every one they revoked: through the load
// balancer, rounds times each (three rounds reach every replica of a round
// robin), then once on each of direct (replicas' own addresses, so that every
// replica is asked for certain), tried again while the answer is 503 until
// within has passed. It records each check as a final event.
func (h *History) Verify(ctx context.Context, rounds int, within time.Duration, direct ...string) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var targets []string
	for range rounds {
		targets = append(targets, h.base)
	}
	targets = append(targets, trimAll(direct)...)
	for _, l := range h.lanes {
		for _, s := range append(append([]*session(nil), l.live...), l.revoked...) {
			for _, base := range targets {
				for {
					start := time.Now()
					a, err := l.do(ctx, base, http.MethodGet, "/", nil, s)
					v := l.judge(s, a, err)
					if (v.outcome == Refused || v.outcome == Failed) && ctx.Err() == nil {
						time.Sleep(200 * time.Millisecond)
						continue
					}
					l.recordFinal(PageView, base, s, start, a, err, v, true)
					break
				}
			}
		}
	}
}

// Held reports how many sessions the lanes still hold signed in, how many
// they revoked with an acknowledgement, and how many revocations went
// unanswered (those sessions are left out of every check).
func (h *History) Held() (live, revoked, unknown int) {
	for _, l := range h.lanes {
		live += len(l.live)
		revoked += len(l.revoked)
		unknown += l.dropped
	}
	return live, revoked, unknown
}
