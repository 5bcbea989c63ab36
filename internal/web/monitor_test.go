package web

import (
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

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
	ts := newTestServer(t, testOptions{backend: "redis"})
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
	// The attempt counters: a check of the account and of the address, and
	// a reset of the account's failures.
	if len(throttle) != 3 {
		t.Errorf("a login sent the attempt counters %+v, want 3 commands", throttle)
	}
	cmds := clientCommands(t, ts, func() { b.get("/") })
	if len(cmds) != 1 || cmds[0].name != "get" {
		t.Errorf("a signed-in page view sent Redis %+v, want one GET", cmds)
	}
}
