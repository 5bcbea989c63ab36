package redisx_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/testsvc"
)

func newPool(t *testing.T, rawURL string) *redis.Pool {
	t.Helper()
	pool, err := redisx.NewPool(rawURL, redisx.DefaultPoolOptions())
	if err != nil {
		t.Fatalf("NewPool(%q): %v", rawURL, err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

func TestPingReachesRedis(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool := newPool(t, srv.URL)
	if err := redisx.Ping(context.Background(), pool); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestPoolUsesTheDatabaseInTheURL(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool := newPool(t, srv.URL+"/3")
	c, err := pool.GetContext(context.Background())
	if err != nil {
		t.Fatalf("get connection: %v", err)
	}
	defer c.Close()
	if _, err := c.Do("SET", "in-db-3", "1"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	check := srv.Conn(t)
	if _, err := check.Do("SELECT", 3); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	if n, err := redis.Int(check.Do("EXISTS", "in-db-3")); err != nil || n != 1 {
		t.Fatalf("EXISTS in db 3 = %d, %v; want 1", n, err)
	}
}

func TestPingFailsFastWhenNothingListens(t *testing.T) {
	port := testsvc.FreePort(t)
	pool := newPool(t, "redis://127.0.0.1:"+strconv.Itoa(port))
	start := time.Now()
	err := redisx.Ping(context.Background(), pool)
	if err == nil {
		t.Fatal("Ping of a closed port succeeded")
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("Ping took %s to fail, want about a second at most", took)
	}
}

func TestPingHonoursTheContextWhenRedisHangs(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool := newPool(t, srv.URL)
	srv.Pause(t)
	t.Cleanup(func() { srv.Resume(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := redisx.Ping(ctx, pool); err == nil {
		t.Fatal("Ping of a frozen server succeeded")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Ping took %s, want it bounded by the 200ms context", took)
	}
}

func TestNewPoolRejectsInvalidURLs(t *testing.T) {
	tests := []string{
		"",
		"localhost:6379",
		"http://localhost:6379",
		"redis://",
		"redis://:6379",
		"redis://localhost:notaport",
		"redis://localhost:0",
		"redis://localhost:70000",
		"redis://localhost:6379/db",
		"redis://localhost:6379/1/2",
		"redis://localhost:6379?db=1",
		"redis:localhost",
		"redis://user:se%zzcret@localhost:6379",
	}
	for _, raw := range tests {
		t.Run(raw, func(t *testing.T) {
			pool, err := redisx.NewPool(raw, redisx.DefaultPoolOptions())
			if err == nil {
				pool.Close()
				t.Fatalf("NewPool(%q) succeeded", raw)
			}
			if !errors.Is(err, redisx.ErrInvalidURL) {
				t.Errorf("error %v is not ErrInvalidURL", err)
			}
			if strings.Contains(err.Error(), "se%zzcret") {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
}

func TestNewPoolAcceptsValidURLs(t *testing.T) {
	for _, raw := range []string{
		"redis://localhost:6379",
		"redis://localhost",
		"redis://localhost:6379/",
		"redis://localhost:6379/15",
		"redis://:pw@localhost:6379/0",
		"redis://user:pw@10.0.0.1:6380",
		"rediss://[::1]:6379",
	} {
		pool, err := redisx.NewPool(raw, redisx.PoolOptions{})
		if err != nil {
			t.Errorf("NewPool(%q): %v", raw, err)
			continue
		}
		pool.Close()
	}
}

func TestDefaultPoolOptions(t *testing.T) {
	got := redisx.DefaultPoolOptions()
	want := redisx.PoolOptions{
		MaxActive:      64,
		MaxIdle:        64,
		IdleTimeout:    4 * time.Minute,
		ConnectTimeout: 500 * time.Millisecond,
		ReadTimeout:    time.Second,
		WriteTimeout:   time.Second,
	}
	if got != want {
		t.Errorf("DefaultPoolOptions() = %+v, want %+v", got, want)
	}
}

func TestDescribeURLRedactsSecrets(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://:hunter2@localhost:6379", "redis://:xxxxx@localhost:6379"},
		{"redis://app:hunter2@localhost:6379/1", "redis://app:xxxxx@localhost:6379/1"},
		// redigo sends a lone user name as the password.
		{"redis://hunter2@localhost:6379", "redis://xxxxx@localhost:6379"},
		{"redis://app:hun%zzter2@localhost", "(unparseable redis URL)"},
	}
	for _, tt := range tests {
		if got := redisx.DescribeURL(tt.raw); got != tt.want {
			t.Errorf("DescribeURL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}
