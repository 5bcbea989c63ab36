package rediscluster

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/gomodule/redigo/redis"
)

func TestCommandSlot(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		args []any
		want int
		err  error
	}{
		{"GET", []any{"foo"}, Slot("foo"), nil},
		{"get", []any{[]byte("foo")}, Slot("foo"), nil},
		{"ZADD", []any{"{u1}idx", 1, "m"}, Slot("u1"), nil},
		{"PEXPIRE", []any{"k", 1000}, Slot("k"), nil},
		{"INCR", []any{42}, Slot("42"), nil},
		{"DEL", []any{"{u1}a", "{u1}b"}, Slot("u1"), nil},
		{"DEL", []any{"a", "b"}, 0, ErrCrossSlot},
		{"EXISTS", []any{"{x}1", "{y}1"}, 0, ErrCrossSlot},
		{"MGET", []any{"foo", "bar"}, 0, ErrCrossSlot},
		{"MSET", []any{"{t}a", "foo", "{t}b", "bar"}, Slot("t"), nil}, // values are not keys
		{"MSET", []any{"a", "1", "b", "2"}, 0, ErrCrossSlot},
		{"RENAME", []any{"{t}a", "{t}b"}, Slot("t"), nil},
		{"BLPOP", []any{"{t}a", "{t}b", 0}, Slot("t"), nil},
		{"EVALSHA", []any{"sha", 2, "{u1}a", "{u1}b", "arg"}, Slot("u1"), nil},
		{"EVAL", []any{"src", "2", "{u1}a", "{u2}b"}, 0, ErrCrossSlot},
		{"EVAL", []any{"src", 0, "notakey"}, keyless, nil},
		{"FCALL", []any{"f", 1, "k", "arg"}, Slot("k"), nil},
		{"WAIT", []any{1, 100}, keyless, nil},
		{"PING", nil, keyless, nil},
		{"CLIENT", []any{"ID"}, keyless, nil},
		{"SCRIPT", []any{"LOAD", "return 1"}, broadcast, nil},
		{"script", []any{"load", "return 1"}, broadcast, nil},
		{"SCRIPT", []any{"EXISTS", "sha"}, keyless, nil},
		{"MULTI", nil, 0, ErrUnsupported},
		{"SUBSCRIBE", []any{"ch"}, 0, ErrUnsupported},
	} {
		got, err := commandSlot(tc.cmd, tc.args)
		if !errors.Is(err, tc.err) || err == nil && got != tc.want {
			t.Errorf("commandSlot(%s %v) = %d, %v; want %d, %v", tc.cmd, tc.args, got, err, tc.want, tc.err)
		}
	}
	if _, err := commandSlot("EVAL", []any{"src", 3, "k"}); err == nil {
		t.Errorf("EVAL with more keys declared than given: no error")
	}
}

func TestParseRedirect(t *testing.T) {
	for _, tc := range []struct {
		in, from string
		slot     int
		addr     string
		ok       bool
	}{
		{"3999 127.0.0.1:6381", "10.0.0.1:1", 3999, "127.0.0.1:6381", true},
		{"3999 :6381", "10.0.0.1:6379", 3999, "10.0.0.1:6381", true},
		{"16384 127.0.0.1:6381", "", 0, "", false},
		{"x 127.0.0.1:6381", "", 0, "", false},
		{"12", "", 0, "", false},
	} {
		slot, addr, ok := parseRedirect(tc.in, tc.from)
		if slot != tc.slot || addr != tc.addr || ok != tc.ok {
			t.Errorf("parseRedirect(%q, %q) = %d, %q, %v", tc.in, tc.from, slot, addr, ok)
		}
	}
}

// A command whose keys span slots is refused before any node is asked:
// Dial fails the test if called.
func TestCrossSlotCommandIsNeverSent(t *testing.T) {
	c := &Cluster{
		opts: Options{
			Dial: func(context.Context, string) (redis.Conn, error) {
				t.Error("dialed a node for a command that must not be sent")
				return nil, errors.New("no")
			},
			MaxIdlePerNode: 1,
		},
		pools:      map[string]*redis.Pool{},
		refreshNow: make(chan struct{}, 1),
	}
	b := newMapBuilder()
	if err := b.assign(0, SlotCount-1, "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	m, err := b.done()
	if err != nil {
		t.Fatal(err)
	}
	c.slots.Store(m)

	conn := &conn{cluster: c}
	defer conn.Close()
	if _, err := conn.Do("DEL", "a", "b"); !errors.Is(err, ErrCrossSlot) {
		t.Errorf("Do DEL a b: %v, want ErrCrossSlot", err)
	}
	if _, err := conn.DoContext(t.Context(), "MGET", "{x}a", "{y}b"); !errors.Is(err, ErrCrossSlot) {
		t.Errorf("DoContext MGET: %v, want ErrCrossSlot", err)
	}
	if err := conn.Send("EXISTS", "a", "b"); !errors.Is(err, ErrCrossSlot) {
		t.Errorf("Send EXISTS a b: %v, want ErrCrossSlot", err)
	}
	if _, err := conn.Do("MULTI"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Do MULTI: %v, want ErrUnsupported", err)
	}
	if len(conn.queue) != 0 {
		t.Errorf("refused commands were queued: %d", len(conn.queue))
	}
}

func TestParseShards(t *testing.T) {
	node := func(id string, port int, role, health string) []any {
		return []any{[]byte("id"), []byte(id), []byte("port"), int64(port), []byte("ip"), []byte("10.0.0.1"),
			[]byte("endpoint"), []byte("10.0.0.1"), []byte("role"), []byte(role), []byte("health"), []byte(health)}
	}
	reply := []any{
		// a failed primary still owning its slots, and its replica
		[]any{[]byte("slots"), []any{int64(0), int64(99), int64(200), int64(200)},
			[]byte("nodes"), []any{node("a", 7000, "master", "fail"), node("b", 7001, "replica", "online")}},
		// a promoted replica, and the old primary it replaced, failed
		[]any{[]byte("slots"), []any{int64(100), int64(199), int64(201), int64(16383)},
			[]byte("nodes"), []any{node("c", 7002, "master", "online")}},
		[]any{[]byte("slots"), []any{}, []byte("nodes"), []any{node("d", 7003, "master", "fail")}},
	}
	m, err := parseShards(reply, "ignored")
	if err != nil {
		t.Fatal(err)
	}
	for slot, want := range map[int]string{0: "10.0.0.1:7000", 99: "10.0.0.1:7000", 100: "10.0.0.1:7002",
		200: "10.0.0.1:7000", 201: "10.0.0.1:7002", 16383: "10.0.0.1:7002"} {
		if got := m.primaryOf(slot); got != want {
			t.Errorf("slot %d: %s, want %s", slot, got, want)
		}
	}
	if want := []string{"10.0.0.1:7000", "10.0.0.1:7002"}; !slices.Equal(m.primaries, want) {
		t.Errorf("primaries %v, want %v", m.primaries, want)
	}
	if m.nodes["10.0.0.1:7000"] || m.nodes["10.0.0.1:7003"] || !m.nodes["10.0.0.1:7001"] {
		t.Errorf("live nodes %v: failed ones listed or a replica missing", m.nodes)
	}
	moved := m.with(5, "10.0.0.1:7009")
	if moved.primaryOf(5) != "10.0.0.1:7009" || m.primaryOf(5) != "10.0.0.1:7000" || len(moved.primaries) != 3 {
		t.Errorf("with: slot 5 on %s (was %s), primaries %v", moved.primaryOf(5), m.primaryOf(5), moved.primaries)
	}
}
