package config

import (
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(nil, env(nil), "host-a")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{
		Addr: ":8080", DatabaseURL: "sqlite:./data/hallpass.db", RedisURL: "", ReplicaID: "host-a",
		SessionIdleTimeout: 30 * time.Minute, SessionLifetime: 12 * time.Hour, CookieSecure: true,
		Signup: SignupOpen, LogFormat: "text", LogLevel: slog.LevelInfo,
		MaxSessionsPerUser: 100, SessionLimitPolicy: "evict-oldest", DrainDelay: 5 * time.Second,
		RedisMaster: "hallpass", RedisWaitTimeout: 250 * time.Millisecond,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults\n got %+v\nwant %+v", c, want)
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	c, err := Load([]string{"--addr", "127.0.0.1:9000", "--session-idle-timeout=5m"},
		env(map[string]string{"HALLPASS_ADDR": ":7000", "HALLPASS_SESSION_IDLE_TIMEOUT": "10m", "HALLPASS_SIGNUP": "closed", "HALLPASS_COOKIE_SECURE": "false", "HALLPASS_LOG_LEVEL": "debug"}), "h")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Addr != "127.0.0.1:9000" || c.SessionIdleTimeout != 5*time.Minute || c.Signup != SignupClosed || c.CookieSecure || c.LogLevel != slog.LevelDebug {
		t.Errorf("got %+v", c)
	}
}

func TestInvalidValuesAreAllReported(t *testing.T) {
	_, err := Load(nil, env(map[string]string{
		"HALLPASS_ADDR":                  "8080",
		"HALLPASS_DATABASE_URL":          "mysql://x",
		"HALLPASS_REDIS_URL":             "localhost:6379",
		"HALLPASS_SESSION_IDLE_TIMEOUT":  "thirty",
		"HALLPASS_SESSION_LIFETIME":      "-1h",
		"HALLPASS_COOKIE_SECURE":         "maybe",
		"HALLPASS_SIGNUP":                "sometimes",
		"HALLPASS_LOG_FORMAT":            "xml",
		"HALLPASS_LOG_LEVEL":             "loud",
		"HALLPASS_TRUSTED_PROXIES":       "10.0.0.0/33",
		"HALLPASS_MAX_SESSIONS_PER_USER": "-1",
		"HALLPASS_SESSION_LIMIT_POLICY":  "block",
		"HALLPASS_REDIS_SENTINELS":       "sentinel-without-port",
		"HALLPASS_REDIS_WAIT_REPLICAS":   "many",
	}), "h")
	if err == nil {
		t.Fatal("Load accepted invalid values")
	}
	msg := err.Error()
	for _, want := range []string{
		"HALLPASS_ADDR", "host:port",
		"HALLPASS_DATABASE_URL", "sqlite:PATH",
		"HALLPASS_REDIS_URL", "redis://",
		"HALLPASS_SESSION_IDLE_TIMEOUT", "Go duration",
		"HALLPASS_SESSION_LIFETIME",
		"HALLPASS_COOKIE_SECURE", "true or false",
		"HALLPASS_SIGNUP", "open or closed",
		"HALLPASS_LOG_FORMAT", "text or json",
		"HALLPASS_LOG_LEVEL", "debug, info, warn or error",
		"HALLPASS_TRUSTED_PROXIES", "CIDRs",
		"HALLPASS_MAX_SESSIONS_PER_USER", "whole number",
		"HALLPASS_SESSION_LIMIT_POLICY", "evict-oldest or reject",
		"HALLPASS_REDIS_SENTINELS", "host:port",
		"HALLPASS_REDIS_WAIT_REPLICAS", "whole number",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}

func TestInvalidFlagNamesItsVariable(t *testing.T) {
	_, err := Load([]string{"--session-lifetime", "soon"}, env(nil), "h")
	if err == nil || !strings.Contains(err.Error(), "--session-lifetime") || !strings.Contains(err.Error(), "HALLPASS_SESSION_LIFETIME") {
		t.Fatalf("error %v, want one naming the flag and its variable", err)
	}
}

func TestSessionControlSettings(t *testing.T) {
	c, err := Load(nil, env(map[string]string{
		"HALLPASS_TRUSTED_PROXIES":       "10.0.0.0/8, 127.0.0.1",
		"HALLPASS_MAX_SESSIONS_PER_USER": "3",
		"HALLPASS_SESSION_LIMIT_POLICY":  "reject",
	}), "h")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	if !reflect.DeepEqual(c.TrustedProxies, want) || c.MaxSessionsPerUser != 3 || c.SessionLimitPolicy != "reject" {
		t.Errorf("got proxies %v, max %d, policy %q", c.TrustedProxies, c.MaxSessionsPerUser, c.SessionLimitPolicy)
	}
}

func TestIdleTimeoutMayNotExceedLifetime(t *testing.T) {
	_, err := Load(nil, env(map[string]string{"HALLPASS_SESSION_IDLE_TIMEOUT": "2h", "HALLPASS_SESSION_LIFETIME": "1h"}), "h")
	if err == nil || !strings.Contains(err.Error(), "must not exceed") {
		t.Fatalf("error %v, want idle > lifetime refused", err)
	}
}

func TestUnknownFlagIsAnError(t *testing.T) {
	if _, err := Load([]string{"--no-such-flag"}, env(nil), "h"); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

// TestReadmeConfigTableMatchesSettings keeps the README's table true: every
// setting appears with its flag and default, and nothing else does.
func TestReadmeConfigTableMatchesSettings(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "| `HALLPASS_") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "| "), "|") {
			cells = append(cells, strings.Trim(strings.TrimSpace(c), "`"))
		}
		rows[cells[0]] = cells
	}
	for _, s := range Settings() {
		row, ok := rows[s.Env]
		if !ok {
			t.Errorf("README has no row for %s", s.Env)
			continue
		}
		delete(rows, s.Env)
		if len(row) < 4 || row[1] != "--"+s.Flag || row[2] != s.Default {
			t.Errorf("README row %q, want flag --%s and default %q", row, s.Flag, s.Default)
		}
	}
	for env := range rows {
		t.Errorf("README documents %s, which Hallpass does not read", env)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add("HALLPASS_SESSION_IDLE_TIMEOUT", "30m")
	f.Add("HALLPASS_ADDR", ":8080")
	f.Add("HALLPASS_LOG_LEVEL", "warn")
	f.Add("HALLPASS_REDIS_URL", "redis://x:1")
	f.Fuzz(func(t *testing.T, key, value string) {
		c, err := Load(nil, env(map[string]string{key: value}), "h")
		if err == nil && (c.SessionIdleTimeout <= 0 || c.SessionLifetime <= 0 || c.Addr == "") {
			t.Fatalf("accepted %s=%q into an invalid config %+v", key, value, c)
		}
	})
}
