package session_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

func TestMemoryStoreContract(t *testing.T) {
	sessiontest.RunStoreContract(t, func(t *testing.T, opts session.Options) session.Store {
		return session.NewMemoryStore(opts)
	})
}

func TestRedisStoreContract(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool := newRedisPool(t, srv.URL)
	sessiontest.RunStoreContract(t, func(t *testing.T, opts session.Options) session.Store {
		return session.NewRedisStore(pool, opts)
	})
}

func newRedisPool(t *testing.T, url string) *redis.Pool {
	t.Helper()
	pool, err := redisx.NewPool(url, redisx.DefaultPoolOptions())
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// TestRedisStoreCreatesNoSessionWhenRedisIsFull fills Redis (maxmemory
// with noeviction) and checks that Create refuses, writing nothing, instead
// of signing someone in on a store that may not keep the session: a sign-in
// then fails closed with 503. Ending sessions still works.
func TestRedisStoreCreatesNoSessionWhenRedisIsFull(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{})
	conn := srv.Conn(t)
	ctx := context.Background()
	expiry := time.Now().Add(time.Hour)
	alice := int64(1)
	// Loads the script while Redis can still take it, and gives alice a
	// session to end later.
	warmUp, whileFull := sessiontest.NewKeyFor(t, alice), sessiontest.NewKeyFor(t, alice)
	if _, err := store.Create(ctx, warmUp, alice, []byte("v"), expiry, session.Limit{}, session.Origin{}); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]any{{"maxmemory-policy", "noeviction"}, {"maxmemory", "1"}} {
		if _, err := conn.Do("CONFIG", append([]any{"SET"}, cmd...)...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { conn.Do("CONFIG", "SET", "maxmemory", "0") })
	keysBefore, err := redis.Int(conn.Do("DBSIZE"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Create(ctx, whileFull, alice, []byte("v"), expiry, session.Limit{}, session.Origin{}); err == nil ||
		!strings.Contains(err.Error(), "OOM") {
		t.Errorf("Create while Redis is full: %v, want an OOM error", err)
	}
	if n, err := redis.Int(conn.Do("DBSIZE")); err != nil || n != keysBefore {
		t.Errorf("Redis holds %d keys after the refused Create (err %v), want %d as before", n, err, keysBefore)
	}
	if _, ok, err := store.FindCtx(ctx, whileFull); ok || err != nil {
		t.Errorf("Find of the refused session: found %v, err %v", ok, err)
	}
	if n, err := store.Revoke(ctx, alice, []string{warmUp}, session.EndedSignedOut); err != nil || n != 1 {
		t.Errorf("Revoke while Redis is full = %d, %v; want 1, nil", n, err)
	}
}

// TestRedisStoreNeverHoldsARawToken signs people in, refreshes, renews and
// signs out through the Manager, as the app does, then searches everything
// in Redis for the tokens their browsers hold. The control at the end plants
// tokens in the same Redis and checks the same search finds them, so a
// search that looks in the wrong place fails the test.
func TestRedisStoreNeverHoldsARawToken(t *testing.T) {
	srv := testsvc.StartRedis(t)
	clk := testkit.NewClock(time.Now())
	const idle, lifetime = 30 * time.Minute, 12 * time.Hour
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.StoreOptions(idle, lifetime, clk.Now))
	app := newSignInServer(t, session.NewManager(session.ManagerOptions{
		Store: store, IdleTimeout: idle, Lifetime: lifetime, ReplicaID: "r1", Now: clk.Now,
	}))
	c := srv.Conn(t)

	alice := app.login(t, 1, "")
	bob := app.login(t, 2, "")
	carolFirst := app.login(t, 3, "")
	carol := app.login(t, 3, carolFirst) // Login renews the token: the first is deleted
	if carol == carolFirst {
		t.Fatal("signing in again kept the token")
	}
	seen := func(token string) float64 {
		t.Helper()
		key := session.StoreKey(token)
		tag, _ := session.KeyTag(key)
		score, err := redis.Float64(c.Do("ZSCORE", "hp:all:{"+tag+"}", key))
		if err != nil {
			t.Fatalf("ZSCORE hp:all:{%s} <alice's key>: %v", tag, err)
		}
		return score
	}
	before := seen(alice)
	clk.Advance(2 * time.Minute) // past the touch interval: the next request commits
	if got := app.get(t, "/whoami", alice); got != "user1" {
		t.Fatalf("GET /whoami as alice = %q, want user1", got)
	}
	if after := seen(alice); after <= before {
		t.Fatalf("alice's refresh did not reach Redis (score %v, then %v)", before, after)
	}
	app.post(t, "/logout", bob)
	if got := app.get(t, "/whoami", bob); got != "" {
		t.Fatalf("GET /whoami as bob after sign-out = %q, want nobody", got)
	}

	// What the browsers held reached this Redis, hashed: live sessions
	// under their keys, ended ones as tombstones.
	tokens := []string{alice, bob, carolFirst, carol}
	dump := dumpRedis(t, c)
	for _, k := range []string{
		"hp:s:" + session.StoreKey(alice), "hp:s:" + session.StoreKey(carol),
		"hp:t:" + session.StoreKey(bob), "hp:t:" + session.StoreKey(carolFirst),
	} {
		if _, ok := dump[k]; !ok {
			t.Errorf("Redis lacks %s; the sessions did not go where the test looks", k)
		}
	}
	for _, hit := range findTokens(dump, tokens) {
		t.Errorf("Redis holds a token: %s", hit)
	}

	// Control: the same search finds a token stored as a key, inside a
	// value, or as an index member.
	planted := map[string]string{
		"control:" + alice:  "raw token as a key",
		"control:value":     "standard base64 in a value",
		"control:zset":      "raw token bytes as a sorted-set member",
		"control:hex-value": "hex in a value",
	}
	raw, err := base64.RawURLEncoding.DecodeString(scsPart(carol))
	if err != nil {
		t.Fatalf("decode carol's token: %v", err)
	}
	for _, cmd := range [][]any{
		{"SET", "control:" + alice, "x"},
		{"SET", "control:value", "data=" + base64.StdEncoding.EncodeToString(raw) + ";"},
		{"ZADD", "control:zset", 1, raw},
		{"SET", "control:hex-value", hex.EncodeToString(raw)},
	} {
		if _, err := c.Do(cmd[0].(string), cmd[1:]...); err != nil {
			t.Fatalf("%v: %v", cmd[0], err)
		}
	}
	hits := findTokens(dumpRedis(t, c), tokens)
	for key, what := range planted {
		if !slices.ContainsFunc(hits, func(h string) bool { return strings.HasPrefix(h, strconv.Quote(key)+" ") }) {
			t.Errorf("the search missed a token planted as %s (%s); hits: %q", what, key, hits)
		}
	}
}

// dumpRedis returns every key in the Redis behind c with everything stored
// under it: a string's value; a sorted set's members and scores; a hash's
// fields and values; a set's or a list's members.
func dumpRedis(t *testing.T, c redis.Conn) map[string][]string {
	t.Helper()
	dump := map[string][]string{}
	cursor := "0"
	for {
		reply, err := redis.Values(c.Do("SCAN", cursor, "COUNT", 100))
		if err != nil {
			t.Fatalf("SCAN: %v", err)
		}
		var keys []string
		if _, err := redis.Scan(reply, &cursor, &keys); err != nil {
			t.Fatalf("SCAN reply: %v", err)
		}
		for _, k := range keys {
			typ, err := redis.String(c.Do("TYPE", k))
			if err != nil {
				t.Fatalf("TYPE %s: %v", k, err)
			}
			var content []string
			switch typ {
			case "none":
				continue // expired between SCAN and TYPE
			case "string":
				v, err := redis.String(c.Do("GET", k))
				if err != nil && !errors.Is(err, redis.ErrNil) {
					t.Fatalf("GET %s: %v", k, err)
				}
				content = []string{v}
			case "zset":
				content, err = redis.Strings(c.Do("ZRANGE", k, 0, -1, "WITHSCORES"))
			case "hash":
				content, err = redis.Strings(c.Do("HGETALL", k))
			case "set":
				content, err = redis.Strings(c.Do("SMEMBERS", k))
			case "list":
				content, err = redis.Strings(c.Do("LRANGE", k, 0, -1))
			default:
				t.Fatalf("key %s has a type the dump cannot read: %s", k, typ)
			}
			if err != nil {
				t.Fatalf("read %s %s: %v", typ, k, err)
			}
			dump[k] = content
		}
		if cursor == "0" {
			return dump
		}
	}
}

// findTokens searches dump for each token in the forms it could be stored
// in: as issued (base64url), in standard base64 with and without padding,
// as its raw bytes and in hex. It returns one line per hit, starting with
// the quoted key.
func findTokens(dump map[string][]string, tokens []string) []string {
	var hits []string
	for i, token := range tokens {
		raw, err := base64.RawURLEncoding.DecodeString(scsPart(token))
		if err != nil {
			hits = append(hits, fmt.Sprintf("token %d is not base64url: %v", i, err))
			continue
		}
		forms := map[string]string{
			"cookie":          token,
			"base64url":       scsPart(token),
			"base64":          base64.StdEncoding.EncodeToString(raw),
			"base64 unpadded": base64.RawStdEncoding.EncodeToString(raw),
			"raw bytes":       string(raw),
			"hex":             hex.EncodeToString(raw),
		}
		for key, content := range dump {
			for form, s := range forms {
				if strings.Contains(key, s) {
					hits = append(hits, fmt.Sprintf("%q holds token %d (%s) in its name", key, i, form))
				}
				for _, v := range content {
					if strings.Contains(v, s) {
						hits = append(hits, fmt.Sprintf("%q holds token %d (%s) in its value", key, i, form))
						break
					}
				}
			}
		}
	}
	slices.Sort(hits)
	return hits
}

// signInServer is a Manager behind an HTTP server with the routes a browser
// uses to sign in, look around and sign out.
type signInServer struct {
	srv *httptest.Server
	m   *session.Manager
}

func newSignInServer(t *testing.T, m *session.Manager) *signInServer {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		uid, err := strconv.ParseInt(r.FormValue("uid"), 10, 64)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := session.Identity{UserID: uid, Username: "user" + strconv.FormatInt(uid, 10), Role: "user"}
		if _, err := m.Login(r.Context(), id, session.Client{IP: "192.0.2.1", Device: "Test"}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		if info, ok := m.Current(r.Context()); ok {
			io.WriteString(w, info.Username)
		}
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Logout(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	onErr := func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
	s := &signInServer{srv: httptest.NewServer(m.LoadAndSave(onErr)(mux)), m: m}
	t.Cleanup(s.srv.Close)
	return s
}

// do sends a request with the session cookie of token ("" for none) and
// returns the response with its body read.
func (s *signInServer) do(t *testing.T, method, path, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: s.m.CookieName(), Value: token})
	}
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, body)
	}
	return res, string(body)
}

// login signs uid in on the browser holding token ("" for a fresh one) and
// returns the token of the session cookie scs issued.
func (s *signInServer) login(t *testing.T, uid int64, token string) string {
	t.Helper()
	res, _ := s.do(t, http.MethodPost, "/login?uid="+strconv.FormatInt(uid, 10), token)
	for _, c := range res.Cookies() {
		if c.Name == s.m.CookieName() && c.Value != "" {
			return c.Value
		}
	}
	t.Fatalf("sign-in of user %d set no session cookie", uid)
	return ""
}

func (s *signInServer) get(t *testing.T, path, token string) string {
	t.Helper()
	_, body := s.do(t, http.MethodGet, path, token)
	return body
}

func (s *signInServer) post(t *testing.T, path, token string) {
	t.Helper()
	s.do(t, http.MethodPost, path, token)
}

// TestRedisStoreFindIsOneCommand holds the hot path to a single GET and the
// writes to a single script call each.
func TestRedisStoreFindIsOneCommand(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	key := sessiontest.NewKeyFor(t, 7)
	// Warm up: the first script calls load the scripts (EVALSHA, then EVAL).
	if _, err := store.Create(ctx, key, 7, []byte("v"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := store.CommitCtx(ctx, key, []byte("v"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := store.DeleteCtx(ctx, sessiontest.NewKey(t)); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	c := srv.Conn(t)
	if _, err := c.Do("CONFIG", "RESETSTAT"); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	const n = 10
	for range n {
		if _, found, err := store.FindCtx(ctx, key); err != nil || !found {
			t.Fatalf("Find = found %v, err %v", found, err)
		}
	}
	stats := commandStats(t, c)
	for cmd, calls := range stats {
		if strings.HasPrefix(cmd, "config") || cmd == "info" {
			continue // the test's own
		}
		if cmd != "get" || calls != n {
			t.Errorf("%d Finds ran %d %s commands; want exactly %d GETs and nothing else (all: %v)", n, calls, cmd, n, stats)
		}
	}

	if _, err := c.Do("CONFIG", "RESETSTAT"); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	for range n {
		if err := store.CommitCtx(ctx, key, []byte("v"), time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if err := store.DeleteCtx(ctx, sessiontest.NewKey(t)); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	stats = commandStats(t, c)
	if stats["evalsha"] != 2*n || stats["eval"] != 0 || stats["multi"] != 0 || stats["get"] != 0 {
		t.Errorf("%d Commits and %d Deletes: want %d EVALSHA and no other round trips; stats %v", n, n, 2*n, stats)
	}

}

// TestRedisStoreRegistryCallsAreOneRoundTripEach counts what the store sends
// on its connections: each registry call on one user is one command (a
// script or a GET); the calls over every shard (Count, and Recent's ranks)
// send one script per shard in one round trip, and Recent reads its page's
// sessions in a second.
func TestRedisStoreRegistryCallsAreOneRoundTripEach(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool, sent, trips := testsvc.CountingRoundTripsPool(t, srv.URL)
	store := session.NewRedisStore(pool, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	const user = 7
	key := sessiontest.NewKeyFor(t, user)
	pageLen := 0
	calls := []struct {
		name string
		call func() error
	}{
		{"Create", func() error {
			_, err := store.Create(ctx, sessiontest.NewKeyFor(t, user), user, []byte("v"), time.Now().Add(time.Hour), session.Limit{Max: 2, Policy: session.EvictOldest}, session.Origin{})
			return err
		}},
		{"ListUser", func() error { _, err := store.ListUser(ctx, user); return err }},
		{"ListUserKeys", func() error { _, err := store.ListUserKeys(ctx, user); return err }},
		{"CountUsers", func() error { _, err := store.CountUsers(ctx, []int64{user, user + 1}); return err }},
		{"Revoke", func() error { _, err := store.Revoke(ctx, user, []string{key}, session.EndedByAdmin); return err }},
		{"RevokeUser", func() error { _, err := store.RevokeUser(ctx, user, "", session.EndedByAdmin); return err }},
		{"EndReason", func() error { _, err := store.EndReason(ctx, key); return err }},
		{"Count", func() error { _, err := store.Count(ctx); return err }},
		{"Recent", func() error { page, err := store.Recent(ctx, 0, 10); pageLen = len(page); return err }},
	}
	// Commands and round trips of the calls that are not one of each: one
	// script per shard, and Recent's GET of each session on its page.
	cost := func(name string) (commands, roundTrips int) {
		switch name {
		case "CountUsers":
			if session.UserTag(user) != session.UserTag(user+1) {
				return 2, 1
			}
		case "Count":
			return session.ShardTags, 1
		case "Recent":
			return session.ShardTags + pageLen, 2
		}
		return 1, 1
	}
	if _, err := store.Create(ctx, key, user, []byte("v"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	for _, call := range calls {
		// Twice: the first call may load its script (EVALSHA, then EVAL).
		for i := range 2 {
			if _, err := store.Create(ctx, sessiontest.NewKeyFor(t, user), user, []byte("v"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
				t.Fatalf("Create: %v", err)
			}
			before, tripsBefore := sent.Load(), trips.Load()
			if err := call.call(); err != nil {
				t.Fatalf("%s: %v", call.name, err)
			}
			wantSent, wantTrips := cost(call.name)
			if got := sent.Load() - before; i == 1 && got != int64(wantSent) {
				t.Errorf("%s sent %d commands, want %d", call.name, got, wantSent)
			}
			if got := trips.Load() - tripsBefore; i == 1 && got != int64(wantTrips) {
				t.Errorf("%s took %d round trips, want %d", call.name, got, wantTrips)
			}
		}
	}
}

// TestRedisStoreCountUsersOfFiftyUsersIsOneRoundTrip is the admin page that
// lists 50 users with their session counts: one round trip for all of them,
// not one per row, carrying one script per shard the users fall in (on
// Redis Cluster a script reaches one slot).
func TestRedisStoreCountUsersOfFiftyUsersIsOneRoundTrip(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool, sent, trips := testsvc.CountingRoundTripsPool(t, srv.URL)
	store := session.NewRedisStore(pool, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	users := make([]int64, 50)
	want := map[int64]int{}
	for i := range users {
		users[i] = int64(1000 + i)
		want[users[i]] = i % 4 // a quarter of them have no session
		for range i % 4 {
			if _, err := store.Create(ctx, sessiontest.NewKeyFor(t, users[i]), users[i], []byte("v"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
				t.Fatalf("Create: %v", err)
			}
		}
	}
	// Load the script: a first call may send EVALSHA, then EVAL.
	if _, err := store.CountUsers(ctx, users[:1]); err != nil {
		t.Fatalf("CountUsers: %v", err)
	}

	c := srv.Conn(t)
	if _, err := c.Do("CONFIG", "RESETSTAT"); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	shards := map[string]bool{}
	for _, u := range users {
		shards[session.UserTag(u)] = true
	}
	before, tripsBefore := sent.Load(), trips.Load()
	got, err := store.CountUsers(ctx, users)
	if err != nil {
		t.Fatalf("CountUsers: %v", err)
	}
	if n := trips.Load() - tripsBefore; n != 1 {
		t.Errorf("CountUsers of %d users took %d round trips, want 1", len(users), n)
	}
	if n := sent.Load() - before; n != int64(len(shards)) {
		t.Errorf("CountUsers of %d users in %d shards sent %d commands, want one per shard", len(users), len(shards), n)
	}
	if !maps.Equal(got, want) {
		t.Errorf("CountUsers = %v, want %v", got, want)
	}
	stats := commandStats(t, c)
	if stats["evalsha"] != len(shards) || stats["eval"] != 0 {
		t.Errorf("CountUsers ran %d EVALSHA and %d EVAL, want %d (one per shard); stats %v", stats["evalsha"], stats["eval"], len(shards), stats)
	}
	for _, cmd := range []string{"keys", "scan", "get", "zscan"} {
		if stats[cmd] != 0 {
			t.Errorf("CountUsers ran %s: %v", cmd, stats)
		}
	}
}

// scsPart is the part of a cookie token scs made (its 32 random bytes),
// after the shard tag.
func scsPart(token string) string {
	_, raw, _ := strings.Cut(token, ".")
	return raw
}

// commandStats returns calls per command since the last CONFIG RESETSTAT.
func commandStats(t *testing.T, c redis.Conn) map[string]int {
	t.Helper()
	info, err := redis.String(c.Do("INFO", "commandstats"))
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	stats := map[string]int{}
	for line := range strings.SplitSeq(info, "\r\n") {
		// cmdstat_get:calls=10,usec=...
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || name == line {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.Atoi(calls)
		if err != nil {
			t.Fatalf("INFO commandstats line %q: %v", line, err)
		}
		stats[name] = n
	}
	return stats
}

func TestRedisStoreFailsFastWhileRedisIsDownAndRecovers(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	key := sessiontest.NewKeyFor(t, 7)
	if _, err := store.Create(ctx, key, 7, []byte("v"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
		t.Fatalf("Create: %v", err)
	}

	srv.Stop(t)
	checkFailsFast(t, "Find", func() error { _, _, err := store.FindCtx(ctx, key); return err })
	checkFailsFast(t, "Commit", func() error { return store.CommitCtx(ctx, key, []byte("v"), time.Now().Add(time.Hour)) })
	checkFailsFast(t, "Delete", func() error { return store.DeleteCtx(ctx, key) })
	checkFailsFast(t, "Ping", func() error { return store.Ping(ctx) })
	checkFailsFast(t, "Create", func() error {
		_, err := store.Create(ctx, sessiontest.NewKeyFor(t, 7), 7, []byte("v"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{})
		return err
	})
	checkFailsFast(t, "ListUser", func() error { _, err := store.ListUser(ctx, 7); return err })
	checkFailsFast(t, "ListUserKeys", func() error { _, err := store.ListUserKeys(ctx, 7); return err })
	checkFailsFast(t, "CountUsers", func() error { _, err := store.CountUsers(ctx, []int64{7, 8}); return err })
	checkFailsFast(t, "Revoke", func() error { _, err := store.Revoke(ctx, 7, []string{key}, session.EndedByAdmin); return err })
	checkFailsFast(t, "RevokeUser", func() error { _, err := store.RevokeUser(ctx, 7, "", session.EndedByAdmin); return err })
	checkFailsFast(t, "RevokeUsers", func() error { _, err := store.RevokeUsers(ctx, []int64{7, 8}, "", session.EndedEveryone); return err })
	checkFailsFast(t, "EndReason", func() error { _, err := store.EndReason(ctx, key); return err })
	checkFailsFast(t, "Count", func() error { _, err := store.Count(ctx); return err })
	checkFailsFast(t, "Recent", func() error { _, err := store.Recent(ctx, 0, 10); return err })

	srv.Start(t)
	// A connection pooled before the outage may fail once; then the pool
	// dials afresh. The restarted Redis is empty, so the user signs in again.
	testkit.Eventually(t, 5*time.Second, "the store to work after Redis came back", func() error {
		_, err := store.Create(ctx, key, 7, []byte("back"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{})
		return err
	})
	if b, found, err := store.FindCtx(ctx, key); err != nil || !found || string(b) != "back" {
		t.Fatalf("Find after recovery = %q, %v, %v; want back, true, nil", b, found, err)
	}
}

func TestRedisStoreDoesNotHangOnAFrozenRedis(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	key := sessiontest.NewKey(t)
	srv.Pause(t)
	t.Cleanup(func() { srv.Resume(t) })

	// No deadline from the caller: the store's own bound applies.
	checkFailsFast(t, "Find", func() error { _, _, err := store.FindCtx(context.Background(), key); return err })

	// A caller's shorter deadline wins.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := store.FindCtx(ctx, key); err == nil {
		t.Fatal("Find on a frozen Redis succeeded")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Find with a 100ms deadline took %s", took)
	}
}

// checkFailsFast runs op against an unreachable Redis and wants an error,
// not ErrRevoked, within the store's 2s bound (plus scheduling slack).
func checkFailsFast(t *testing.T, name string, op func() error) {
	t.Helper()
	start := time.Now()
	err := op()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("%s with Redis down succeeded", name)
	}
	if errors.Is(err, session.ErrRevoked) {
		t.Fatalf("%s with Redis down = %v, a revocation rather than an outage", name, err)
	}
	if !strings.HasPrefix(err.Error(), "session store: ") {
		t.Errorf("%s error %q lacks the store's context", name, err)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("%s took %s to fail, want at most 2s", name, took)
	}
}

// TestRedisStoreLeavesNoSessionKeyBehind checks Redis itself: a signed-out or
// revoked session's key is gone, and its tombstone holds the reason.
func TestRedisStoreLeavesNoSessionKeyBehind(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	const user = 7
	// The user's keys carry the user's shard tag.
	userIndex := "hp:u:{" + session.UserTag(user) + "}7"
	userShard := "hp:all:{" + session.UserTag(user) + "}"
	var keys []string
	for range 5 {
		k := sessiontest.NewKeyFor(t, user)
		keys = append(keys, k)
		if _, err := store.Create(ctx, k, user, []byte("v"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	if err := store.DeleteCtx(ctx, keys[0]); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := store.Revoke(ctx, user, keys[1:2], session.EndedByAdmin); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := store.RevokeUser(ctx, user, keys[4], session.EndedPasswordChanged); err != nil {
		t.Fatalf("RevokeUser: %v", err)
	}

	c := srv.Conn(t)
	want := map[string]string{
		keys[0]: string(session.EndedSignedOut),
		keys[1]: string(session.EndedByAdmin),
		keys[2]: string(session.EndedPasswordChanged),
		keys[3]: string(session.EndedPasswordChanged),
	}
	for k, reason := range want {
		if n, err := redis.Int(c.Do("EXISTS", "hp:s:"+k)); err != nil || n != 0 {
			t.Errorf("EXISTS hp:s:<ended key> = %d, %v; want 0", n, err)
		}
		if got, err := redis.String(c.Do("GET", "hp:t:"+k)); err != nil || got != reason {
			t.Errorf("GET hp:t:<ended key> = %q, %v; want %q", got, err, reason)
		}
		if _, err := redis.Float64(c.Do("ZSCORE", userShard, k)); !errors.Is(err, redis.ErrNil) {
			t.Errorf("an ended session is still in %s (err %v)", userShard, err)
		}
	}
	// The user's index: only the live session left (RevokeUser pruned
	// the signed-out one Delete could not unindex), expiring with it.
	members, err := redis.Strings(c.Do("ZRANGE", userIndex, 0, -1))
	if err != nil || len(members) != 1 || members[0] != keys[4] {
		t.Errorf("%s = %d members, %v; want just the live session", userIndex, len(members), err)
	}
	if ttl, err := redis.Int64(c.Do("PTTL", userIndex)); err != nil || ttl <= 0 || ttl > time.Hour.Milliseconds() {
		t.Errorf("PTTL %s = %d, %v; want (0, 1h]", userIndex, ttl, err)
	}
}

// TestRedisStoreListUserTouchesOnlyThatUsersKeys lists a user with 5
// sessions among 2,000 others and checks, in Redis's own command counts,
// that nothing scanned the keyspace or read another user's session.
func TestRedisStoreListUserTouchesOnlyThatUsersKeys(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	const (
		user   = 1
		others = 2000
	)
	expiry := time.Now().Add(time.Hour)
	for i := range others {
		if _, err := store.Create(ctx, sessiontest.NewKeyFor(t, int64(2+i%100)), int64(2+i%100), []byte("other"), expiry, session.Limit{}, session.Origin{}); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	for range 5 {
		if _, err := store.Create(ctx, sessiontest.NewKeyFor(t, user), user, []byte("mine"), expiry, session.Limit{}, session.Origin{}); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}

	c := srv.Conn(t)
	if _, err := c.Do("CONFIG", "RESETSTAT"); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	entries, err := store.ListUser(ctx, user)
	if err != nil {
		t.Fatalf("ListUser: %v", err)
	}
	if len(entries) != 5 {
		t.Fatalf("ListUser = %d entries, want 5", len(entries))
	}
	for _, e := range entries {
		if string(e.Data) != "mine" {
			t.Fatalf("ListUser returned another user's session")
		}
	}
	stats := commandStats(t, c)
	for _, cmd := range []string{"keys", "scan", "sscan", "zscan", "hscan"} {
		if stats[cmd] != 0 {
			t.Errorf("ListUser ran %s: %v", cmd, stats)
		}
	}
	// Commands inside the script are counted too: one read per session.
	if stats["evalsha"] != 1 || stats["get"] != 5 || stats["zrange"] != 1 {
		t.Errorf("ListUser of 5 sessions: want 1 EVALSHA running 1 ZRANGE and 5 GETs; stats %v", stats)
	}
}

// BenchmarkRedisRevokeUser revokes one user's 10 sessions among 10,000 and
// 100,000 others: the cost should not grow with the others.
func BenchmarkRedisRevokeUser(b *testing.B) {
	for _, others := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			if others > 10_000 && testing.Short() {
				b.Skip("seeding 100,000 sessions is slow; skipped with -short")
			}
			srv := testsvc.StartRedis(b)
			pool, err := redisx.NewPool(srv.URL, redisx.DefaultPoolOptions())
			if err != nil {
				b.Fatalf("NewPool: %v", err)
			}
			b.Cleanup(func() { pool.Close() })
			store := session.NewRedisStore(pool, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
			ctx := context.Background()
			seedSessions(b, srv.Conn(b), others, time.Now().Add(time.Hour))
			if n, err := store.Count(ctx); err != nil || n != others {
				b.Fatalf("Count after seeding = %d, %v; want %d", n, err, others)
			}

			const user, sessions = 1, 10
			expiry := time.Now().Add(time.Hour)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for range sessions {
					if _, err := store.Create(ctx, sessiontest.NewKey(b), user, []byte("mine"), expiry, session.Limit{}, session.Origin{}); err != nil {
						b.Fatalf("Create: %v", err)
					}
				}
				b.StartTimer()
				n, err := store.RevokeUser(ctx, user, "", session.EndedByAdmin)
				if err != nil || n != sessions {
					b.Fatalf("RevokeUser = %d, %v; want %d", n, err, sessions)
				}
			}
		})
	}
}

// seedSessions writes n sessions of other users (100 sessions each) straight
// into Redis, in the store's layout, pipelined in batches.
func seedSessions(b *testing.B, c redis.Conn, n int, expiry time.Time) {
	b.Helper()
	const batch = 1000
	ttl := time.Until(expiry).Milliseconds()
	score := expiry.UnixMilli()
	for i := 0; i < n; i += batch {
		for j := i; j < min(i+batch, n); j++ {
			uid := int64(2 + j/100)
			tag := session.UserTag(uid)
			key := fmt.Sprintf("{%s}seed-%d", tag, j)
			user := fmt.Sprintf("hp:u:{%s}%d", tag, uid)
			c.Send("SET", "hp:s:"+key, "other", "PX", ttl)
			c.Send("ZADD", user, score, key)
			c.Send("PEXPIRE", user, ttl)
			c.Send("ZADD", "hp:all:{"+tag+"}", score, key)
		}
		if err := c.Flush(); err != nil {
			b.Fatalf("seed: %v", err)
		}
		for j := i; j < min(i+batch, n); j++ {
			for range 4 {
				if _, err := c.Receive(); err != nil {
					b.Fatalf("seed: %v", err)
				}
			}
		}
	}
}
