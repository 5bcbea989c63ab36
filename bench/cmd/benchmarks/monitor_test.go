package main

import (
	"testing"
	"time"
)

func TestParseMonitorLine(t *testing.T) {
	for _, tc := range []struct {
		line, source, name, arg string
		ok                      bool
	}{
		{`1700000000.123456 [0 127.0.0.1:51234] "EVALSHA" "3f2a" "1" "hp:cache:replicas"`, "127.0.0.1:51234", "evalsha", "3f2a", true},
		{`1700000000.123457 [0 lua] "ZADD" "hp:cache:replicas" "1700000001000" "app1-ab12"`, "lua", "zadd", "hp:cache:replicas", true},
		{`1700000000.123458 [0 127.0.0.1:26379] "PUBLISH" "__sentinel__:hello" "127.0.0.1,26379,\"x\""`, "127.0.0.1:26379", "publish", "__sentinel__:hello", true},
		{`1700000000.123459 [0 unix:/tmp/redis.sock] "ping"`, "unix:/tmp/redis.sock", "ping", "", true},
		{`OK`, "", "", "", false},
	} {
		source, name, arg, ok := parseMonitorLine(tc.line)
		if source != tc.source || name != tc.name || arg != tc.arg || ok != tc.ok {
			t.Errorf("parseMonitorLine(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", tc.line, source, name, arg, ok, tc.source, tc.name, tc.arg, tc.ok)
		}
	}
}

func TestQuantileIsNearestRank(t *testing.T) {
	var v []time.Duration
	for i := 100; i >= 1; i-- {
		v = append(v, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got := quantile(v, q); got != want {
			t.Errorf("quantile(1..100 ms, %v) = %v, want %v", q, got, want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile(nil) = %v, want 0", got)
	}
}
