package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/user"
)

// redisCommand is one command a client sent: its lower-case name and the
// key it names first ("" if none).
type redisCommand struct {
	name, key string
}

// clientCommands runs action and returns the commands clients sent Redis
// meanwhile, in order, read through MONITOR. Commands a Lua script runs
// inside Redis are left out: each entry is one round trip.
func clientCommands(t *testing.T, ts *testServer, action func()) []redisCommand {
	t.Helper()
	mon := ts.redis.Conn(t)
	if err := mon.Send("MONITOR"); err != nil {
		t.Fatal(err)
	}
	if err := mon.Flush(); err != nil {
		t.Fatal(err)
	}
	if ok, err := redis.String(mon.Receive()); err != nil || ok != "OK" {
		t.Fatalf("MONITOR: %q %v", ok, err)
	}
	action()
	const marker = "hallpass-test-end-of-action"
	if _, err := ts.redisConn().Do("ECHO", marker); err != nil {
		t.Fatal(err)
	}
	var cmds []redisCommand
	for {
		line, err := redis.String(mon.Receive())
		if err != nil {
			t.Fatalf("read MONITOR: %v", err)
		}
		if strings.Contains(line, marker) {
			return cmds
		}
		// `1700000000.123456 [0 127.0.0.1:5555] "evalsha" "…"`; script
		// commands show `[0 lua]`.
		_, rest, _ := strings.Cut(line, "[")
		client, args, _ := strings.Cut(rest, "] ")
		if strings.HasSuffix(client, " lua") {
			continue
		}
		fields := strings.Split(args, `" "`)
		cmd := redisCommand{name: strings.ToLower(strings.Trim(fields[0], `"`))}
		if len(fields) > 1 {
			cmd.key = strings.Trim(fields[1], `"`)
			if cmd.name == "evalsha" && len(fields) > 3 {
				cmd.key = strings.Trim(fields[3], `"`) // evalsha SHA NUMKEYS KEY…
			}
		}
		cmds = append(cmds, cmd)
	}
}

func TestLoginIsOneSessionStoreRoundTrip(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis", noSessionCache: true})
	ts.createUser("alice", alicePW, user.RoleUser)
	ts.newBrowser().login("alice", alicePW) // loads the scripts into Redis
	b := ts.newBrowser()
	var session, throttle []redisCommand
	for _, c := range clientCommands(t, ts, func() { b.login("alice", alicePW) }) {
		if strings.HasPrefix(c.key, "hp:th:") {
			throttle = append(throttle, c)
		} else {
			session = append(session, c)
		}
	}
	if len(session) != 1 || session[0].name != "evalsha" || !strings.HasPrefix(session[0].key, "hp:s:") {
		t.Errorf("a login sent the session store %+v, want one script call (create + index + limit)", session)
	}
	// The attempt counters: an attempt reserved on the account and on the
	// address (one script each, atomic), then, the password being right,
	// the account's failures reset and the address's attempt given back.
	if len(throttle) != 4 {
		t.Errorf("a login sent the attempt counters %+v, want 4 commands", throttle)
	}
	cmds := clientCommands(t, ts, func() { b.get("/") })
	if len(cmds) != 1 || cmds[0].name != "get" {
		t.Errorf("a signed-in page view sent Redis %+v, want one GET", cmds)
	}
}

// With the session cache (the default), signed-in page views cost no Redis
// command once the session is cached; the once-a-minute refresh writes it
// (one script) and the next view reads it back once. The cache's own
// heartbeats (hp:cache:…) run whatever the traffic and are left out.
func TestCachedPageViewsCostNoRedisCommand(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis", idle: 30 * time.Minute})
	ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", alicePW)
	sessionCommands := func(action func()) []redisCommand {
		var cmds []redisCommand
		for _, c := range clientCommands(t, ts, action) {
			if !strings.HasPrefix(c.key, "hp:cache:") && c.name != "publish" {
				cmds = append(cmds, c)
			}
		}
		return cmds
	}
	cached := func() {
		t.Helper()
		testkit.Eventually(t, 2*time.Second, "the session cached", func() error {
			if cmds := sessionCommands(func() { b.get("/") }); len(cmds) != 0 {
				return fmt.Errorf("a page view sent %+v", cmds)
			}
			return nil
		})
	}
	cached()
	for i := range 20 {
		if cmds := sessionCommands(func() { b.get("/") }); len(cmds) != 0 {
			t.Fatalf("cached page view %d sent Redis %+v, want nothing", i, cmds)
		}
		ts.clock.Advance(2 * time.Second)
	}
	// The first refresh loads the conditional-write script into Redis.
	ts.clock.Advance(time.Minute)
	b.get("/")
	cached()
	ts.clock.Advance(time.Minute)
	cmds := sessionCommands(func() { b.get("/") })
	if len(cmds) != 1 || cmds[0].name != "evalsha" || !strings.HasPrefix(cmds[0].key, "hp:s:") {
		t.Errorf("the refreshing page view sent Redis %+v, want one conditional-write script", cmds)
	}
	// The refresh's invalidation reaches this replica too: the next view
	// reads the session back once (GET and PTTL), then none.
	cmds = sessionCommands(func() { b.get("/") })
	if len(cmds) > 2 {
		t.Errorf("the view after a refresh sent Redis %+v, want at most GET and PTTL", cmds)
	}
	cached()
}

// TestAdminUsersPageCostsOneScriptPerShardForFiftyUsers: the session
// counts of a page of users cost one script per shard the users fall in
// (on Redis Cluster a script reaches one slot), never one call per row;
// the store sends them in one round trip
// (TestRedisStoreCountUsersOfFiftyUsersIsOneRoundTrip).
func TestAdminUsersPageCostsOneScriptPerShardForFiftyUsers(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis", noSessionCache: true})
	shards := map[string]bool{}
	shards[session.UserTag(ts.createUser("root", alicePW, user.RoleAdmin).ID)] = true
	for i := range 49 {
		shards[session.UserTag(ts.createUser(fmt.Sprintf("user%02d", i), alicePW, user.RoleUser).ID)] = true
	}
	// user00 on two devices, user01 on one: the page must still count them.
	for _, name := range []string{"user00", "user00", "user01"} {
		ts.newBrowser().login(name, alicePW)
	}
	admin := ts.newBrowser()
	admin.login("root", alicePW)
	admin.get("/admin/users") // loads the scripts into Redis

	var page response
	cmds := clientCommands(t, ts, func() { page = admin.get("/admin/users") })
	if page.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/users: %d", page.StatusCode)
	}
	if rows := page.doc(t).Find("tr[data-user]").Length(); rows != 50 {
		t.Fatalf("the page lists %d users, want 50", rows)
	}
	scripts := 0
	for _, c := range cmds {
		switch {
		case c.name == "evalsha" && strings.HasPrefix(c.key, "hp:all:{"):
			scripts++
		case c.name == "get" && strings.HasPrefix(c.key, "hp:s:"): // the admin's own session
		default:
			t.Errorf("one page of 50 users sent %+v", c)
		}
	}
	if scripts != len(shards) {
		t.Errorf("one page of 50 users in %d shards ran %d scripts, want one per shard: %+v", len(shards), scripts, cmds)
	}
	for name, want := range map[string]string{"user00": "2", "user01": "1", "user02": "0", "root": "1"} {
		if got := strings.TrimSpace(page.doc(t).Find(`tr[data-user="` + name + `"] .session-count`).Text()); got != want {
			t.Errorf("%s shows %q active sessions, want %s", name, got, want)
		}
	}
}

func TestSigningOutAnotherDeviceListsTheSessionsOnce(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis", noSessionCache: true})
	ts.createUser("alice", alicePW, user.RoleUser)
	laptop, phone, desktop := ts.newDevice(firefoxLinux), ts.newDevice(safariPhone), ts.newDevice(chromeMac)
	laptop.login("alice", alicePW)
	phone.login("alice", alicePW)
	desktop.login("alice", alicePW)
	// Sign out one device first, so the scripts are loaded into Redis.
	assertRedirect(t, laptop.postForm(rowFor(t, sessionRows(t, laptop.get("/account/sessions")), "Chrome on macOS").action, nil), "/account/sessions?done=revoked")
	target := rowFor(t, sessionRows(t, laptop.get("/account/sessions")), "Safari on iPhone")

	var res response
	cmds := clientCommands(t, ts, func() { res = laptop.postForm(target.action, nil) })
	assertRedirect(t, res, "/account/sessions?done=revoked")
	// Load the session (GET), find the key (keys only), end it: the own
	// session's public ID is worked out locally, not by listing again.
	// Then one fence, so that no replica's session cache can still serve
	// the ended session when the page answers (docs/SESSIONS.md).
	var work, fences []redisCommand
	for _, c := range cmds {
		if c.key == "hp:cache:replicas" {
			fences = append(fences, c)
		} else {
			work = append(work, c)
		}
	}
	if len(work) > 3 || len(fences) != 1 {
		t.Errorf("signing out one device cost %d round trips and %d fences, want at most 3 and 1: %+v", len(work), len(fences), cmds)
	}
	assertSignedOut(t, phone)
	assertSignedIn(t, laptop, "alice")
}
