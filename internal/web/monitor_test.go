package web

import (
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/user"
)

// clientCommands runs action and returns the commands clients sent Redis
// meanwhile (lower-case names, in order), read through MONITOR. Commands a
// Lua script runs inside Redis are left out: each entry is one round trip.
func clientCommands(t *testing.T, ts *testServer, action func()) []string {
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
	var cmds []string
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
		name, _, _ := strings.Cut(strings.TrimPrefix(args, `"`), `"`)
		cmds = append(cmds, strings.ToLower(name))
	}
}

func TestLoginIsOneRedisRoundTrip(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis"})
	ts.createUser("alice", alicePW, user.RoleUser)
	ts.newBrowser().login("alice", alicePW) // loads the scripts into Redis
	b := ts.newBrowser()
	cmds := clientCommands(t, ts, func() { b.login("alice", alicePW) })
	if len(cmds) != 1 || cmds[0] != "evalsha" {
		t.Errorf("a login sent Redis %q, want one script call (create + index + limit)", cmds)
	}
	cmds = clientCommands(t, ts, func() { b.get("/") })
	if len(cmds) != 1 || cmds[0] != "get" {
		t.Errorf("a signed-in page view sent Redis %q, want one GET", cmds)
	}
}
