package cluster_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/cluster"
	"github.com/hallpass/hallpass/internal/testkit"
)

// The scenarios in this file check the replicas' session caches
// (internal/sessioncache): every replica serves signed-in pages from its own
// memory, and a revocation answers only once no replica can serve the
// revoked session any more, whatever happens to the invalidation channels or
// to the Redis primary.

// Users and limits of the cache scenarios. Each lane (see lane) has a user
// of its own besides these.
const (
	adminUser = "olga"  // the administrator of the admin kinds of revocation
	liveUser  = "frank" // the signed-in clients of the loads in scenarios 8 and 9
	// otherPassword is what a password-change trial sets; the next one sets
	// password back.
	otherPassword = "staple battery horse correct"
	// revokeTrials is how many revocations scenario 7 makes, at least.
	revokeTrials = 1000
	// lanesPerKind is how many lanes of each kind scenario 7 runs side by
	// side, but for the kinds in oneLane.
	lanesPerKind = 2
	// sessionLimit is the cluster's HALLPASS_MAX_SESSIONS_PER_USER (the
	// default).
	sessionLimit = 100
	// refusedWithin bounds how long a check keeps asking a replica that
	// still serves a revoked cookie (a failure) before it gives up.
	refusedWithin = 2 * time.Second
	// cachesBackWithin bounds how long the caches may take to be trusted
	// again once a disruption is over.
	cachesBackWithin = 30 * time.Second
	// liveClients is how many signed-in clients load every replica in
	// scenarios 8 and 9.
	liveClients = 6
	// signInRetries is how many times a sign-in that got 503 is tried
	// again.
	signInRetries = 3
	// unacknowledgedShare bounds the revocations that may get 503 in a
	// scenario where Redis stays up, as a share of those acknowledged: a
	// replica starved of CPU may miss the 250 ms in which Redis's WAIT must
	// see the write on a Redis replica (HALLPASS_REDIS_WAIT_TIMEOUT), and
	// the page then says the revocation did not happen; more than that is an
	// outage.
	unacknowledgedShare = 20
	// cacheWindow is how many signed-in pages every replica serves in the
	// window that shows the caches serve: none of them may cost a GET.
	cacheWindow = 20
	// hashesPerReplica is how many password hashes the suite asks of one
	// replica at once: a replica runs two per client address and makes
	// others wait, for 2 s at most, then answers 503.
	hashesPerReplica = 2
	// signInsAtOnce bounds concurrent sign-ins spread over the replicas.
	signInsAtOnce = hashesPerReplica * cluster.Replicas
)

// revokeKind is one of the page actions that end a session.
type revokeKind int

const (
	signOutDevice   revokeKind = iota // "Sign out device" on the devices page, from another device
	signOut                           // the device signs itself out
	signOutOthers                     // "Sign out all other devices", from another device
	changePassword                    // a password change on another device: the others end, it goes on with a fresh token
	adminEndSession                   // an administrator signs the session out
	adminEndUser                      // an administrator signs the user out everywhere
	adminDisable                      // an administrator disables the user (enabled again before the next sign-in)
	adminEndSelf                      // an administrator signs themself out everywhere: this device goes on with a fresh token
	limitEviction                     // a sign-in at the session limit ends the least recently active session
	revokeKinds                       // how many kinds there are
)

func (k revokeKind) String() string {
	return [...]string{"sign out device", "sign out", "sign out other devices", "password change",
		"admin: sign out session", "admin: sign out everywhere", "admin: disable", "admin: sign out everywhere, own account",
		"limit eviction"}[k]
}

// slug names the kind in user names.
func (k revokeKind) slug() string {
	return [...]string{"device", "signout", "others", "password", "adminsession", "adminuser", "disable", "adminself", "limit"}[k]
}

// oneLane are the kinds of which scenario 7 runs a single lane: a password
// change costs three password hashes, and the session limit a user with a
// hundred sessions.
var oneLane = []revokeKind{changePassword, limitEviction}

// streamKinds are the kinds that scenarios 8 and 9 run: those whose lane
// knows where it stands after a revocation that got no answer (a password
// change, an eviction or a token renewal that fails half-way leaves it
// guessing).
var streamKinds = []revokeKind{signOutDevice, signOut, signOutOthers, adminEndSession, adminEndUser, adminDisable}

// hashSlots hands out, per replica, the suite's share of its password
// hashes (hashesPerReplica), so that no sign-in of the suite's waits on the
// replica for longer than its hashes take.
type hashSlots struct {
	slots   map[string]chan struct{}
	retried atomic.Int64 // sign-ins tried again after a 503
}

func newHashSlots(c *cluster.Cluster) *hashSlots {
	h := &hashSlots{slots: map[string]chan struct{}{}}
	for i := range cluster.Replicas {
		h.slots[c.ReplicaURL(i)] = make(chan struct{}, hashesPerReplica)
	}
	return h
}

// take waits for a slot on the replica at base and returns its release.
func (h *hashSlots) take(base string) (release func()) {
	slot := h.slots[base]
	slot <- struct{}{}
	return func() { <-slot }
}

// login signs c in through base, within the replica's share of hashes,
// with form's fields besides the username and password.
func (h *hashSlots) login(c *client, base, username, password string, form url.Values) (response, error) {
	defer h.take(base)()
	if form == nil {
		return c.login(base, username, password)
	}
	c.cookie = nil
	form.Set("username", username)
	form.Set("password", password)
	return c.do(http.MethodPost, base+"/login", form, false)
}

// signIn is login tried again, up to signInRetries times, while the replica
// answers 503: one starved of CPU may miss the time its password hash or
// Redis's WAIT has. A sign-in that got 503 ended no session: trying again
// changes nothing the scenarios check.
func (h *hashSlots) signIn(c *client, base, username, password string, form url.Values) (response, error) {
	res, err := h.login(c, base, username, password, form)
	for retry := 0; retry < signInRetries && err == nil && res.status == http.StatusServiceUnavailable; retry++ {
		h.retried.Add(1)
		res, err = h.login(c, base, username, password, form)
	}
	return res, err
}

// lane is one user whose sessions are revoked one after another, all by
// one kind of revocation. Lanes run side by side; a lane itself runs one
// trial at a time.
type lane struct {
	name     string
	kind     revokeKind
	user     string
	password string  // the user's password now
	userID   string  // for the admin kinds that act on the user
	other    *client // another device of the user, which revokes (device, others, password)
	admin    *client // an administrator's session (the admin kinds)
	victim   *client // the session the next revocation ends
	victimID string  // its public ID (device, admin: session)
	disabled bool    // adminDisable: the user may be disabled now
	// unsure is set when a revocation got no acknowledgement: the lane's
	// password, devices or victim may or may not have changed.
	unsure bool
	tr     *http.Transport
	hashes *hashSlots
	seq    int
}

// trial is one revocation: the cookies it ends, each read on every replica
// beforehand.
type trial struct {
	lane    *lane
	revoked []*client
}

// cacheLanes returns the lanes of the cache scenarios, setting them up the
// first time: their users, the administrator, the devices that revoke, and
// the session-limit user's sessions up to the limit.
func (s *suite) cacheLanes(t *testing.T) []*lane {
	t.Helper()
	if s.lanes != nil {
		return s.lanes
	}
	began := time.Now()
	var lanes []*lane
	for k := range revokeKinds {
		n := lanesPerKind
		if slices.Contains(oneLane, k) {
			n = 1
		}
		for i := range n {
			name := fmt.Sprintf("cache-%s-%d", k.slug(), i+1)
			lanes = append(lanes, &lane{name: name, kind: k, user: name, password: password, tr: s.tr, hashes: s.hashSlots()})
		}
	}
	users := []string{adminUser, liveUser}
	admins := map[string]bool{adminUser: true}
	for _, l := range lanes {
		users = append(users, l.user)
		admins[l.user] = l.kind == adminEndSelf
	}
	if err := forEach(len(users), signInsAtOnce, func(i int) error {
		return s.c.AddUser(t.Context(), users[i], password, admins[users[i]])
	}); err != nil {
		t.Fatal(err)
	}
	// Each lane's administrator and other device, signed in on the
	// replicas in turn.
	if err := forEach(len(lanes), signInsAtOnce, func(i int) error {
		l := lanes[i]
		base := s.c.ReplicaURL(i % cluster.Replicas)
		switch l.kind {
		case signOutDevice, signOutOthers, changePassword:
			l.other = newClient(l.name+"-other", s.tr)
			res, err := s.hashSlots().signIn(l.other, base, l.user, l.password, nil)
			return expectRedirect(res, err, "sign in "+l.user, "/")
		case adminEndSession, adminEndUser, adminDisable, adminEndSelf:
			l.admin = newClient(l.name+"-admin", s.tr)
			who := adminUser
			if l.kind == adminEndSelf {
				who = l.user
				l.victim = l.admin
			}
			res, err := s.hashSlots().signIn(l.admin, base, who, password, nil)
			if err := expectRedirect(res, err, "sign in "+who, "/"); err != nil {
				return err
			}
			if l.kind != adminEndSession {
				l.userID, err = l.admin.userID(base, l.user)
			}
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The session-limit lane's user holds all but one of its sessions in
	// "keep me signed in" sessions, which are never the least recently
	// active: each trial's sign-in then evicts the plain session signed in
	// before it, which is the next trial's victim.
	for _, l := range lanes {
		if l.kind != limitEviction {
			continue
		}
		if err := forEach(sessionLimit-1, signInsAtOnce, func(i int) error {
			c := newClient(fmt.Sprintf("%s-kept-%d", l.name, i), s.tr)
			res, err := s.hashSlots().signIn(c, s.c.ReplicaURL(i%cluster.Replicas), l.user, l.password, url.Values{"remember": {"on"}})
			return expectRedirect(res, err, "sign in "+l.user+" (kept signed in)", "/")
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("cache lanes set up in %s: %d users, %d lanes", time.Since(began).Round(time.Millisecond), len(users), len(lanes))
	s.lanes = lanes
	return lanes
}

// hashSlots returns the suite's shares of the replicas' password hashes.
func (s *suite) hashSlots() *hashSlots {
	if s.hashes == nil {
		s.hashes = newHashSlots(s.c)
	}
	return s.hashes
}

// lanesOf returns one lane of each of kinds.
func lanesOf(lanes []*lane, kinds []revokeKind) []*lane {
	var out []*lane
	for _, k := range kinds {
		for _, l := range lanes {
			if l.kind == k {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// prepare signs the next victim in through base and returns the trial. In
// the session limit's lane, the victim is the session the previous trial's
// revocation signed in; in the lane of the administrator who signs
// themself out, it is their own session.
func (l *lane) prepare(base string) (*trial, error) {
	if l.unsure {
		if err := l.recover(base); err != nil {
			return nil, err
		}
		l.unsure = false
	}
	if l.kind == adminDisable && l.disabled {
		res, err := l.admin.do(http.MethodPost, base+"/admin/users/"+l.userID+"/enable", url.Values{}, false)
		if err := expectRedirect(res, err, "enable "+l.user, "done=enabled"); err != nil {
			return nil, err
		}
		l.disabled = false
	}
	if l.kind != adminEndSelf && (l.kind != limitEviction || l.victim == nil) {
		l.seq++
		v := newClient(fmt.Sprintf("%s-%d", l.name, l.seq), l.tr)
		res, err := l.hashes.signIn(v, base, l.user, l.password, nil)
		if err := expectRedirect(res, err, "sign in "+l.user, "/"); err != nil {
			return nil, err
		}
		l.victim = v
	}
	if l.kind == signOutDevice || l.kind == adminEndSession {
		id, err := l.victim.currentSessionID(base)
		if err != nil {
			return nil, err
		}
		l.victimID = id
	}
	tr := &trial{lane: l, revoked: []*client{l.victim.clone("")}}
	if l.kind == changePassword {
		// The device that changes the password goes on with a fresh token:
		// its cookie of now is revoked too.
		tr.revoked = append(tr.revoked, l.other.clone("-before-password-change"))
	}
	return tr, nil
}

// recover brings a lane whose last revocation got no acknowledgement back
// to a known state: a password change may have changed the password and
// ended the other device's session without giving it a fresh token; an
// administrator's renewal may have ended their session; an eviction may
// or may not have happened (a plain sign-in at the limit evicts whichever
// plain session is older, so a fresh victim puts the lane right).
func (l *lane) recover(base string) error {
	switch l.kind {
	case changePassword:
		for _, pw := range []string{l.password, otherPassword, password} {
			l.other = newClient(l.name+"-other", l.tr)
			res, err := l.hashes.signIn(l.other, base, l.user, pw, nil)
			if err == nil && res.status == http.StatusSeeOther {
				l.password = pw
				return nil
			}
		}
		return fmt.Errorf("%s: neither password signs in after a password change that got no answer", l.user)
	case adminEndSelf:
		l.admin = newClient(l.name+"-admin", l.tr)
		res, err := l.hashes.signIn(l.admin, base, l.user, l.password, nil)
		l.victim = l.admin
		return expectRedirect(res, err, "sign in "+l.user, "/")
	case limitEviction:
		l.victim = nil
	}
	return nil
}

// revoke ends the trial's sessions through base with the lane's kind of
// page action, and returns an error unless the action was acknowledged.
func (l *lane) revoke(base string) error {
	none := url.Values{}
	var res response
	var err error
	var want string
	switch l.kind {
	case signOutDevice:
		res, err = l.other.do(http.MethodPost, base+"/account/sessions/"+l.victimID+"/revoke", none, false)
		want = "/account/sessions?done=revoked"
	case signOut:
		res, err = l.victim.do(http.MethodPost, base+"/logout", none, true)
		want = "/login?reason=signed-out"
	case signOutOthers:
		res, err = l.other.do(http.MethodPost, base+"/account/sessions/revoke-others", none, false)
		want = "/account/sessions?done=revoked-others"
	case changePassword:
		next := otherPassword
		if l.password == otherPassword {
			next = password
		}
		form := url.Values{"current_password": {l.password}, "new_password": {next}, "confirm_password": {next}}
		release := l.hashes.take(base)
		res, err = l.other.do(http.MethodPost, base+"/account/password", form, false)
		release()
		want = "/account/password?done=password"
		if err == nil && res.status == http.StatusSeeOther {
			l.password = next
		}
	case adminEndSession:
		res, err = l.admin.do(http.MethodPost, base+"/admin/sessions/"+l.victimID+"/revoke", none, false)
		want = "done=revoked"
	case adminEndUser:
		res, err = l.admin.do(http.MethodPost, base+"/admin/users/"+l.userID+"/revoke-all", none, false)
		want = "done=revoked-all"
	case adminDisable:
		l.disabled = true // whatever the answer: enable before the next sign-in
		res, err = l.admin.do(http.MethodPost, base+"/admin/users/"+l.userID+"/disable", none, false)
		want = "done=disabled"
	case adminEndSelf:
		// The administrator's client takes the fresh token.
		res, err = l.admin.do(http.MethodPost, base+"/admin/users/"+l.userID+"/revoke-all", none, false)
		want = "done=revoked-all"
	case limitEviction:
		l.seq++
		next := newClient(fmt.Sprintf("%s-%d", l.name, l.seq), l.tr)
		res, err = l.hashes.login(next, base, l.user, l.password, nil)
		want = "/"
		if err == nil && res.status == http.StatusSeeOther {
			l.victim = next // the session the next trial evicts
		}
	}
	return expectRedirect(res, err, fmt.Sprintf("%s (%s)", l.kind, l.user), want)
}

// expectRedirect returns nil for a 303 whose location contains want, and
// otherwise an error naming what was done.
func expectRedirect(res response, err error, what, want string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if res.status != http.StatusSeeOther || !strings.Contains(res.location, want) {
		return fmt.Errorf("%s: %d from %q (location %q), want a 303 to %s: %.300s", what, res.status, res.servedBy, res.location, want, res.body)
	}
	return nil
}

// currentSession finds, in the devices page, the public ID of this device.
var currentSession = regexp.MustCompile(`class="session session-current" data-session-id="([^"]+)"`)

// currentSessionID returns the public ID of the client's session, from its
// devices page on base.
func (c *client) currentSessionID(base string) (string, error) {
	res, err := c.do(http.MethodGet, base+"/account/sessions", nil, false)
	if err != nil {
		return "", fmt.Errorf("%s: devices page: %w", c.name, err)
	}
	m := currentSession.FindStringSubmatch(res.body)
	if res.status != http.StatusOK || m == nil {
		return "", fmt.Errorf("%s: devices page: %d from %q without this device's session: %.300s", c.name, res.status, res.servedBy, res.body)
	}
	return m[1], nil
}

// userID returns the ID of the user called name, from the administrator's
// users page on base.
func (c *client) userID(base, name string) (string, error) {
	res, err := c.do(http.MethodGet, base+"/admin/users?q="+url.QueryEscape(name), nil, false)
	if err != nil {
		return "", fmt.Errorf("%s: users page: %w", c.name, err)
	}
	m := regexp.MustCompile(`href="/admin/users/(\d+)">` + regexp.QuoteMeta(name) + `<`).FindStringSubmatch(res.body)
	if res.status != http.StatusOK || m == nil {
		return "", fmt.Errorf("%s: users page: %d from %q without %s: %.300s", c.name, res.status, res.servedBy, name, res.body)
	}
	return m[1], nil
}

// clone returns a client with c's cookie as it is now.
func (c *client) clone(suffix string) *client {
	return &client{name: c.name + suffix, cookie: c.cookie, http: c.http}
}

// signedIn reports whether res is the signed-in home page.
func signedIn(res response) bool {
	return res.status == http.StatusOK && strings.Contains(res.body, "Hello, ")
}

// readEverywhere loads the home page with every cookie of trials on every
// replica at once; each must be signed in.
func (s *suite) readEverywhere(trials []*trial) error {
	type read struct {
		c *client
		i int
	}
	var reads []read
	for _, tr := range trials {
		for _, c := range tr.revoked {
			for i := range cluster.Replicas {
				reads = append(reads, read{c, i})
			}
		}
	}
	return forEach(len(reads), len(reads), func(n int) error {
		r := reads[n]
		res, err := r.c.home(s.c.ReplicaURL(r.i))
		if err != nil {
			return fmt.Errorf("%s on %s before the revocation: %w", r.c.name, s.c.ReplicaID(r.i), err)
		}
		if !signedIn(res) {
			return fmt.Errorf("%s on %s before the revocation: %d from %q (location %q), want signed in", r.c.name, s.c.ReplicaID(r.i), res.status, res.servedBy, res.location)
		}
		return nil
	})
}

// readFromCaches reads every cookie of trials on every replica until one
// whole round costs the Redis primary no GET: then every replica answered
// every one of them from its own memory. It returns how many rounds it took.
func (s *suite) readFromCaches(trials []*trial) (int, error) {
	rounds := 0
	err := testkit.PollUntil(10*time.Second, func() error {
		rounds++
		before, gets, err := s.c.RedisCommandCalls("get")
		if err != nil {
			return err
		}
		if err := s.readEverywhere(trials); err != nil {
			return err
		}
		after, gets2, err := s.c.RedisCommandCalls("get")
		if err != nil {
			return err
		}
		if after != before || gets2 != gets {
			return fmt.Errorf("a round of reads cost %d GETs on the Redis primary (%s, then %s)", gets2-gets, before, after)
		}
		return nil
	})
	return rounds, err
}

// revokeAndCheck revokes tr through replica on, and the moment the answer
// arrives asks every replica with every cookie revoked (see
// revocations.check). It returns an error when the revocation was not
// acknowledged.
func (rv *revocations) revokeAndCheck(c *cluster.Cluster, tr *trial, on int) error {
	sent := time.Now()
	err := tr.lane.revoke(c.ReplicaURL(on))
	at := time.Now()
	if err != nil {
		tr.lane.unsure = true
		rv.unacknowledged(err)
		return err
	}
	rv.acknowledged(tr, at.Sub(sent), at)
	var wg sync.WaitGroup
	for _, v := range tr.revoked {
		for i := range cluster.Replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rv.check(c, v, i, on, at)
			}()
		}
	}
	wg.Wait()
	return nil
}

// revocations counts what revoked cookies got. A revoked cookie is one
// whose revocation had been acknowledged when the request was sent; it
// must never be served signed in.
type revocations struct {
	mu             sync.Mutex
	trials         [revokeKinds]int // acknowledged revocations, by kind
	unacked        int              // revocations that got no acknowledgement (503 in an outage)
	unackedSamples []string
	cookies        []revokedCookie // every cookie revoked, for the watcher
	ackTimes       []time.Time     // when each revocation was acknowledged
	revokeTimes    []time.Duration // how long acknowledged revocations took to answer
	requests       int             // requests with a revoked cookie
	served         int             // of which answered signed in: must be none
	unavailable    int             // 503s
	failures       int             // connection errors and other statuses
	neverRefused   int             // checks that gave up, the replica still serving the cookie
	unanswered     int             // checks that gave up, the replica unavailable (an outage)
	refusals       []time.Duration // revocation's answer to another replica's refusal
	firstTry       int             // of those, refusals of the first request
	samples        []string
}

// revokedCookie is a cookie and when its revocation was acknowledged.
type revokedCookie struct {
	c  *client
	at time.Time
}

func (rv *revocations) acknowledged(tr *trial, took time.Duration, at time.Time) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.trials[tr.lane.kind]++
	rv.revokeTimes = append(rv.revokeTimes, took)
	rv.ackTimes = append(rv.ackTimes, at)
	for _, c := range tr.revoked {
		rv.cookies = append(rv.cookies, revokedCookie{c, at})
	}
}

func (rv *revocations) unacknowledged(err error) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.unacked++
	if len(rv.unackedSamples) < 3 {
		rv.unackedSamples = append(rv.unackedSamples, err.Error())
	}
}

// check asks replica i with revoked cookie v, revoked through replica on
// and acknowledged at at, until the replica refuses it, or gives up after
// refusedWithin: every answer before the refusal is counted.
func (rv *revocations) check(c *cluster.Cluster, v *client, i, on int, at time.Time) {
	for first := true; ; first = false {
		res, err := v.do(http.MethodGet, c.ReplicaURL(i)+"/", nil, true)
		answered := time.Now()
		if rv.record(c, v, i, res, err, at) {
			if i != on {
				rv.mu.Lock()
				rv.refusals = append(rv.refusals, answered.Sub(at))
				if first {
					rv.firstTry++
				}
				rv.mu.Unlock()
			}
			return
		}
		unavailable := err != nil || res.status == http.StatusServiceUnavailable
		if answered.Sub(at) > refusedWithin {
			rv.mu.Lock()
			if unavailable {
				rv.unanswered++ // the watcher and the sweep ask again later
			} else {
				rv.neverRefused++
			}
			rv.mu.Unlock()
			return
		}
		if unavailable {
			time.Sleep(20 * time.Millisecond) // a pause before asking again in an outage
		}
	}
}

// sweep asks every replica once with every cookie revoked so far and
// returns how many did not refuse it.
func (rv *revocations) sweep(c *cluster.Cluster) int {
	rv.mu.Lock()
	cookies := slices.Clone(rv.cookies)
	rv.mu.Unlock()
	var mu sync.Mutex
	notRefused := 0
	_ = forEach(len(cookies)*cluster.Replicas, 2*cluster.Replicas, func(n int) error {
		v, i := cookies[n/cluster.Replicas], n%cluster.Replicas
		res, err := v.c.do(http.MethodGet, c.ReplicaURL(i)+"/", nil, true)
		if !rv.record(c, v.c, i, res, err, v.at) {
			mu.Lock()
			notRefused++
			mu.Unlock()
		}
		return nil
	})
	return notRefused
}

// record counts one answer to revoked cookie v from replica i and reports
// whether it was a refusal.
func (rv *revocations) record(c *cluster.Cluster, v *client, i int, res response, err error, at time.Time) bool {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.requests++
	sample := ""
	switch {
	case err != nil:
		rv.failures++
		sample = fmt.Sprintf("%s on %s: %v", v.name, c.ReplicaID(i), err)
	case signedOut(res):
		return true
	case signedIn(res):
		rv.served++
		sample = fmt.Sprintf("%s: SERVED SIGNED IN by %s %s after its revocation was acknowledged", v.name, res.servedBy, time.Since(at).Round(time.Microsecond))
	case res.status == http.StatusServiceUnavailable:
		rv.unavailable++
	default:
		rv.failures++
		sample = fmt.Sprintf("%s on %s: %d (location %q): %.200s", v.name, c.ReplicaID(i), res.status, res.location, res.body)
	}
	if sample != "" && len(rv.samples) < 8 {
		rv.samples = append(rv.samples, sample)
	}
	return false
}

// total is the number of acknowledged revocations.
func (rv *revocations) total() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	n := 0
	for _, k := range rv.trials {
		n += k
	}
	return n
}

// acknowledgedAfter returns how many revocations were acknowledged after
// since.
func (rv *revocations) acknowledgedAfter(since time.Time) int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	n := 0
	for _, at := range rv.ackTimes {
		if at.After(since) {
			n++
		}
	}
	return n
}

// revokeTimesBetween gives the percentiles of how long the revocations
// acknowledged between from and to took to answer.
func (rv *revocations) revokeTimesBetween(from, to time.Time) string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	var ds []time.Duration
	for i, at := range rv.ackTimes {
		if at.After(from) && at.Before(to) {
			ds = append(ds, rv.revokeTimes[i])
		}
	}
	return percentiles(ds)
}

// byKind says how many revocations of each kind were acknowledged.
func (rv *revocations) byKind() string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	var parts []string
	for k, n := range rv.trials {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", revokeKind(k), n))
		}
	}
	return strings.Join(parts, ", ")
}

func (rv *revocations) String() string {
	n := rv.total()
	rv.mu.Lock()
	defer rv.mu.Unlock()
	s := fmt.Sprintf("%d revocations acknowledged (%d not), ending %d sessions; %d requests with revoked cookies: %d served signed in, %d × 503, %d failed; "+
		"%d checks gave up after %s with the cookie still served, %d with the replica unavailable; "+
		"revocations answered in %s; another replica refused a revoked cookie %s after the revocation's answer, at the first request %d of %d times",
		n, rv.unacked, len(rv.cookies), rv.requests, rv.served, rv.unavailable, rv.failures, rv.neverRefused, refusedWithin, rv.unanswered,
		percentiles(rv.revokeTimes), percentiles(rv.refusals), rv.firstTry, len(rv.refusals))
	if len(rv.samples) > 0 {
		s += "\n  " + strings.Join(rv.samples, "\n  ")
	}
	if len(rv.unackedSamples) > 0 {
		s += "\n  not acknowledged: " + strings.Join(rv.unackedSamples, "\n  not acknowledged: ")
	}
	return s
}

// percentiles formats the median, 99th percentile and maximum of ds.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "(none)"
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[int(q*float64(len(ds)-1)+0.5)] }
	round := func(d time.Duration) string {
		if d < 10*time.Millisecond {
			return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
		}
		return d.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("p50 %s / p99 %s / max %s", round(at(0.5)), round(at(0.99)), round(ds[len(ds)-1]))
}

// revokedSessionIsRefusedAtOnceEverywhere: at least revokeTrials times, a
// session that every replica serves from its own memory is revoked through
// one replica with one of the page actions that end sessions, and the
// moment the action's answer arrives every replica is asked with the
// revoked cookie: each refuses it at its first request. The lanes run side
// by side in batches; a batch's sessions are read on every replica, then
// again until a whole round of reads costs Redis no GET (so every replica
// serves every one of them from its cache), and only then revoked.
func (s *suite) revokedSessionIsRefusedAtOnceEverywhere(t *testing.T) {
	lanes := s.cacheLanes(t)
	rv := &revocations{}
	began := time.Now()
	batches, extraRounds := 0, 0
	for ; rv.total() < revokeTrials; batches++ {
		trials := make([]*trial, len(lanes))
		if err := forEach(len(lanes), len(lanes), func(i int) (err error) {
			trials[i], err = lanes[i].prepare(s.c.ReplicaURL((batches + i) % cluster.Replicas))
			return err
		}); err != nil {
			t.Fatalf("batch %d: %v\n%s", batches+1, err, s.replicaWarnings())
		}
		if err := s.readEverywhere(trials); err != nil {
			t.Fatalf("batch %d: %v\n%s", batches+1, err, s.replicaWarnings())
		}
		rounds, err := s.readFromCaches(trials)
		if err != nil {
			t.Fatalf("batch %d: the replicas never all served the sessions from their caches: %v\n%s", batches+1, err, s.replicaWarnings())
		}
		extraRounds += rounds - 1
		// Each lane revokes through another replica than it signed in on.
		// A revocation that got 503 did not happen (see
		// unacknowledgedShare); its lane finds its feet in the next batch.
		_ = forEach(len(lanes), len(lanes), func(i int) error {
			return rv.revokeAndCheck(s.c, trials[i], (batches+i+1)%cluster.Replicas)
		})
		if rv.unacked > revokeTrials/unacknowledgedShare {
			t.Fatalf("batch %d: too many revocations got no acknowledgement: %v\n%s", batches+1, rv, s.replicaWarnings())
		}
	}
	took := time.Since(began)
	retries := s.hashSlots().retried.Load()
	t.Logf("%d batches of %d lanes in %s (%d rounds of reads repeated before every replica served from its cache, %d sign-ins tried again after a 503): %v",
		batches, len(lanes), took.Round(time.Millisecond), extraRounds, retries, rv)
	t.Logf("revocations by kind: %s", rv.byKind())
	if retries > 0 || rv.unacked > 0 {
		t.Logf("why sign-ins or revocations got 503:\n%s", s.replicaWarnings())
	}
	if rv.served > 0 || rv.neverRefused > 0 || rv.unanswered > 0 || rv.failures > 0 || rv.unavailable > 0 {
		t.Errorf("revoked cookies were not all refused at once: %v", rv)
	}
	s.addCache(cacheFigure{scenario: "7. Revoke on one replica, ask every replica at once", revocations: rv,
		notes: fmt.Sprintf("%d lanes side by side, %d batches in %s; before each revocation every replica served the session from its cache (a round of reads cost Redis no GET)",
			len(lanes), batches, took.Round(time.Second))})
}

// replicaWarnings returns the last warnings, errors and 503s each replica
// logged, for a failure's message.
func (s *suite) replicaWarnings() string {
	const keep = 8
	var b strings.Builder
	for i := range cluster.Replicas {
		path := filepath.Join(s.c.Dir(), s.c.ReplicaID(i)+".log")
		log, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", path, err)
			continue
		}
		var lines []string
		for line := range strings.SplitSeq(string(log), "\n") {
			if strings.Contains(line, "WARN") || strings.Contains(line, "ERROR") || strings.Contains(line, "status=503") {
				lines = append(lines, line)
			}
		}
		fmt.Fprintf(&b, "--- %s, its last warnings, errors and 503s:\n%s\n", path, strings.Join(lines[max(0, len(lines)-keep):], "\n"))
	}
	return b.String()
}

// forEach runs f(0) … f(n-1), at most limit at once, and returns the
// first error.
func forEach(n, limit int, f func(i int) error) error {
	sem := make(chan struct{}, max(limit, 1))
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// revocationStream runs trials of some lanes, each lane on its own, one
// after another until stopped; a watcher meanwhile keeps asking the
// replicas, in turn, with every cookie revoked so far.
type revocationStream struct {
	rv      *revocations
	stop    chan struct{}
	wg      sync.WaitGroup
	aborted int // trials given up before their revocation (503 in an outage)
	mu      sync.Mutex
	watched int
}

// Pace of a revocation stream: a lane pauses after a trial that could not
// be run; the watcher sends one request per watchEvery.
const (
	streamPause = 100 * time.Millisecond
	watchEvery  = 10 * time.Millisecond
)

func (s *suite) startRevocationStream(lanes []*lane, rv *revocations) *revocationStream {
	st := &revocationStream{rv: rv, stop: make(chan struct{})}
	deadline := time.Now().Add(loadLimit)
	pause := func(d time.Duration) bool {
		select {
		case <-st.stop:
			return false
		case <-time.After(d):
			return time.Now().Before(deadline)
		}
	}
	for i, l := range lanes {
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			for n := 0; pause(0); n++ {
				tr, err := l.prepare(s.c.ReplicaURL((i + n) % cluster.Replicas))
				if err == nil {
					// Read twice on every replica: the first read fills its
					// cache, the second is served from it.
					err = s.readEverywhere([]*trial{tr})
					if err == nil {
						err = s.readEverywhere([]*trial{tr})
					}
					if err != nil {
						err = fmt.Errorf("%s: %w", l.name, err)
					}
				}
				if err != nil {
					st.mu.Lock()
					st.aborted++
					st.mu.Unlock()
					if !pause(streamPause) {
						return
					}
					continue
				}
				if rv.revokeAndCheck(s.c, tr, (i+n+1)%cluster.Replicas) != nil && !pause(streamPause) {
					return
				}
			}
		}()
	}
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		tick := time.NewTicker(watchEvery)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-st.stop:
				return
			case <-tick.C:
			}
			if time.Now().After(deadline) {
				return
			}
			rv.mu.Lock()
			cookies := len(rv.cookies)
			var v revokedCookie
			if cookies > 0 {
				v = rv.cookies[n%cookies]
			}
			rv.mu.Unlock()
			if cookies == 0 {
				continue
			}
			i := (n / cookies) % cluster.Replicas
			res, err := v.c.do(http.MethodGet, s.c.ReplicaURL(i)+"/", nil, true)
			rv.record(s.c, v.c, i, res, err, v.at)
			st.mu.Lock()
			st.watched++
			st.mu.Unlock()
		}
	}()
	return st
}

// finish stops the stream and waits for its trials in flight.
func (st *revocationStream) finish() {
	close(st.stop)
	st.wg.Wait()
}

// signInLive signs in liveClients clients of liveUser, on the replicas in
// turn.
func (s *suite) signInLive(t *testing.T, prefix string) []*client {
	t.Helper()
	clients := make([]*client, liveClients)
	if err := forEach(liveClients, signInsAtOnce, func(i int) error {
		clients[i] = newClient(fmt.Sprintf("%s-%s-%d", liveUser, prefix, i), s.tr)
		res, err := s.hashSlots().signIn(clients[i], s.c.ReplicaURL(i%cluster.Replicas), liveUser, password, nil)
		return expectRedirect(res, err, "sign in "+liveUser, "/")
	}); err != nil {
		t.Fatal(err)
	}
	return clients
}

// replicaURLs returns every replica's own address.
func (s *suite) replicaURLs() []string {
	urls := make([]string, cluster.Replicas)
	for i := range urls {
		urls[i] = s.c.ReplicaURL(i)
	}
	return urls
}

// waitCachesServe waits until the load's page views, on every replica,
// cost the Redis primary no GET: a window in which every replica served
// cacheWindow signed-in pages while the primary's count of GETs stayed the
// same. It returns when that window began.
func (s *suite) waitCachesServe(tl *tally) (time.Time, error) {
	var began time.Time
	err := testkit.PollUntil(cachesBackWithin, func() error {
		began = time.Now()
		primary, gets, err := s.c.RedisCommandCalls("get")
		if err != nil {
			return err
		}
		from := tl.served()
		if err := testkit.PollUntil(5*time.Second, func() error {
			now := tl.served()
			for i := range cluster.Replicas {
				id := s.c.ReplicaID(i)
				if now[id]-from[id] < cacheWindow {
					return fmt.Errorf("%s served %d signed-in pages", id, now[id]-from[id])
				}
			}
			return nil
		}); err != nil {
			return err
		}
		primary2, gets2, err := s.c.RedisCommandCalls("get")
		if err != nil {
			return err
		}
		if primary2 != primary || gets2 != gets {
			return fmt.Errorf("%d GETs on the Redis primary (%s, then %s) while every replica served %d pages", gets2-gets, primary, primary2, cacheWindow)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("the replicas' caches did not serve again within %s: %w", cachesBackWithin, err)
	}
	return began, nil
}

// cutInvalidationChannelsUnderLoad: while signed-in clients load pages on
// every replica and sessions are revoked one after another, every
// subscribed connection of the Redis primary is closed (CLIENT KILL TYPE
// pubsub) again and again, so each replica loses its invalidation channel
// and cannot trust its cache until it has subscribed again and heard its
// own heartbeat. No revoked cookie is ever served signed in, no live client
// is signed out, and afterwards the caches serve again by themselves.
func (s *suite) cutInvalidationChannelsUnderLoad(t *testing.T) {
	const (
		cuts     = 8
		cutEvery = 400 * time.Millisecond
	)
	lanes := lanesOf(s.cacheLanes(t), streamKinds)
	live := s.signInLive(t, "cut")
	before := s.replicaPIDs()
	l := startLoadOn(s.replicaURLs(), live)
	rv := &revocations{}
	stream := s.startRevocationStream(lanes, rv)
	time.Sleep(time.Second) // the scenario's schedule: revocations before the cuts
	first := time.Now()
	before1 := rv.total()
	var closed []int
	var err error
	var lastCut time.Time
	for range cuts {
		var n int
		if _, n, err = s.c.KillRedisSubscribers(); err != nil {
			break
		}
		lastCut = time.Now()
		closed = append(closed, n)
		time.Sleep(cutEvery) // the scenario's schedule: the next cut
	}
	during := rv.total() - before1
	// A fence a cut replica cannot confirm waits out the lease.
	duringTimes := rv.revokeTimesBetween(first, lastCut.Add(cutEvery))
	if err == nil {
		time.Sleep(time.Second) // the scenario's schedule: revocations after the cuts
	}
	stream.finish()
	stopped := time.Now()
	notRefused := rv.sweep(s.c)
	var back time.Time
	if err == nil {
		back, err = s.waitCachesServe(l.tally)
	}
	tl := l.finish()
	t.Log(tl)
	t.Logf("revocations: %v", rv)
	t.Logf("revocations by kind: %s; %d acknowledged while the channels were being cut, answered in %s; %d trials given up before their revocation; the watcher sent %d requests; the final sweep found %d of %d revoked cookies not refused",
		rv.byKind(), during, duringTimes, stream.aborted, stream.watched, notRefused, len(rv.cookies)*cluster.Replicas)
	if err != nil {
		t.Fatal(err)
	}
	recovered := fmt.Sprintf("%d cuts %s apart closed %v subscribed connections (the replicas' invalidation channels and the Sentinels'); once the revocations stopped, %s after the last cut, the first %d page views on every replica cost Redis no GET: the caches served again by themselves",
		cuts, cutEvery, closed, stopped.Sub(lastCut).Round(10*time.Millisecond), cacheWindow)
	t.Log(recovered)
	if back.Sub(stopped) > 0 {
		t.Logf("(that window began %s after the revocations stopped)", back.Sub(stopped).Round(time.Millisecond))
	}
	if rv.served > 0 || rv.neverRefused > 0 || rv.unanswered > 0 || rv.failures > 0 || rv.unavailable > 0 || notRefused > 0 {
		t.Errorf("revocations with the invalidation channels cut: %v", rv)
	}
	if rv.unacked > rv.total()/unacknowledgedShare {
		t.Errorf("too many revocations got no acknowledgement with Redis up: %v\n%s", rv, s.replicaWarnings())
	}
	if during == 0 {
		t.Errorf("no revocation was acknowledged while the channels were being cut")
	}
	s.checkNotRestarted(t, before)
	lost := s.lostSessions(t, live)
	s.check(t, tl, lost, false)
	s.add(figure{scenario: "8. CLIENT KILL TYPE pubsub on the Redis primary, 8 times, under load while revoking", load: fmt.Sprintf("%d clients on every replica + %d revoking lanes", liveClients, len(lanes)),
		requests: tl.requests, failures: tl.failures, unavailable: tl.unavailable, unavailableLB: tl.unavailableLB, signOuts: tl.signOuts, lost: lost,
		notes: recovered})
	s.addCache(cacheFigure{scenario: "8. Invalidation channels cut (CLIENT KILL TYPE pubsub) under load", revocations: rv,
		notes: fmt.Sprintf("%d revocations acknowledged while the channels were being cut, answered in %s (a replica cut off cannot confirm a fence: the revocation waits out its lease); afterwards every cookie revoked was asked on every replica once more, and refused",
			during, duringTimes)})
}

// failOverRedisWhileRevoking: the Redis primary is killed while signed-in
// clients load pages on every replica and sessions are revoked one after
// another; Sentinel promotes a replica, the other follows it, and the old
// primary comes back as a replica. Page views are served throughout (from a
// Redis replica while there is no primary); revocations get 503 while no replica of Redis can
// confirm them; no cookie whose revocation was acknowledged, before or after, is
// ever served signed in, and once the set is whole again the caches serve
// by themselves.
func (s *suite) failOverRedisWhileRevoking(t *testing.T) {
	ctx := t.Context()
	lanes := lanesOf(s.cacheLanes(t), streamKinds)
	live := s.signInLive(t, "failover")
	before := s.replicaPIDs()
	l := startLoadOn(s.replicaURLs(), live)
	rv := &revocations{}
	stream := s.startRevocationStream(lanes, rv)
	stopAll := func() *tally {
		stream.finish()
		return l.finish()
	}
	time.Sleep(time.Second) // the scenario's schedule: revocations before the crash
	killed := time.Now()
	since := func(at time.Time) string { return fmt.Sprintf("%.1f s", at.Sub(killed).Seconds()) }
	old, err := s.c.KillRedisPrimary()
	if err != nil {
		stopAll()
		t.Fatal(err)
	}
	promoted, err := s.c.WaitForFailover(ctx, old)
	if err != nil {
		stopAll()
		t.Fatal(err)
	}
	promotedAt := time.Now()
	if err := s.c.RestoreRedis(ctx); err != nil {
		stopAll()
		t.Fatal(err)
	}
	rejoined := time.Now()
	// Revocations are acknowledged again, a few by every lane, while the
	// caches come back.
	err = testkit.PollUntil(time.Minute, func() error {
		if n := rv.acknowledgedAfter(rejoined); n < 3*len(lanes) {
			return fmt.Errorf("%d revocations acknowledged since the old primary rejoined", n)
		}
		return nil
	})
	if err == nil {
		err = s.c.WaitHealthy(ctx)
	}
	stream.finish()
	stopped := time.Now()
	afterRejoin := rv.acknowledgedAfter(rejoined)
	beforeKill := rv.total() - rv.acknowledgedAfter(killed)
	between := rv.total() - beforeKill - afterRejoin
	notRefused := rv.sweep(s.c)
	var back time.Time
	if err == nil {
		back, err = s.waitCachesServe(l.tally)
	}
	tl := l.finish()
	t.Log(tl)
	t.Logf("revocations: %v", rv)
	if err != nil {
		t.Fatal(err)
	}
	timeline := fmt.Sprintf("Sentinel promoted a replica at %s; the old primary was a replica in sync at %s; revocations were stopped at %s, and the next %d page views on every replica cost Redis no GET (the caches served again by themselves) from %s",
		since(promotedAt), since(rejoined), since(stopped), cacheWindow, since(back))
	t.Logf("primary %s killed, %s promoted. After the kill: %s", old, promoted, timeline)
	t.Logf("revocations by kind: %s; %d acknowledged before the kill, %d between the kill and the set being whole again (the old primary back as a replica, before every Sentinel saw it), %d after; %d not acknowledged; %d trials given up before their revocation; the watcher sent %d requests; the final sweep found %d of %d revoked cookies not refused",
		rv.byKind(), beforeKill, between, afterRejoin, rv.unacked, stream.aborted, stream.watched, notRefused, len(rv.cookies)*cluster.Replicas)
	// 503s are expected in the outage, and checks that met only 503s gave
	// up; the sweep asked every revoked cookie again once the set was
	// whole.
	if rv.served > 0 || rv.neverRefused > 0 || rv.failures > 0 || notRefused > 0 {
		t.Errorf("revocations through a failover: %v", rv)
	}
	s.checkNotRestarted(t, before)
	lost := s.lostSessions(t, live)
	// Page views are read from a Redis replica while no primary can be
	// reached: not one may get a 503 (the revocations and sign-ins of the
	// trials may).
	if tl.unavailable > 0 {
		t.Logf("why page views got 503:\n%s", s.replicaWarnings())
	}
	s.check(t, tl, lost, false)
	s.add(figure{scenario: "9. kill -9 the Redis primary under load while revoking", load: fmt.Sprintf("%d clients on every replica + %d revoking lanes", liveClients, len(lanes)),
		requests: tl.requests, failures: tl.failures, unavailable: tl.unavailable, unavailableLB: tl.unavailableLB, signOuts: tl.signOuts, lost: lost, window: tl.window(),
		notes: "times after the kill: " + timeline})
	s.addCache(cacheFigure{scenario: "9. Redis primary killed, Sentinel failover, under load", revocations: rv,
		notes: fmt.Sprintf("%d acknowledged before the kill, %d between the kill and the set being whole again (the old primary back as a replica, before every Sentinel saw it), %d after; meanwhile %d revocations got 503 and %d trials were given up before their revocation (a sign-in or a read got 503): nothing acknowledged, so nothing counted as revoked; afterwards every cookie revoked was asked on every replica once more, and refused",
			beforeKill, between, afterRejoin, rv.unacked, stream.aborted)})
}
