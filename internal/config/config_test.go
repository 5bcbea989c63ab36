package config

import (
	"github.com/hallpass/hallpass/internal/session"
	"log/slog"
	"net/netip"
	"net/url"
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
		AdminMaxSessions: -1, RememberIdleTimeout: 7 * 24 * time.Hour, RememberLifetime: 30 * 24 * time.Hour,
		RememberRoles: []string{"user"},
		SessionCache:  true, SessionCacheEntries: 100000, SessionCacheMiB: 64,
		Factors: true, RequireMFA: "none", SudoWindow: 10 * time.Minute, WebAuthnRPID: "localhost", WebAuthnOrigins: []string{"http://localhost:8080"},
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

func TestResolveSaysWhereEachValueCameFrom(t *testing.T) {
	values, c, err := Resolve([]string{"--addr", "127.0.0.1:9000"},
		env(map[string]string{"HALLPASS_ADDR": ":7000", "HALLPASS_SIGNUP": "closed"}), "host-a")
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if len(values) != len(Settings()) {
		t.Fatalf("%d values for %d settings", len(values), len(Settings()))
	}
	got := map[string]Value{}
	for _, v := range values {
		got[v.Setting.Env] = v
	}
	for _, want := range []struct{ env, value, source string }{
		{"HALLPASS_ADDR", "127.0.0.1:9000", "flag --addr"},
		{"HALLPASS_SIGNUP", "closed", "env"},
		{"HALLPASS_LOG_LEVEL", "info", "default"},
		{"HALLPASS_REPLICA_ID", "host-a", "default"},
	} {
		if v := got[want.env]; v.Value != want.value || v.Source != want.source {
			t.Errorf("%s = %q from %q, want %q from %q", want.env, v.Value, v.Source, want.value, want.source)
		}
	}
	if c.Addr != "127.0.0.1:9000" || c.Signup != SignupClosed {
		t.Errorf("config %+v does not match the values", c)
	}
}

func TestResolveShowsEveryValueEvenWhenSomeAreInvalid(t *testing.T) {
	values, c, err := Resolve(nil, env(map[string]string{"HALLPASS_ADDR": "nope"}), "h")
	if err == nil {
		t.Fatal("Resolve accepted HALLPASS_ADDR=nope")
	}
	if len(values) != len(Settings()) || values[0].Value != "nope" || values[0].Source != "env" {
		t.Errorf("values %+v, want every setting, HALLPASS_ADDR first as nope from env", values)
	}
	if !reflect.DeepEqual(c, Config{}) {
		t.Errorf("Resolve returned a config built from invalid values: %+v", c)
	}
}

// TestSettingsThatCanHoldAPasswordAreSecret keeps a new password or URL
// setting from being printed in the clear.
func TestSettingsThatCanHoldAPasswordAreSecret(t *testing.T) {
	for _, s := range Settings() {
		if (strings.Contains(s.Env, "PASSWORD") || strings.HasSuffix(s.Env, "_URL")) && s.mask == nil {
			t.Errorf("%s can hold a password but is not masked", s.Env)
		}
	}
}

func TestSecretsAreMaskedWhenShown(t *testing.T) {
	for _, tc := range []struct{ env, value, want string }{
		{"HALLPASS_REDIS_PASSWORD", "hunter2", "****"},
		{"HALLPASS_REDIS_PASSWORD", "", ""},
		{"HALLPASS_DATABASE_URL", "postgres://app:hunter2@db:5432/hallpass", "postgres://app:****@db:5432/hallpass"},
		{"HALLPASS_DATABASE_URL", "postgresql://app@db/hallpass", "postgresql://app@db/hallpass"},
		{"HALLPASS_DATABASE_URL", "postgres://db/hp?sslmode=disable&password=hunter2", "postgres://db/hp?sslmode=disable&password=****"},
		{"HALLPASS_DATABASE_URL", "sqlite:./data/hallpass.db", "sqlite:./data/hallpass.db"},
		// A file name need not parse as a URL, and holds nothing to hide.
		{"HALLPASS_DATABASE_URL", "sqlite:/var/lib/100%.db", "sqlite:/var/lib/100%.db"},
		{"HALLPASS_DATABASE_URL", "postgres://app:hun ter2@db/hp", "(unparsable, hidden)"},
		// The "#" ends the URL early, so the parser sees no password; the
		// "@" after it gives the mistake away.
		{"HALLPASS_DATABASE_URL", "postgres://app:12#34@db/hp", "(unparsable, hidden)"},
		{"HALLPASS_REDIS_URL", "redis://u:s3cret@h:6379", "redis://u:****@h:6379"},
		{"HALLPASS_REDIS_URL", "redis://:s3cret@h:6379/0", "redis://:****@h:6379/0"},
		// redigo sends a lone user name as the password.
		{"HALLPASS_REDIS_URL", "redis://s3cret@h:6379", "redis://****@h:6379"},
		{"HALLPASS_REDIS_URL", "redis://h:6379", "redis://h:6379"},
		{"HALLPASS_REDIS_URL", "", ""},
		{"HALLPASS_REDIS_URL", "u:s3cret@h:6379", "(unparsable, hidden)"},
		{"HALLPASS_ADDR", ":8080", ":8080"},
	} {
		v := Value{Setting: setting(t, tc.env), Value: tc.value}
		if got := v.Shown(); got != tc.want {
			t.Errorf("%s=%q shown as %q, want %q", tc.env, tc.value, got, tc.want)
		}
	}
}

func TestProblemsNeverEchoASecret(t *testing.T) {
	_, err := Load([]string{"--redis-url", "rediss://u:hunter2@h:6380"}, env(map[string]string{
		"HALLPASS_DATABASE_URL": "postgresql+asyncpg://app:hunter2@db/hp",
	}), "h")
	if err == nil {
		t.Fatal("Load accepted a rediss:// and a postgresql+asyncpg:// URL")
	}
	msg := err.Error()
	if strings.Contains(msg, "hunter2") {
		t.Errorf("a problem repeats the password:\n%s", msg)
	}
	for _, want := range []string{
		`HALLPASS_DATABASE_URL: "postgresql+asyncpg://app:****@db/hp" is not valid`,
		`--redis-url (HALLPASS_REDIS_URL): "rediss://u:****@h:6380" is not valid`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}

	_, err = Load(nil, env(map[string]string{"HALLPASS_DATABASE_URL": "mysql://app:hun ter2@db"}), "h")
	if err == nil || strings.Contains(err.Error(), "ter2") || !strings.Contains(err.Error(), "(unparsable, hidden)") {
		t.Errorf("error for an unparsable URL with a password: %v", err)
	}
}

// setting returns the setting read from env.
func setting(t *testing.T, env string) Setting {
	t.Helper()
	for _, s := range Settings() {
		if s.Env == env {
			return s
		}
	}
	t.Fatalf("no setting %s", env)
	return Setting{}
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

// FuzzShownHidesTheURLPassword checks the masking, which works on the text,
// against what url.Parse (and so redigo and pgx) takes for the password.
func FuzzShownHidesTheURLPassword(f *testing.F) {
	f.Add("redis://u:s3cret@h:6379/0")
	f.Add("redis://s3cret@h:6379")
	f.Add("postgres://app:hunter2@db/hp?sslmode=disable&password=hunter2#x")
	f.Fuzz(func(t *testing.T, raw string) {
		shown := Value{Setting: setting(t, "HALLPASS_REDIS_URL"), Value: raw}.Shown()
		if shown == hidden || raw == "" {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%q does not parse but was shown as %q", raw, shown)
		}
		s, err := url.Parse(shown)
		if err != nil {
			t.Fatalf("%q shown as %q, which does not parse: %v", raw, shown, err)
		}
		if s.Host != u.Host || s.Path != u.Path || (u.User == nil) != (s.User == nil) {
			t.Fatalf("%q shown as %q: more than the password changed", raw, shown)
		}
		if u.User == nil {
			return
		}
		if _, ok := u.User.Password(); ok {
			if p, _ := s.User.Password(); p != "****" {
				t.Fatalf("%q shown as %q: password %q", raw, shown, p)
			}
		} else if u.User.Username() != "" && s.User.Username() != "****" {
			t.Fatalf("%q shown as %q: lone user name %q", raw, shown, s.User.Username())
		}
		if p := u.Query().Get("password"); p != "" && s.Query().Get("password") != "****" {
			t.Fatalf("%q shown as %q: password parameter %q", raw, shown, s.Query().Get("password"))
		}
	})
}

func TestSessionPoliciesPerRole(t *testing.T) {
	c, err := Load(nil, env(map[string]string{
		"HALLPASS_ADMIN_SESSION_IDLE_TIMEOUT": "15m", "HALLPASS_ADMIN_SESSION_LIFETIME": "8h",
		"HALLPASS_ADMIN_MAX_SESSIONS": "2", "HALLPASS_ADMIN_SESSION_LIMIT_POLICY": "reject",
		"HALLPASS_REMEMBER_ROLES": "user, admin, user",
	}), "h")
	if err != nil {
		t.Fatal(err)
	}
	p := c.SessionPolicies()
	users := session.Policy{IdleTimeout: 30 * time.Minute, Lifetime: 12 * time.Hour, Limit: session.Limit{Max: 100, Policy: session.EvictOldest}}
	admins := session.Policy{IdleTimeout: 15 * time.Minute, Lifetime: 8 * time.Hour, Limit: session.Limit{Max: 2, Policy: session.Reject}}
	if p.Default != users || p.ByRole["admin"] != admins {
		t.Errorf("policies %+v, want users %+v and admins %+v", p, users, admins)
	}
	if !p.CanRemember("user") || !p.CanRemember("admin") || len(p.RememberRoles) != 2 {
		t.Errorf("remember roles %v, want user and admin once each", p.RememberRoles)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	// Unset, administrators get everyone's policy and cannot stay signed in.
	d, _ := Load(nil, env(nil), "h")
	if dp := d.SessionPolicies(); dp.ByRole["admin"] != dp.Default || dp.CanRemember("admin") || !dp.CanRemember("user") {
		t.Errorf("default policies %+v", dp)
	}
	if none, _ := Load(nil, env(map[string]string{"HALLPASS_REMEMBER_ROLES": "none"}), "h"); none.SessionPolicies().CanRemember("user") {
		t.Error("HALLPASS_REMEMBER_ROLES=none still lets users stay signed in")
	}
}

func TestSessionPoliciesThatCannotWorkAreRefused(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"admin idle beyond admin lifetime":       {"HALLPASS_ADMIN_SESSION_IDLE_TIMEOUT": "9h", "HALLPASS_ADMIN_SESSION_LIFETIME": "8h"},
		"admin idle beyond everyone's lifetime":  {"HALLPASS_ADMIN_SESSION_IDLE_TIMEOUT": "13h"},
		"remember idle beyond remember lifetime": {"HALLPASS_REMEMBER_IDLE_TIMEOUT": "800h"},
		"unknown role":                           {"HALLPASS_REMEMBER_ROLES": "user,root"},
		"bad admin limit":                        {"HALLPASS_ADMIN_MAX_SESSIONS": "-1"},
		"bad admin policy":                       {"HALLPASS_ADMIN_SESSION_LIMIT_POLICY": "kick"},
	} {
		if _, err := Load(nil, env(vars), "h"); err == nil {
			t.Errorf("%s: Load accepted %v", name, vars)
		}
	}
}

func TestSecondFactorSettings(t *testing.T) {
	key := "dGVzdC1vbmx5LXNlY3JldC1rZXktMzItYnl0ZXMhISE=" // 32 bytes
	old := "b2xkLWtleS1vbmx5LXVzZWQtdG8tb3Blbi1zZWNyZXRzIQ=="
	c, err := Load(nil, env(map[string]string{
		"HALLPASS_SECRET_KEY":       key + ", " + old,
		"HALLPASS_REQUIRE_MFA":      "admins",
		"HALLPASS_WEBAUTHN_RP_ID":   "Example.com",
		"HALLPASS_WEBAUTHN_ORIGINS": "https://example.com, https://login.example.com/",
	}), "h")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(c.SecretKeys) != 2 || len(c.SecretKeys[0]) != 32 {
		t.Errorf("secret keys: %d keys, want 2 with the first of 32 bytes", len(c.SecretKeys))
	}
	if c.RequireMFA != "admins" || c.WebAuthnRPID != "example.com" ||
		!reflect.DeepEqual(c.WebAuthnOrigins, []string{"https://example.com", "https://login.example.com"}) {
		t.Errorf("got require %q, RP ID %q, origins %v", c.RequireMFA, c.WebAuthnRPID, c.WebAuthnOrigins)
	}
}

func TestSecondFactorSettingsThatCannotWorkAreRefused(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"short key":                        {"HALLPASS_SECRET_KEY": "c2hvcnQ="},
		"key not base64":                   {"HALLPASS_SECRET_KEY": "not a key at all, not even close!!!!!!!!!"},
		"unknown policy":                   {"HALLPASS_REQUIRE_MFA": "some"},
		"policy without factors":           {"HALLPASS_REQUIRE_MFA": "all", "HALLPASS_FACTORS": "false"},
		"RP ID with a scheme":              {"HALLPASS_WEBAUTHN_RP_ID": "https://example.com"},
		"RP ID an IP address":              {"HALLPASS_WEBAUTHN_RP_ID": "127.0.0.1"},
		"plain http off localhost":         {"HALLPASS_WEBAUTHN_RP_ID": "example.com", "HALLPASS_WEBAUTHN_ORIGINS": "http://example.com"},
		"origin on another domain":         {"HALLPASS_WEBAUTHN_RP_ID": "example.com", "HALLPASS_WEBAUTHN_ORIGINS": "https://example.org"},
		"origin a suffix, not a subdomain": {"HALLPASS_WEBAUTHN_RP_ID": "example.com", "HALLPASS_WEBAUTHN_ORIGINS": "https://badexample.com"},
		"origin with a path":               {"HALLPASS_WEBAUTHN_ORIGINS": "http://localhost:8080/login"},
	} {
		if _, err := Load(nil, env(vars), "h"); err == nil {
			t.Errorf("%s: Load accepted %v", name, vars)
		}
	}
}

func TestSecretKeyNeverAppearsInProblems(t *testing.T) {
	secret := "c2VjcmV0LWJ1dC10b28tc2hvcnQ="
	_, err := Load(nil, env(map[string]string{"HALLPASS_SECRET_KEY": secret}), "h")
	if err == nil {
		t.Fatal("a 20-byte key was accepted")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the problem message shows the key: %v", err)
	}
}
