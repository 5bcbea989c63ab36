// Package config reads Hallpass's settings from environment variables and
// the matching command-line flags of `hallpass serve`, applies the documented
// defaults and reports every invalid value at once.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/clientip"
	"github.com/hallpass/hallpass/internal/secretbox"
	"github.com/hallpass/hallpass/internal/session"
)

// SignupMode says whether visitors may create their own accounts.
type SignupMode string

// Sign-up modes.
const (
	SignupOpen   SignupMode = "open"
	SignupClosed SignupMode = "closed"
)

// DefaultDatabaseURL is the embedded default database: a SQLite file that
// needs nothing but the hallpass binary.
const DefaultDatabaseURL = "sqlite:./data/hallpass.db"

// Config is the complete configuration of `hallpass serve`.
type Config struct {
	// Addr is the listen address of the public HTTP server.
	Addr string
	// DatabaseURL selects the user database: sqlite:PATH or postgres://….
	DatabaseURL string
	// RedisURL selects the shared session store; empty means sessions live
	// in this process only.
	RedisURL string
	// RedisSentinels are the Sentinels to ask for the session store's
	// primary; when set they take precedence over RedisURL.
	RedisSentinels []string
	// RedisCluster are seed nodes of a Redis Cluster to keep sessions in;
	// when set they take precedence over RedisSentinels and RedisURL.
	RedisCluster []string
	// RedisMaster is the name the Sentinels monitor the primary under.
	RedisMaster string
	// RedisPassword authenticates to the Redis servers found through the
	// Sentinels.
	RedisPassword string
	// RedisWaitReplicas is how many replicas must confirm each session
	// creation and revocation (Redis WAIT); 0 waits for none.
	RedisWaitReplicas int
	// RedisWaitTimeout bounds that wait.
	RedisWaitTimeout time.Duration
	// SessionCache keeps the sessions this replica serves in its memory,
	// kept honest by Redis's invalidations (only with Redis).
	SessionCache bool
	// SessionCacheEntries and SessionCacheMiB bound that cache.
	SessionCacheEntries int
	SessionCacheMiB     int
	// ReplicaID names this replica in responses, logs and sessions.
	ReplicaID string
	// SessionIdleTimeout ends a session after this long without a request.
	SessionIdleTimeout time.Duration
	// SessionLifetime ends a session this long after sign-in, whatever the
	// activity.
	SessionLifetime time.Duration
	// AdminSessionIdleTimeout, AdminSessionLifetime, AdminMaxSessions and
	// AdminSessionLimitPolicy are the administrators' session policy; zero
	// (or "") means the same as everyone's.
	AdminSessionIdleTimeout time.Duration
	AdminSessionLifetime    time.Duration
	AdminMaxSessions        int // -1: the same as MaxSessionsPerUser
	AdminSessionLimitPolicy string
	// RememberIdleTimeout and RememberLifetime are the timeouts of a
	// session whose user ticked "keep me signed in", for the roles in
	// RememberRoles (none: the option is off).
	RememberIdleTimeout time.Duration
	RememberLifetime    time.Duration
	RememberRoles       []string

	// BrowserSessionCookie keeps the session cookie without an expiry, so
	// closing the browser drops it (shared computers).
	BrowserSessionCookie bool
	// CookieSecure marks the session cookie Secure and names it with the
	// __Host- prefix. Only plain-http test rigs turn it off.
	CookieSecure bool
	// Signup says whether GET/POST /signup are offered.
	Signup SignupMode
	// LogFormat is text or json.
	LogFormat string
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// MaxSessionsPerUser caps each user's concurrent sessions; 0 means no cap.
	MaxSessionsPerUser int
	// SessionLimitPolicy is evict-oldest or reject.
	SessionLimitPolicy string
	// MetricsAddr is the listen address of the Prometheus metrics server;
	// empty turns it off.
	MetricsAddr string
	// DrainDelay is how long a stopping replica reports not-ready before it
	// stops taking requests, so the load balancer can route around it.
	DrainDelay time.Duration

	// Factors turns second factors (TOTP, recovery codes, passkeys) and
	// their pages on; `hallpass serve` then needs SecretKeys.
	Factors bool
	// SecretKeys encrypt TOTP secrets at rest and seal the sign-in state
	// handed to browsers: the first seals, every one opens (rotation).
	SecretKeys [][]byte
	// RequireMFA is none, admins or all: whose accounts must have a second
	// factor.
	RequireMFA string
	// SudoWindow is how long a proof of sign-in lets a session do
	// sensitive things (sudo mode).
	SudoWindow time.Duration
	// WebAuthnRPID and WebAuthnOrigins are the passkeys' relying party:
	// the site's domain, and the origins its pages are served from.
	WebAuthnRPID    string
	WebAuthnOrigins []string
}

// Setting documents one configuration value: its environment variable, its
// flag on `hallpass serve`, its default and the form it accepts. The README's
// configuration table is checked against Settings by a test.
type Setting struct {
	Env      string
	Flag     string
	Default  string
	Accepted string
	Doc      string
	apply    func(c *Config, v string) error
	// mask, set on secret settings, returns the value fit to print: a
	// problem message or `hallpass config check` ends up in logs, tickets and
	// chat, where a password must not follow it.
	mask func(v string) string
}

// Value is one setting as Resolve found it.
type Value struct {
	Setting Setting
	// Value is the text the setting was read from, secrets included: print
	// Shown instead.
	Value string
	// Source says where Value came from: "flag --NAME", "env" or "default".
	Source string
}

// Shown returns the value fit to print: as it is, or with its secret part
// masked. A URL that does not parse is not shown at all, because nothing
// says where its password would be.
func (v Value) Shown() string {
	if v.Setting.mask == nil {
		return v.Value
	}
	return v.Setting.mask(v.Value)
}

// masked replaces secrets, and hidden replaces a value whose secret part
// cannot be found.
const (
	masked = "****"
	hidden = "(unparsable, hidden)"
)

// maskWhole masks a value that is a secret through and through.
func maskWhole(v string) string {
	if v == "" {
		return ""
	}
	return masked
}

// maskDatabaseURL masks the password of a database URL. A sqlite: URL is a
// file path with nothing to hide, and paths need not parse as URLs.
func maskDatabaseURL(v string) string {
	if strings.HasPrefix(v, "sqlite:") {
		return v
	}
	return maskURL(v, false)
}

// addrList parses a comma-separated list of host:port ("" is none); the
// error shows example.
func addrList(v, example string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var addrs []string
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, errors.New("use a comma-separated list of host:port, such as " + example)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// maskRedisURL masks the password of a Redis URL. A lone user name is masked
// too, because redigo (like redis-cli) sends it as the password.
func maskRedisURL(v string) string {
	return maskURL(v, true)
}

// maskURL returns raw with the password in its userinfo, and the value of any
// query parameter named like a password (pgx reads ?password=), replaced by
// "****"; the rest is left as written. It works on the text rather than
// re-encoding a url.URL, which would escape the mask as %2A%2A%2A%2A. An "@"
// outside the userinfo means the user probably meant a userinfo the parser
// did not see (a "?" or "#" in the password, a missing "//"), so such a value
// is hidden whole.
func maskURL(raw string, loneUserIsPassword bool) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return hidden
	}
	rest, fragment, hasFragment := strings.Cut(raw, "#")
	rest, query, hasQuery := strings.Cut(rest, "?")
	start := 0
	if u.Scheme != "" {
		start = len(u.Scheme) + 1
	}
	if strings.HasPrefix(rest[start:], "//") {
		start += 2
		authority := rest[start:]
		if i := strings.Index(authority, "/"); i >= 0 {
			authority = authority[:i]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			user, _, hasPassword := strings.Cut(authority[:at], ":")
			switch {
			case hasPassword:
				user += ":" + masked
			case loneUserIsPassword:
				user = masked
			}
			rest = rest[:start] + user + rest[start+at:]
			start += len(user) + 1
		}
	}
	if strings.Contains(rest[start:], "@") || strings.Contains(query, "@") || strings.Contains(fragment, "@") {
		return hidden
	}
	if hasQuery {
		params := strings.Split(query, "&")
		for i, p := range params {
			key, _, _ := strings.Cut(p, "=")
			if name, err := url.QueryUnescape(key); err != nil || strings.Contains(strings.ToLower(name), "password") {
				params[i] = key + "=" + masked
			}
		}
		rest += "?" + strings.Join(params, "&")
	}
	if hasFragment {
		rest += "#" + fragment
	}
	return rest
}

// Settings lists every configuration value in the order the README shows them.
func Settings() []Setting {
	return []Setting{
		{
			Env: "HALLPASS_ADDR", Flag: "addr", Default: ":8080", Accepted: "host:port",
			Doc: "Listen address of the HTTP server.",
			apply: func(c *Config, v string) error {
				if _, _, err := net.SplitHostPort(v); err != nil {
					return errors.New("use host:port, for example :8080 or 127.0.0.1:8080")
				}
				c.Addr = v
				return nil
			},
		},
		{
			Env: "HALLPASS_DATABASE_URL", Flag: "database-url", Default: DefaultDatabaseURL,
			Accepted: "sqlite:PATH or postgres://user:pass@host:port/db",
			Doc:      "User database. The default is a SQLite file created on first run.",
			mask:     maskDatabaseURL,
			apply: func(c *Config, v string) error {
				if !strings.HasPrefix(v, "sqlite:") && !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
					return errors.New("use sqlite:PATH or postgres://user:pass@host:port/db")
				}
				c.DatabaseURL = v
				return nil
			},
		},
		{
			Env: "HALLPASS_REDIS_URL", Flag: "redis-url", Default: "", Accepted: "redis://[user:pass@]host:port[/db]",
			Doc:  "Shared session store. Empty keeps sessions in this process only (one replica).",
			mask: maskRedisURL,
			apply: func(c *Config, v string) error {
				if v != "" && !strings.HasPrefix(v, "redis://") {
					return errors.New("use redis://[user:pass@]host:port[/db], or leave it empty for in-process sessions")
				}
				c.RedisURL = v
				return nil
			},
		},
		{
			Env: "HALLPASS_REDIS_SENTINELS", Flag: "redis-sentinels", Default: "", Accepted: "host:port,host:port,…",
			Doc: "Redis Sentinels to ask for the session store's primary (failover-aware). Takes precedence over HALLPASS_REDIS_URL.",
			apply: func(c *Config, v string) (err error) {
				c.RedisSentinels, err = addrList(v, "sentinel1:26379,sentinel2:26379")
				return err
			},
		},
		{
			Env: "HALLPASS_REDIS_CLUSTER", Flag: "redis-cluster", Default: "", Accepted: "host:port,host:port,…",
			Doc: "Nodes of a Redis Cluster to keep sessions in (any few; the rest are found): sessions are spread over its primaries by user (docs/SCALING.md). Takes precedence over HALLPASS_REDIS_SENTINELS and HALLPASS_REDIS_URL; HALLPASS_REDIS_PASSWORD authenticates.",
			apply: func(c *Config, v string) (err error) {
				c.RedisCluster, err = addrList(v, "redis1:6379,redis2:6379")
				return err
			},
		},
		{
			Env: "HALLPASS_REDIS_MASTER", Flag: "redis-master", Default: "hallpass", Accepted: "name",
			Doc: "Name the Sentinels monitor the primary under.",
			apply: func(c *Config, v string) error {
				if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t\r\n") {
					return errors.New("use the master name from the Sentinel configuration, without spaces")
				}
				c.RedisMaster = v
				return nil
			},
		},
		{
			Env: "HALLPASS_REDIS_PASSWORD", Flag: "redis-password", Default: "", Accepted: "text",
			Doc:  "Password for the Redis servers found through the Sentinels or in the Redis Cluster (with HALLPASS_REDIS_URL, put it in the URL).",
			mask: maskWhole,
			apply: func(c *Config, v string) error {
				c.RedisPassword = v
				return nil
			},
		},
		{
			Env: "HALLPASS_REDIS_WAIT_REPLICAS", Flag: "redis-wait-replicas", Default: "0", Accepted: "whole number ≥ 0",
			Doc: "Replicas that must confirm each sign-in and revocation (Redis WAIT) before it is answered; otherwise 503.",
			apply: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 || n > 16 {
					return errors.New("use a whole number from 0 to 16")
				}
				c.RedisWaitReplicas = n
				return nil
			},
		},
		{
			Env: "HALLPASS_REDIS_WAIT_TIMEOUT", Flag: "redis-wait-timeout", Default: "250ms", Accepted: "Go duration",
			Doc: "How long a sign-in or revocation waits for the replicas to confirm it.",
			apply: func(c *Config, v string) error {
				d, err := positiveDuration(v)
				c.RedisWaitTimeout = d
				return err
			},
		},
		{
			Env: "HALLPASS_SESSION_CACHE", Flag: "session-cache", Default: "true", Accepted: "true or false",
			Doc: "With Redis, serve signed-in pages from a per-replica session cache kept honest by Redis's invalidations (docs/SESSIONS.md); false reads Redis on every request.",
			apply: func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return errors.New("use true or false")
				}
				c.SessionCache = b
				return nil
			},
		},
		{
			Env: "HALLPASS_SESSION_CACHE_ENTRIES", Flag: "session-cache-entries", Default: "100000", Accepted: "whole number ≥ 1",
			Doc: "Most sessions the session cache holds; the least recently used go first.",
			apply: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return errors.New("use a whole number of at least 1")
				}
				c.SessionCacheEntries = n
				return nil
			},
		},
		{
			Env: "HALLPASS_SESSION_CACHE_MIB", Flag: "session-cache-mib", Default: "64", Accepted: "whole number ≥ 1",
			Doc: "Most memory (MiB) the session cache's entries take.",
			apply: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 1<<20 {
					return errors.New("use a whole number of MiB from 1 to 1048576")
				}
				c.SessionCacheMiB = n
				return nil
			},
		},
		{
			Env: "HALLPASS_REPLICA_ID", Flag: "replica-id", Default: "host name", Accepted: "text",
			Doc: "Name of this replica, sent as X-Served-By and recorded in sessions.",
			apply: func(c *Config, v string) error {
				if strings.TrimSpace(v) == "" || len(v) > 64 {
					return errors.New("use 1 to 64 characters")
				}
				c.ReplicaID = v
				return nil
			},
		},
		{
			Env: "HALLPASS_SESSION_IDLE_TIMEOUT", Flag: "session-idle-timeout", Default: "30m", Accepted: "Go duration",
			Doc: "A session ends after this long without a request.",
			apply: func(c *Config, v string) error {
				d, err := positiveDuration(v)
				c.SessionIdleTimeout = d
				return err
			},
		},
		{
			Env: "HALLPASS_SESSION_LIFETIME", Flag: "session-lifetime", Default: "12h", Accepted: "Go duration",
			Doc: "A session ends this long after sign-in, however active.",
			apply: func(c *Config, v string) error {
				d, err := positiveDuration(v)
				c.SessionLifetime = d
				return err
			},
		},
		{
			Env: "HALLPASS_COOKIE_SECURE", Flag: "cookie-secure", Default: "true", Accepted: "true or false",
			Doc: "false only for plain-http rigs: the cookie loses Secure and the __Host- prefix.",
			apply: func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return errors.New("use true or false")
				}
				c.CookieSecure = b
				return nil
			},
		},
		{
			Env: "HALLPASS_COOKIE_PERSISTENT", Flag: "cookie-persistent", Default: "true", Accepted: "true or false",
			Doc: "true: the session cookie expires at the session's absolute end. false: a browser-session cookie, dropped when the browser closes (shared computers).",
			apply: func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return errors.New("use true or false")
				}
				c.BrowserSessionCookie = !b
				return nil
			},
		},
		{
			Env: "HALLPASS_SIGNUP", Flag: "signup", Default: "open", Accepted: "open or closed",
			Doc: "Whether visitors may create their own accounts at /signup.",
			apply: func(c *Config, v string) error {
				switch SignupMode(v) {
				case SignupOpen, SignupClosed:
					c.Signup = SignupMode(v)
					return nil
				}
				return errors.New("use open or closed")
			},
		},
		{
			Env: "HALLPASS_TRUSTED_PROXIES", Flag: "trusted-proxies", Default: "", Accepted: "comma-separated CIDRs or IPs",
			Doc: "Peers (load balancers) whose X-Forwarded-For names the client IP. Empty trusts no one.",
			apply: func(c *Config, v string) error {
				p, err := clientip.ParseTrusted(v)
				if err != nil {
					return errors.New("use a comma-separated list of CIDRs or IPs, such as 10.0.0.0/8,127.0.0.1")
				}
				c.TrustedProxies = p
				return nil
			},
		},
		{
			Env: "HALLPASS_MAX_SESSIONS_PER_USER", Flag: "max-sessions-per-user", Default: "100", Accepted: "whole number ≥ 0",
			Doc: "Most concurrent sessions one account may have; 0 means no limit. The default is far above what people use and stops one account (or a script with its password) from filling the session store.",
			apply: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 || n > 10000 {
					return errors.New("use a whole number from 0 (no limit) to 10000")
				}
				c.MaxSessionsPerUser = n
				return nil
			},
		},
		{
			Env: "HALLPASS_SESSION_LIMIT_POLICY", Flag: "session-limit-policy", Default: "evict-oldest", Accepted: "evict-oldest or reject",
			Doc: "At the session limit: sign out the least recently active session, or ask the user to pick one to sign out.",
			apply: func(c *Config, v string) error {
				if v != "evict-oldest" && v != "reject" {
					return errors.New("use evict-oldest or reject")
				}
				c.SessionLimitPolicy = v
				return nil
			},
		},
		{
			Env: "HALLPASS_ADMIN_SESSION_IDLE_TIMEOUT", Flag: "admin-session-idle-timeout", Default: "", Accepted: "Go duration, or empty",
			Doc: "Idle timeout of administrators' sessions; empty means HALLPASS_SESSION_IDLE_TIMEOUT. Stricter values (15m) suit accounts that can sign everyone out.",
			apply: func(c *Config, v string) error {
				return optionalDuration(v, &c.AdminSessionIdleTimeout)
			},
		},
		{
			Env: "HALLPASS_ADMIN_SESSION_LIFETIME", Flag: "admin-session-lifetime", Default: "", Accepted: "Go duration, or empty",
			Doc: "Lifetime of administrators' sessions; empty means HALLPASS_SESSION_LIFETIME.",
			apply: func(c *Config, v string) error {
				return optionalDuration(v, &c.AdminSessionLifetime)
			},
		},
		{
			Env: "HALLPASS_ADMIN_MAX_SESSIONS", Flag: "admin-max-sessions", Default: "", Accepted: "whole number ≥ 0, or empty",
			Doc: "Most concurrent sessions one administrator may have (0: no limit); empty means HALLPASS_MAX_SESSIONS_PER_USER.",
			apply: func(c *Config, v string) error {
				c.AdminMaxSessions = -1
				if v == "" {
					return nil
				}
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 || n > 10000 {
					return errors.New("use a whole number from 0 (no limit) to 10000, or leave it empty")
				}
				c.AdminMaxSessions = n
				return nil
			},
		},
		{
			Env: "HALLPASS_ADMIN_SESSION_LIMIT_POLICY", Flag: "admin-session-limit-policy", Default: "", Accepted: "evict-oldest, reject, or empty",
			Doc: "Administrators' policy at their session limit; empty means HALLPASS_SESSION_LIMIT_POLICY.",
			apply: func(c *Config, v string) error {
				if v != "" && v != "evict-oldest" && v != "reject" {
					return errors.New("use evict-oldest or reject, or leave it empty")
				}
				c.AdminSessionLimitPolicy = v
				return nil
			},
		},
		{
			Env: "HALLPASS_REMEMBER_IDLE_TIMEOUT", Flag: "remember-idle-timeout", Default: "168h", Accepted: "Go duration",
			Doc: "Idle timeout of a session whose user ticked \"keep me signed in\" (default 7 days).",
			apply: func(c *Config, v string) error {
				d, err := positiveDuration(v)
				c.RememberIdleTimeout = d
				return err
			},
		},
		{
			Env: "HALLPASS_REMEMBER_LIFETIME", Flag: "remember-lifetime", Default: "720h", Accepted: "Go duration",
			Doc: "Lifetime of a \"keep me signed in\" session, and of its cookie (default 30 days).",
			apply: func(c *Config, v string) error {
				d, err := positiveDuration(v)
				c.RememberLifetime = d
				return err
			},
		},
		{
			Env: "HALLPASS_REMEMBER_ROLES", Flag: "remember-roles", Default: "user", Accepted: "comma-separated roles (user, admin), or none",
			Doc: "Roles whose users may tick \"keep me signed in\"; none hides the option. Administrators are left out by default.",
			apply: func(c *Config, v string) error {
				c.RememberRoles = nil
				if v == "none" {
					return nil
				}
				for _, r := range strings.Split(v, ",") {
					switch r = strings.TrimSpace(r); r {
					case "":
					case "user", "admin":
						if !slices.Contains(c.RememberRoles, r) {
							c.RememberRoles = append(c.RememberRoles, r)
						}
					default:
						return errors.New("use user and admin, comma-separated, or none")
					}
				}
				return nil
			},
		},
		{
			Env: "HALLPASS_FACTORS", Flag: "factors", Default: "true", Accepted: "true or false",
			Doc: "Second factors (authenticator apps, recovery codes, passkeys) and sudo mode's code and passkey prompts. On, `hallpass serve` needs HALLPASS_SECRET_KEY.",
			apply: func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				c.Factors = b
				if err != nil {
					return errors.New("use true or false")
				}
				return nil
			},
		},
		{
			Env: "HALLPASS_SECRET_KEY", Flag: "secret-key", Default: "", Accepted: "comma-separated base64 keys of ≥ 32 bytes",
			Doc: "Encrypts TOTP secrets in the database and seals sign-in state given to browsers; kept out of the database, so a dump alone yields no codes. To rotate, put the new key first and keep the old ones after it until every secret was re-sealed (each is on its next use). Make one with `openssl rand -base64 32`.",
			apply: func(c *Config, v string) error {
				if v == "" {
					c.SecretKeys = nil
					return nil
				}
				keys, err := secretbox.ParseKeys(v)
				c.SecretKeys = keys
				return err
			},
			mask: maskWhole,
		},
		{
			Env: "HALLPASS_REQUIRE_MFA", Flag: "require-mfa", Default: "none", Accepted: "none, admins or all",
			Doc: "Whose accounts must have a second factor: right after the password, a user without one is taken to enrol and can reach nothing else until done.",
			apply: func(c *Config, v string) error {
				if v != "none" && v != "admins" && v != "all" {
					return errors.New("use none, admins or all")
				}
				c.RequireMFA = v
				return nil
			},
		},
		{
			Env: "HALLPASS_SUDO_WINDOW", Flag: "sudo-window", Default: "10m", Accepted: "Go duration, 1s to 1h",
			Doc: "Sudo mode: how long a proof of sign-in (the sign-in itself, or the prompt's password, code or passkey) lets a session change factors, sign out other devices or act as an administrator before it is asked again.",
			apply: func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil || d < time.Second || d > time.Hour {
					return errors.New("use a Go duration from 1s to 1h, such as 10m")
				}
				c.SudoWindow = d
				return nil
			},
		},
		{
			Env: "HALLPASS_WEBAUTHN_RP_ID", Flag: "webauthn-rp-id", Default: "localhost", Accepted: "a domain name",
			Doc: "Passkeys' relying party ID: the site's domain (example.com), which every origin's host must equal or be a subdomain of. Passkeys are bound to it: changing it orphans them.",
			apply: func(c *Config, v string) error {
				if v == "" || strings.ContainsAny(v, ":/ ") || net.ParseIP(v) != nil {
					return errors.New("use a domain name such as example.com (no scheme, port or IP address)")
				}
				c.WebAuthnRPID = strings.ToLower(v)
				return nil
			},
		},
		{
			Env: "HALLPASS_WEBAUTHN_ORIGINS", Flag: "webauthn-origins", Default: "http://localhost:8080", Accepted: "comma-separated origins",
			Doc: "Origins the pages are served from, as browsers send them (https://login.example.com); http only for localhost.",
			apply: func(c *Config, v string) error {
				c.WebAuthnOrigins = nil
				for _, o := range strings.Split(v, ",") {
					if o = strings.TrimSpace(o); o != "" {
						c.WebAuthnOrigins = append(c.WebAuthnOrigins, strings.TrimSuffix(o, "/"))
					}
				}
				if len(c.WebAuthnOrigins) == 0 {
					return errors.New("give at least one origin, such as https://example.com")
				}
				return nil
			},
		},
		{
			Env: "HALLPASS_METRICS_ADDR", Flag: "metrics-addr", Default: "", Accepted: "host:port",
			Doc: "Listen address of the Prometheus /metrics server, separate from the public one. Empty turns it off.",
			apply: func(c *Config, v string) error {
				if v == "" {
					return nil
				}
				if _, _, err := net.SplitHostPort(v); err != nil {
					return errors.New("use host:port, for example 127.0.0.1:9090, or leave it empty")
				}
				c.MetricsAddr = v
				return nil
			},
		},
		{
			Env: "HALLPASS_DRAIN_DELAY", Flag: "drain-delay", Default: "5s", Accepted: "Go duration ≥ 0",
			Doc: "On SIGTERM, how long /readyz answers 503 before the server stops accepting requests.",
			apply: func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil || d < 0 || d > 5*time.Minute {
					return errors.New("use a Go duration from 0s to 5m, such as 5s")
				}
				c.DrainDelay = d
				return nil
			},
		},
		{
			Env: "HALLPASS_LOG_FORMAT", Flag: "log-format", Default: "text", Accepted: "text or json",
			Doc: "Log line format on standard error.",
			apply: func(c *Config, v string) error {
				if v != "text" && v != "json" {
					return errors.New("use text or json")
				}
				c.LogFormat = v
				return nil
			},
		},
		{
			Env: "HALLPASS_LOG_LEVEL", Flag: "log-level", Default: "info", Accepted: "debug, info, warn or error",
			Doc: "Least severe level that is logged.",
			apply: func(c *Config, v string) error {
				var l slog.Level
				if err := l.UnmarshalText([]byte(v)); err != nil || strings.ContainsAny(v, "+-") {
					return errors.New("use debug, info, warn or error")
				}
				c.LogLevel = l
				return nil
			},
		},
	}
}

// optionalDuration sets *d from v, a positive duration, or to zero for "".
func optionalDuration(v string, d *time.Duration) error {
	*d = 0
	if v == "" {
		return nil
	}
	var err error
	*d, err = positiveDuration(v)
	return err
}

func positiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errors.New("use a positive Go duration such as 30m, 12h or 1h30m")
	}
	return d, nil
}

// Load builds the configuration from flags (args, without the subcommand
// name), then environment variables, then defaults, in that order of
// precedence. hostname is the default replica ID. Every invalid value is
// reported in one error, each naming its variable and the accepted form.
func Load(args []string, getenv func(string) string, hostname string) (Config, error) {
	_, c, err := Resolve(args, getenv, hostname)
	return c, err
}

// Resolve is Load that also says, setting by setting, which value was used
// and where it came from, so `hallpass config check` shows exactly what
// serve would run with. It returns a value for every setting even when some
// are invalid, but the Config only when all are. When the flags themselves
// cannot be parsed it returns no values, and the flag error (flag.ErrHelp for
// --help).
func Resolve(args []string, getenv func(string) string, hostname string) ([]Value, Config, error) {
	settings := Settings()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagValues := make([]*string, len(settings))
	for i, s := range settings {
		flagValues[i] = fs.String(s.Flag, "", s.Doc+" (env "+s.Env+")")
	}
	if err := fs.Parse(args); err != nil {
		return nil, Config{}, fmt.Errorf("serve flags: %w", err)
	}
	if fs.NArg() > 0 {
		return nil, Config{}, fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var c Config
	var problems []error
	values := make([]Value, len(settings))
	for i, s := range settings {
		v := Value{Setting: s, Value: *flagValues[i], Source: "flag --" + s.Flag}
		from := "--" + s.Flag + " (" + s.Env + ")"
		if !set[s.Flag] {
			v.Value, v.Source, from = getenv(s.Env), "env", s.Env
			if v.Value == "" {
				v.Value, v.Source, from = s.Default, "default", "default of "+s.Env
				if s.Env == "HALLPASS_REPLICA_ID" {
					v.Value = hostname
				}
			}
		}
		values[i] = v
		if err := s.apply(&c, v.Value); err != nil {
			problems = append(problems, fmt.Errorf("%s: %q is not valid: %w", from, v.Shown(), err))
		}
	}
	if len(problems) == 0 && c.MetricsAddr != "" && c.MetricsAddr == c.Addr {
		problems = append(problems, errors.New("HALLPASS_METRICS_ADDR must differ from HALLPASS_ADDR: metrics are never served on the public listener"))
	}
	if len(problems) == 0 && c.SessionIdleTimeout > c.SessionLifetime {
		problems = append(problems, fmt.Errorf("HALLPASS_SESSION_IDLE_TIMEOUT (%s) must not exceed HALLPASS_SESSION_LIFETIME (%s)", c.SessionIdleTimeout, c.SessionLifetime))
	}
	if len(problems) == 0 {
		admin := c.SessionPolicies().ByRole["admin"]
		if admin.IdleTimeout > admin.Lifetime {
			problems = append(problems, fmt.Errorf("administrators' idle timeout (%s) must not exceed their lifetime (%s): see HALLPASS_ADMIN_SESSION_IDLE_TIMEOUT and HALLPASS_ADMIN_SESSION_LIFETIME", admin.IdleTimeout, admin.Lifetime))
		}
		if c.RememberIdleTimeout > c.RememberLifetime {
			problems = append(problems, fmt.Errorf("HALLPASS_REMEMBER_IDLE_TIMEOUT (%s) must not exceed HALLPASS_REMEMBER_LIFETIME (%s)", c.RememberIdleTimeout, c.RememberLifetime))
		}
	}
	if len(problems) == 0 {
		problems = append(problems, c.checkWebAuthn()...)
		if c.RequireMFA != "none" && !c.Factors {
			problems = append(problems, fmt.Errorf("HALLPASS_REQUIRE_MFA=%s needs second factors: set HALLPASS_FACTORS=true", c.RequireMFA))
		}
	}
	if err := errors.Join(problems...); err != nil {
		return values, Config{}, err
	}
	return values, c, nil
}

// Usage writes the serve flags with their variables and defaults to w.
func Usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: hallpass serve [flags]\n\nEvery flag can also be set by its environment variable; a flag wins.")
	for _, s := range Settings() {
		fmt.Fprintf(w, "  --%-22s %-30s %s (default %q; %s)\n", s.Flag, s.Env, s.Doc, s.Default, s.Accepted)
	}
}

// SessionPolicies is the session policy of each role: everyone's settings,
// with the administrators' overrides, and "keep me signed in".
func (c Config) SessionPolicies() session.Policies {
	users := session.Policy{
		IdleTimeout: c.SessionIdleTimeout,
		Lifetime:    c.SessionLifetime,
		Limit:       session.Limit{Max: c.MaxSessionsPerUser, Policy: session.LimitPolicy(c.SessionLimitPolicy)},
	}
	admins := users
	if c.AdminSessionIdleTimeout > 0 {
		admins.IdleTimeout = c.AdminSessionIdleTimeout
	}
	if c.AdminSessionLifetime > 0 {
		admins.Lifetime = c.AdminSessionLifetime
	}
	if c.AdminMaxSessions >= 0 {
		admins.Limit.Max = c.AdminMaxSessions
	}
	if c.AdminSessionLimitPolicy != "" {
		admins.Limit.Policy = session.LimitPolicy(c.AdminSessionLimitPolicy)
	}
	return session.Policies{
		Default:       users,
		ByRole:        map[string]session.Policy{"admin": admins},
		Remembered:    session.Policy{IdleTimeout: c.RememberIdleTimeout, Lifetime: c.RememberLifetime},
		RememberRoles: c.RememberRoles,
	}
}

// checkWebAuthn checks the passkeys' relying party against its origins, as
// browsers will: each origin is https (or http on localhost, for
// development), and its host is the RP ID or a subdomain of it.
func (c Config) checkWebAuthn() []error {
	var problems []error
	for _, o := range c.WebAuthnOrigins {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			problems = append(problems, fmt.Errorf("HALLPASS_WEBAUTHN_ORIGINS: %q is not an origin (scheme://host[:port])", o))
			continue
		}
		host := u.Hostname()
		switch {
		case u.Scheme == "https":
		case u.Scheme == "http" && (host == "localhost" || strings.HasSuffix(host, ".localhost")):
		default:
			problems = append(problems, fmt.Errorf("HALLPASS_WEBAUTHN_ORIGINS: %q must use https (http only on localhost): browsers offer passkeys to secure origins only", o))
			continue
		}
		if host != c.WebAuthnRPID && !strings.HasSuffix(host, "."+c.WebAuthnRPID) {
			problems = append(problems, fmt.Errorf("HALLPASS_WEBAUTHN_ORIGINS: %q is not on HALLPASS_WEBAUTHN_RP_ID %q (its host must be that domain or a subdomain of it)", o, c.WebAuthnRPID))
		}
	}
	return problems
}
