package web

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/clientip"
	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/devicetrust"
	"github.com/hallpass/hallpass/internal/factor"
	"github.com/hallpass/hallpass/internal/live"
	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/requestid"
	"github.com/hallpass/hallpass/internal/secretbox"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/sessioncache"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
	"github.com/hallpass/hallpass/web"
)

// testHashParams keep argon2id cheap in tests; the real parameters are
// covered by the password package.
var testHashParams = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// backends are the session stores every scenario runs against.
var backends = []string{"memory", "redis"}

type testOptions struct {
	backend     string
	limit       session.Limit
	signup      bool
	idle        time.Duration
	lifetime    time.Duration
	maxHashes   int
	cookieInsec bool
	// browserSessionCookie asks for a cookie without an expiry.
	browserSessionCookie bool
	// hashParams are the argon2id parameters; zero means cheap test ones.
	hashParams password.Params
	// hashWait bounds the wait for a hashing slot; zero means the default.
	hashWait time.Duration
	// loginPolicy replaces the default sign-in throttling policy.
	loginPolicy *throttle.Policy
	// redisReplica gives the Redis backend a replica of its Redis, which
	// the store reads while the primary cannot be reached, as with
	// Sentinel in production.
	redisReplica bool
	// replicaOf makes this server another replica of a Redis-backed one:
	// the same Redis, user database and clock, as replicas share them.
	replicaOf *testServer
	// replicaID names the server; empty means "test-replica".
	replicaID string
	// policies, if set, are the per-role session policies (and "keep me
	// signed in"), replacing idle, lifetime and limit.
	policies *session.Policies
	// noSessionCache reads Redis on every request, as
	// HALLPASS_SESSION_CACHE=false does; by default a Redis-backed server
	// keeps a session cache, as in production.
	noSessionCache bool
	// requireMFA is HALLPASS_REQUIRE_MFA; "" means none.
	requireMFA account.MFAPolicy
	// noFactors runs without HALLPASS_SECRET_KEY: second factors off.
	noFactors bool
}

// testServer is the whole web app over real HTTPS, with a SQLite user
// database and the chosen session store.
type testServer struct {
	*httptest.Server
	t      testing.TB
	clock  *testkit.Clock
	users  user.Store
	audit  *audit.SQLStore
	hasher *password.Hasher
	// sessions is the server's session manager.
	sessions *session.Manager
	// account is the server's account service.
	account  *account.Service
	throttle throttle.Store
	redis    *testsvc.RedisServer
	// redisReplica is redis's replica (testOptions.redisReplica), or nil.
	redisReplica *testsvc.RedisServer
	logs         *testkit.LogBuffer
	db           *database.DB
	// link is the session cache's link (Redis backend with the cache);
	// live, the open tabs' hub.
	link *sessioncache.Link
	live *live.Hub
	// secretKey is the server's HALLPASS_SECRET_KEY (random per test, the
	// same on every replica of one); factors keeps second factors.
	secretKey []byte
	factors   *factor.SQLStore
}

func newTestServer(t testing.TB, opts testOptions) *testServer {
	t.Helper()
	if opts.idle == 0 {
		opts.idle = 30 * time.Minute
	}
	if opts.lifetime == 0 {
		opts.lifetime = 12 * time.Hour
	}
	if opts.maxHashes == 0 {
		opts.maxHashes = 4
	}
	opts.replicaID = cmp.Or(opts.replicaID, "test-replica")
	ctx := context.Background()
	var (
		db        *database.DB
		clock     *testkit.Clock
		secretKey []byte
	)
	if p := opts.replicaOf; p != nil {
		if opts.backend != "redis" || p.redis == nil {
			t.Fatal("only Redis-backed servers have replicas")
		}
		db, clock, secretKey = p.db, p.clock, p.secretKey
	} else {
		secretKey = make([]byte, secretbox.MinKeyBytes)
		_, _ = rand.Read(secretKey)
		var err error
		db, err = database.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "hallpass.db"))
		if err != nil {
			t.Fatalf("open database: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		if err := database.Migrate(ctx, db); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		start := time.Now().UTC().Truncate(time.Second)
		if opts.backend == "redis" {
			// The Redis store runs on the real clock (below), and stamps a
			// whole-user revocation with it; sign-ins are stamped by the
			// manager's fake clock. Started behind the real one, a sign-in
			// after a revocation would look older than it. A minute ahead
			// keeps the fake clock in front for any test's run time.
			start = start.Add(time.Minute)
		}
		clock = testkit.NewClock(start)
	}
	users := user.NewSQLStore(db, clock.Now)

	ts := &testServer{t: t, clock: clock, users: users, audit: audit.NewSQLStore(db, clock.Now), logs: &testkit.LogBuffer{}, db: db, secretKey: secretKey}
	var box *secretbox.Box
	if !opts.noFactors {
		var err error
		if box, err = secretbox.New([][]byte{secretKey}); err != nil {
			t.Fatalf("secret box: %v", err)
		}
		ts.factors = factor.NewSQLStore(db, box)
	}
	storeOpts := session.StoreOptions(opts.idle, opts.lifetime, clock.Now)
	if opts.policies != nil {
		idle, lifetime := opts.policies.Longest()
		storeOpts = session.StoreOptions(idle, lifetime, clock.Now)
	}
	var store session.Store
	switch opts.backend {
	case "memory":
		store = session.NewMemoryStore(storeOpts)
		ts.throttle = throttle.NewMemoryStore(clock.Now)
	case "redis":
		if opts.replicaOf != nil {
			ts.redis = opts.replicaOf.redis
		} else {
			ts.redis = testsvc.StartRedis(t)
		}
		pool, err := redisx.NewPool(ts.redis.URL, redisx.DefaultPoolOptions())
		if err != nil {
			t.Fatalf("redis pool: %v", err)
		}
		t.Cleanup(func() { pool.Close() })
		// Redis judges key expiry by its own clock, so the store must too.
		storeOpts.Now = nil
		redisStore := session.NewRedisStore(pool, storeOpts)
		if opts.redisReplica {
			ts.redisReplica = testsvc.StartRedisReplica(t, ts.redis)
			replicaPool, err := redisx.NewPool(ts.redisReplica.URL, redisx.DefaultPoolOptions())
			if err != nil {
				t.Fatalf("redis replica pool: %v", err)
			}
			t.Cleanup(func() { replicaPool.Close() })
			redisStore = session.NewRedisStoreWithReplica(pool, replicaPool, storeOpts)
		}
		store = sessioncache.NewAwaitingStore(redisStore, pool)
		if !opts.noSessionCache {
			link, err := sessioncache.StartLink(sessioncache.LinkOptions{
				Dial: pool.DialContext, Pool: pool, KeyPrefix: session.RedisSessionPrefix,
				ReplicaID: cmp.Or(opts.replicaID, "test-replica"), MaxEntries: 10000, MaxBytes: 16 << 20,
			})
			if err != nil {
				t.Fatalf("session cache: %v", err)
			}
			t.Cleanup(func() { link.Close() })
			store = sessioncache.NewStore(redisStore, link)
			ts.link = link
		}
		ts.throttle = throttle.NewRedisStore(pool, clock.Now)
	default:
		t.Fatalf("unknown backend %q", opts.backend)
	}
	if opts.hashParams == (password.Params{}) {
		opts.hashParams = testHashParams
	}
	ts.hasher = password.NewHasher(opts.hashParams, opts.maxHashes)
	loginPolicy := throttle.DefaultLoginPolicy()
	if opts.loginPolicy != nil {
		loginPolicy = *opts.loginPolicy
	}
	logger := slog.New(requestid.Handler(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	// The manager and the service need each other: the manager asks the
	// service's CheckSession when it refreshes a session.
	var svc *account.Service
	sessions := session.NewManager(session.ManagerOptions{
		Store: store, IdleTimeout: opts.idle, Lifetime: opts.lifetime,
		CookieSecure: !opts.cookieInsec, BrowserSessionCookie: opts.browserSessionCookie,
		ReplicaID: opts.replicaID, Now: clock.Now,
		Limit: opts.limit, Policies: opts.policies, Logger: logger,
		CheckUser: func(ctx context.Context, userID int64, created time.Time) (session.EndReason, error) {
			return svc.CheckSession(ctx, userID, created)
		},
	})
	ts.sessions = sessions
	// The open tabs' hub: fed by the cache's link when there is one, as in
	// production; otherwise each stream looks its session up itself, more
	// often than production's second so tests wait less.
	liveOpts := live.Options{Sessions: sessions, PollEvery: 100 * time.Millisecond, Now: clock.Now, Logger: logger}
	if ts.link != nil {
		liveOpts.Publish, liveOpts.PollEvery = ts.link.Publish, 0
	}
	ts.live = live.New(liveOpts)
	if ts.link != nil {
		ts.link.SetListener(ts.live)
	}
	var factors factor.Store
	if ts.factors != nil {
		factors = ts.factors
	}
	svc = account.New(account.Options{
		Factors:      factors,
		Secrets:      box,
		RequireMFA:   opts.requireMFA,
		Users:        users,
		Sessions:     sessions,
		Hasher:       ts.hasher,
		Throttle:     ts.throttle,
		Audit:        ts.audit,
		Logger:       logger,
		Now:          clock.Now,
		Replica:      opts.replicaID,
		HashWait:     opts.hashWait,
		LoginPolicy:  loginPolicy,
		SignupPolicy: throttle.DefaultSignupPolicy(),
		DeviceTrust:  devicetrust.NewSigner([]byte(rand.Text())),
		SignedIn: func(ctx context.Context, n account.SignInNotice) {
			ts.live.SignedIn(ctx, live.SignIn{UserID: n.UserID, PublicID: n.PublicID, Device: n.Device, IP: n.IP, At: n.At})
		},
	})
	ts.account = svc
	handler, err := NewServer(Deps{
		Logger:       logger,
		ReplicaID:    opts.replicaID,
		SignupOpen:   opts.signup,
		CookieSecure: !opts.cookieInsec,
		IdleTimeout:  opts.idle,
		RememberFor:  rememberFor(opts.policies),
		Sessions:     sessions,
		Account:      svc,
		Ready:        []Check{{Name: "session store", Ping: store.Ping}, {Name: "database", Ping: users.Ping}},
		ClientIP:     clientip.NewResolver(nil),
		Now:          clock.Now,
		Live:         ts.live,
	})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ts.Server = httptest.NewTLSServer(handler)
	t.Cleanup(ts.Close)
	return ts
}

// createUser adds a user straight to the database.
func (ts *testServer) createUser(name, pw string, role user.Role) user.User {
	ts.t.Helper()
	hash, err := ts.hasher.Hash(context.Background(), pw)
	if err != nil {
		ts.t.Fatalf("hash: %v", err)
	}
	u, err := ts.users.Create(context.Background(), user.NewUser{Username: name, PasswordHash: hash, Role: role})
	if err != nil {
		ts.t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

// redisConn is a direct connection to the test's Redis, for assertions.
func (ts *testServer) redisConn() redis.Conn {
	ts.t.Helper()
	if ts.redis == nil {
		ts.t.Fatal("this test server has no Redis")
	}
	return ts.redis.Conn(ts.t)
}

// browser is one client with its own cookie jar that does not follow
// redirects, like a browser tab whose every hop the test inspects.
type browser struct {
	t      testing.TB
	ts     *testServer
	client *http.Client
	// userAgent is sent with every request, to tell devices apart.
	userAgent string
}

func (ts *testServer) newBrowser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		ts.t.Fatalf("cookie jar: %v", err)
	}
	client := &http.Client{
		Transport: ts.Client().Transport.(*http.Transport).Clone(),
		Jar:       jar,
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // httptest's own certificate.
	return &browser{t: ts.t, ts: ts, client: client}
}

// response is a finished response with its body read.
type response struct {
	*http.Response
	body string
}

func (r response) doc(t *testing.T) *goquery.Document {
	t.Helper()
	d, err := goquery.NewDocumentFromReader(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("parse HTML: %v", err)
	}
	return d
}

// text returns the trimmed text of the first element matching selector.
func (r response) text(t *testing.T, selector string) string {
	t.Helper()
	return strings.TrimSpace(r.doc(t).Find(selector).First().Text())
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	if b.userAgent != "" {
		req.Header.Set("User-Agent", b.userAgent)
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatalf("read body: %v", err)
	}
	return response{Response: res, body: string(body)}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.ts.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) postForm(path string, form url.Values, headers ...string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

// login signs in and fails the test unless it succeeds.
func (b *browser) login(name, pw string) response {
	b.t.Helper()
	res := b.postForm("/login", url.Values{"username": {name}, "password": {pw}})
	if res.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login %s: status %d, want 303; body:\n%s", name, res.StatusCode, res.body)
	}
	return res
}

// sessionCookie is the session cookie the browser holds, or "".
func (b *browser) sessionCookie() string {
	u, _ := url.Parse(b.ts.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == session.SecureCookieName || c.Name == session.InsecureCookieName {
			return c.Value
		}
	}
	return ""
}

// setSessionCookie replaces the browser's session cookie, as a replay would.
func (b *browser) setSessionCookie(value string) {
	u, _ := url.Parse(b.ts.URL)
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: session.SecureCookieName, Value: value, Path: "/", Secure: true}})
}

// assertRedirect checks a 303 to a location starting with prefix.
func assertRedirect(t *testing.T, res response, prefix string) {
	t.Helper()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d, want 303 to %s; body:\n%.400s", res.StatusCode, prefix, res.body)
	}
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, prefix) {
		t.Fatalf("Location %q, want prefix %q", loc, prefix)
	}
}

// assertSignedIn checks that GET / shows the user's home page.
func assertSignedIn(t *testing.T, b *browser, name string) {
	t.Helper()
	res := b.get("/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / status %d, want 200 (signed in as %s); Location %q", res.StatusCode, name, res.Header.Get("Location"))
	}
	if got := res.text(t, "h1"); got != "Hello, "+name {
		t.Fatalf("home heading %q, want %q", got, "Hello, "+name)
	}
	if res.doc(t).Find(`header form[method=post][action="/logout"]`).Length() != 1 {
		t.Fatal("the signed-in page has no sign-out button in its header")
	}
}

// assertSignedOut checks that GET / sends the browser to the login page.
func assertSignedOut(t *testing.T, b *browser) response {
	t.Helper()
	res := b.get("/")
	assertRedirect(t, res, "/login?")
	return res
}

// testPages parses the embedded templates, for tests that build a Server by
// hand.
func testPages() (*pages, error) {
	tfs, err := web.Templates()
	if err != nil {
		return nil, err
	}
	return parsePages(tfs, time.Now)
}

// Browsers as devices, by their User-Agent.
const (
	firefoxLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	chromeMac    = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	safariPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)

// newDevice is a browser that presents itself with userAgent.
func (ts *testServer) newDevice(userAgent string) *browser {
	b := ts.newBrowser()
	b.userAgent = userAgent
	return b
}

// rememberFor is what the sign-in form offers under policies.
func rememberFor(p *session.Policies) time.Duration {
	if p == nil || len(p.RememberRoles) == 0 {
		return 0
	}
	return p.Remembered.Lifetime
}
