package testsvc_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/testsvc"
)

func TestStartRedisAnswersOnLoopbackOnly(t *testing.T) {
	srv := testsvc.StartRedis(t)
	c := srv.Conn(t)
	if pong, err := redis.String(c.Do("PING")); err != nil || pong != "PONG" {
		t.Fatalf("PING = %q, %v; want PONG", pong, err)
	}
	bind, err := redis.StringMap(c.Do("CONFIG", "GET", "bind"))
	if err != nil {
		t.Fatalf("CONFIG GET bind: %v", err)
	}
	if bind["bind"] != "127.0.0.1" {
		t.Errorf("bind = %q, want only 127.0.0.1", bind["bind"])
	}
	cfg, err := redis.StringMap(c.Do("CONFIG", "GET", "save"))
	if err != nil {
		t.Fatalf("CONFIG GET save: %v", err)
	}
	if cfg["save"] != "" {
		t.Errorf("save = %q, want snapshots off", cfg["save"])
	}
	if !strings.HasPrefix(srv.URL, "redis://127.0.0.1:") {
		t.Errorf("URL = %q", srv.URL)
	}
}

func TestRedisServerStopsAndStartsOnTheSamePort(t *testing.T) {
	srv := testsvc.StartRedis(t)
	if _, err := srv.Conn(t).Do("SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	srv.Stop(t)
	if c, err := redis.Dial("tcp", srv.Addr, redis.DialConnectTimeout(time.Second)); err == nil {
		c.Close()
		t.Fatalf("dial %s after Stop succeeded", srv.Addr)
	}
	srv.Start(t)
	c := srv.Conn(t)
	v, err := c.Do("GET", "k")
	if err != nil || v != nil {
		t.Fatalf("GET after restart = %v, %v; want an empty server", v, err)
	}
}

func TestPausedRedisDoesNotAnswer(t *testing.T) {
	srv := testsvc.StartRedis(t)
	c, err := redis.Dial("tcp", srv.Addr, redis.DialReadTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	srv.Pause(t)
	if _, err := c.Do("PING"); err == nil {
		t.Fatal("paused server answered PING")
	}
	srv.Resume(t)
	if _, err := srv.Conn(t).Do("PING"); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
}
