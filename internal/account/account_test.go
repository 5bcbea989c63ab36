package account_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/devicetrust"
	"github.com/hallpass/hallpass/internal/factor"
	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/secretbox"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
)

// testHashParams keep argon2id cheap in tests; the real parameters are
// covered by the password package.
var testHashParams = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// Session timeouts of every rig: a touch interval (and so a CheckSession)
// of one minute.
const (
	idleTimeout = 30 * time.Minute
	lifetime    = 12 * time.Hour
	// pastNextCheck is long enough for a session's next request to refresh
	// it, and so to run CheckSession.
	pastNextCheck = time.Minute + time.Second
)

// goodPassword is every seeded user's password.
const goodPassword = "correct horse battery"

// rigOptions are what a test may change about its rig.
type rigOptions struct {
	// loginPolicy replaces the default sign-in throttling policy.
	loginPolicy throttle.Policy
	// signupPolicy replaces the default sign-up throttling policy.
	signupPolicy throttle.Policy
	// throttle replaces the in-process attempt counters (with Redis ones,
	// say, to make them fail).
	throttle func(now func() time.Time) throttle.Store
	// requireMFA is the second-factor policy; "" means none.
	requireMFA account.MFAPolicy
}

// rig is one Hallpass process as the use cases see it: a SQLite user
// database and audit log, an in-process session store behind a session
// manager, real password hashing and throttling, all on one fake clock,
// and an HTTP server that runs use cases inside the manager's LoadAndSave.
type rig struct {
	t        *testing.T
	clock    *testkit.Clock
	db       *database.DB
	users    *user.SQLStore
	audit    *audit.SQLStore
	hasher   *password.Hasher
	throttle throttle.Store
	store    *session.MemoryStore
	sessions *session.Manager
	svc      *account.Service
	srv      *httptest.Server
	factors  *factor.SQLStore

	// calls holds the use cases waiting for their request, by call ID.
	calls    sync.Map
	lastCall atomic.Int64
	// beforeVerify, when set, runs at the start of every password check of
	// the service, so a test can act while a sign-in is in flight.
	beforeVerify atomic.Pointer[func()]
	// hashes counts the new passwords the service has hashed.
	hashes atomic.Int64
}

// hookedHasher is the real hasher with the rig's beforeVerify hook and hash
// count.
type hookedHasher struct {
	*password.Hasher
	rig *rig
}

func (h hookedHasher) Hash(ctx context.Context, plain string) (string, error) {
	h.rig.hashes.Add(1)
	return h.Hasher.Hash(ctx, plain)
}

func (h hookedHasher) Verify(ctx context.Context, plain, encoded string) (bool, bool, error) {
	if f := h.rig.beforeVerify.Load(); f != nil {
		(*f)()
	}
	return h.Hasher.Verify(ctx, plain, encoded)
}

// duringVerify makes f run at the start of every password check until the
// test ends.
func (r *rig) duringVerify(f func()) {
	r.beforeVerify.Store(&f)
	r.t.Cleanup(func() { r.beforeVerify.Store(nil) })
}

func newRig(t *testing.T, opts rigOptions) *rig {
	t.Helper()
	ctx := context.Background()
	db, err := database.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "hallpass.db"))
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := database.Migrate(ctx, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	clock := testkit.NewClock(time.Now().UTC().Truncate(time.Second))
	r := &rig{
		t:        t,
		clock:    clock,
		db:       db,
		users:    user.NewSQLStore(db, clock.Now),
		audit:    audit.NewSQLStore(db, clock.Now),
		hasher:   password.NewHasher(testHashParams, 4),
		throttle: throttle.NewMemoryStore(clock.Now),
		store:    session.NewMemoryStore(session.StoreOptions(idleTimeout, lifetime, clock.Now)),
	}
	if opts.throttle != nil {
		r.throttle = opts.throttle(clock.Now)
	}
	box, err := secretbox.New([][]byte{[]byte(rand.Text() + rand.Text())})
	if err != nil {
		t.Fatalf("secret box: %v", err)
	}
	r.factors = factor.NewSQLStore(db, box)
	// The manager and the service need each other: the manager asks the
	// service's CheckSession when it refreshes a session.
	r.sessions = session.NewManager(session.ManagerOptions{
		Store: r.store, IdleTimeout: idleTimeout, Lifetime: lifetime,
		ReplicaID: "test-replica", Now: clock.Now,
		CheckUser: func(ctx context.Context, userID int64, created time.Time) (session.EndReason, error) {
			return r.svc.CheckSession(ctx, userID, created)
		},
	})
	r.svc = account.New(account.Options{
		Users:        r.users,
		Sessions:     r.sessions,
		Hasher:       hookedHasher{Hasher: r.hasher, rig: r},
		Throttle:     r.throttle,
		Audit:        r.audit,
		Now:          clock.Now,
		Replica:      "test-replica",
		LoginPolicy:  opts.loginPolicy,
		SignupPolicy: opts.signupPolicy,
		DeviceTrust:  devicetrust.NewSigner([]byte(rand.Text())),
		Factors:      r.factors,
		Secrets:      box,
		RequireMFA:   opts.requireMFA,
		WebAuthn:     testWebAuthn(t),
	})
	onStoreError := func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
	r.srv = httptest.NewServer(r.sessions.LoadAndSave(onStoreError)(http.HandlerFunc(r.serveCall)))
	t.Cleanup(r.srv.Close)
	return r
}

// serveCall runs the use case the request's call ID names, with the
// request's context.
func (r *rig) serveCall(w http.ResponseWriter, req *http.Request) {
	use, ok := r.calls.LoadAndDelete(req.URL.Query().Get("call"))
	if !ok {
		http.Error(w, "no such call", http.StatusNotFound)
		return
	}
	use.(func(context.Context))(req.Context())
}

// commandLineWithoutRedis is the Service `hallpass` subcommands build when
// the sessions live inside the running server: the same database, a session
// store of its own that no browser uses, and SessionsOutOfReach.
func (r *rig) commandLineWithoutRedis() *account.Service {
	store := session.NewMemoryStore(session.StoreOptions(idleTimeout, lifetime, r.clock.Now))
	return account.New(account.Options{
		Users:              r.users,
		Sessions:           session.NewManager(session.ManagerOptions{Store: store, IdleTimeout: idleTimeout, Lifetime: lifetime, Now: r.clock.Now}),
		Hasher:             r.hasher,
		Throttle:           throttle.NewMemoryStore(r.clock.Now),
		Audit:              r.audit,
		Now:                r.clock.Now,
		Replica:            "cli",
		SessionsOutOfReach: true,
	})
}

// createUser adds a user straight to the database, with goodPassword.
func (r *rig) createUser(name string, role user.Role) user.User {
	r.t.Helper()
	hash, err := r.hasher.Hash(context.Background(), goodPassword)
	if err != nil {
		r.t.Fatalf("hash: %v", err)
	}
	u, err := r.users.Create(context.Background(), user.NewUser{Username: name, PasswordHash: hash, Role: role})
	if err != nil {
		r.t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

// user reads a user back from the database.
func (r *rig) user(id int64) user.User {
	r.t.Helper()
	u, err := r.users.ByID(context.Background(), id)
	if err != nil {
		r.t.Fatalf("user %d: %v", id, err)
	}
	return u
}

// liveSessions lists the public IDs of userID's live sessions.
func (r *rig) liveSessions(userID int64) []string {
	r.t.Helper()
	recs, err := r.sessions.ListUser(context.Background(), userID)
	if err != nil {
		r.t.Fatalf("list sessions of user %d: %v", userID, err)
	}
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = rec.PublicID
	}
	slices.Sort(ids)
	return ids
}

// auditTrail returns every audit event, newest first.
func (r *rig) auditTrail() []audit.Event {
	r.t.Helper()
	events, err := r.audit.List(context.Background(), audit.ListOptions{})
	if err != nil {
		r.t.Fatalf("list audit events: %v", err)
	}
	return events
}

// lastEvent returns the newest audit event with the given action.
func (r *rig) lastEvent(action audit.Action) audit.Event {
	r.t.Helper()
	for _, ev := range r.auditTrail() {
		if ev.Action == action {
			return ev
		}
	}
	r.t.Fatalf("no %s event in the audit trail", action)
	return audit.Event{}
}

// endReason is the reason the session store records for the session stored
// under key, "" while it is live.
func (r *rig) endReason(key string) session.EndReason {
	r.t.Helper()
	reason, err := r.store.EndReason(context.Background(), key)
	if err != nil {
		r.t.Fatalf("end reason: %v", err)
	}
	return reason
}

// browser is one client with its own cookie jar, at its own address.
type browser struct {
	t      *testing.T
	rig    *rig
	client *http.Client
	ip     string
	// deviceToken is the device token the last sign-in gave this browser,
	// as the device cookie keeps it.
	deviceToken string
}

func (r *rig) newBrowser(ip string) *browser {
	r.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		r.t.Fatalf("cookie jar: %v", err)
	}
	return &browser{t: r.t, rig: r, client: &http.Client{Jar: jar, Timeout: 10 * time.Second}, ip: ip}
}

// do runs use with the context of one request of b, inside the session
// manager's LoadAndSave, and returns once the response is complete, so
// whatever use did to the session is saved. It may be called from several
// goroutines at once.
func (b *browser) do(use func(ctx context.Context)) {
	b.t.Helper()
	id := strconv.FormatInt(b.rig.lastCall.Add(1), 10)
	ran := make(chan struct{})
	b.rig.calls.Store(id, func(ctx context.Context) {
		defer close(ran)
		use(ctx)
	})
	res, err := b.client.Get(b.rig.srv.URL + "/?call=" + id)
	if err != nil {
		b.rig.calls.Delete(id)
		b.t.Errorf("request: %v", err)
		return
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b.t.Errorf("request: %s %s", res.Status, body)
		return
	}
	<-ran
}

// visitor is the actor of b before anyone signs in on it.
func (b *browser) visitor() account.Actor {
	return account.Actor{IP: b.ip, Device: "Test browser", DeviceToken: b.deviceToken}
}

// as is the actor of u signed in on b.
func (b *browser) as(u user.User) account.Actor {
	return account.Actor{UserID: u.ID, Username: u.Username, Role: u.Role, IP: b.ip, Device: "Test browser", DeviceToken: b.deviceToken}
}

// signIn signs in on b.
func (b *browser) signIn(username, plain string) (user.User, error) {
	b.t.Helper()
	var (
		u   user.User
		err error
	)
	b.do(func(ctx context.Context) {
		var done account.SignedIn
		done, err = b.rig.svc.SignIn(ctx, b.visitor(), username, plain, account.SignInOptions{})
		u = done.User
		if done.DeviceToken != "" {
			b.deviceToken = done.DeviceToken
		}
	})
	return u, err
}

// mustSignIn signs u in on b with goodPassword and returns the store key of
// the new session.
func (b *browser) mustSignIn(u user.User) string {
	b.t.Helper()
	if _, err := b.signIn(u.Username, goodPassword); err != nil {
		b.t.Fatalf("%s signs in: %v", u.Username, err)
	}
	return b.storeKey()
}

// storeKey is the store key of b's session cookie.
func (b *browser) storeKey() string {
	b.t.Helper()
	srvURL, err := url.Parse(b.rig.srv.URL)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range b.client.Jar.Cookies(srvURL) {
		if c.Name == b.rig.sessions.CookieName() {
			return session.StoreKey(c.Value)
		}
	}
	b.t.Fatal("the browser has no session cookie")
	return ""
}

// whoami makes one request and reports who it is signed in as, if anyone,
// and why the session the browser presented ended, if it did.
func (b *browser) whoami() (info session.Info, signedIn bool, ended session.EndReason) {
	b.t.Helper()
	b.do(func(ctx context.Context) {
		info, signedIn = b.rig.sessions.Current(ctx)
		ended = b.rig.sessions.Ended(ctx)
	})
	return info, signedIn, ended
}

// Scenario 1 ---------------------------------------------------------------

// snapshot is what a refused admin use case must leave as it was.
type snapshot struct {
	targetSessions []string
	auditEvents    int
	target         user.User
	users          int
}

func (r *rig) snapshot(targetID int64) snapshot {
	r.t.Helper()
	n, err := r.users.Count(context.Background())
	if err != nil {
		r.t.Fatalf("count users: %v", err)
	}
	return snapshot{
		targetSessions: r.liveSessions(targetID),
		auditEvents:    len(r.auditTrail()),
		target:         r.user(targetID),
		users:          n,
	}
}

func TestPlainUserIsRefusedEveryAdminUseCase(t *testing.T) {
	r := newRig(t, rigOptions{})
	mallory := r.createUser("mallory", user.RoleUser)
	bob := r.createUser("bob", user.RoleUser)
	malloryBrowser := r.newBrowser("198.51.100.7")
	malloryBrowser.mustSignIn(mallory)
	r.newBrowser("203.0.113.10").mustSignIn(bob)
	bobSession := r.liveSessions(bob.ID)[0]
	svc := r.svc
	before := r.snapshot(bob.ID)

	cases := []struct {
		name string
		call func(ctx context.Context, a account.Actor) error
	}{
		{"EndAllSessions of another user", func(ctx context.Context, a account.Actor) error {
			_, err := svc.EndAllSessions(ctx, a, bob.ID)
			return err
		}},
		{"EndAllSessions of oneself", func(ctx context.Context, a account.Actor) error {
			_, err := svc.EndAllSessions(ctx, a, mallory.ID)
			return err
		}},
		{"SetDisabled", func(ctx context.Context, a account.Actor) error {
			_, _, err := svc.SetDisabled(ctx, a, bob.ID, true)
			return err
		}},
		{"EndUserSession", func(ctx context.Context, a account.Actor) error {
			_, err := svc.EndUserSession(ctx, a, bobSession)
			return err
		}},
		{"SetPassword", func(ctx context.Context, a account.Actor) error {
			_, err := svc.SetPassword(ctx, a, bob.ID, "mallory was here")
			return err
		}},
		{"CreateUser", func(ctx context.Context, a account.Actor) error {
			_, err := svc.CreateUser(ctx, a, "mallorys-admin", "mallory was here", user.RoleAdmin)
			return err
		}},
		{"Users", func(ctx context.Context, a account.Actor) error {
			_, err := svc.Users(ctx, a, user.ListOptions{})
			return err
		}},
		{"ListUsers", func(ctx context.Context, a account.Actor) error {
			_, err := svc.ListUsers(ctx, a, user.ListOptions{})
			return err
		}},
		{"Overview", func(ctx context.Context, a account.Actor) error {
			_, err := svc.Overview(ctx, a, 10, 10)
			return err
		}},
		{"UserDetail", func(ctx context.Context, a account.Actor) error {
			_, err := svc.UserDetail(ctx, a, bob.ID, 10)
			return err
		}},
		{"AuditEvents", func(ctx context.Context, a account.Actor) error {
			_, _, err := svc.AuditEvents(ctx, a, 0, 10)
			return err
		}},
		{"User", func(ctx context.Context, a account.Actor) error {
			_, err := svc.User(ctx, a, bob.ID)
			return err
		}},
		{"UserByName", func(ctx context.Context, a account.Actor) error {
			_, err := svc.UserByName(ctx, a, "bob")
			return err
		}},
		{"UserSessions", func(ctx context.Context, a account.Actor) error {
			_, err := svc.UserSessions(ctx, a, bob.ID)
			return err
		}},
		{"RecentSessions", func(ctx context.Context, a account.Actor) error {
			_, err := svc.RecentSessions(ctx, a, 0, 10)
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			malloryBrowser.do(func(ctx context.Context) { err = tc.call(ctx, malloryBrowser.as(mallory)) })
			if !errors.Is(err, account.ErrForbidden) {
				t.Fatalf("got %v, want ErrForbidden", err)
			}
			after := r.snapshot(bob.ID)
			if !slices.Equal(after.targetSessions, before.targetSessions) {
				t.Errorf("bob's sessions went from %v to %v", before.targetSessions, after.targetSessions)
			}
			if after.auditEvents != before.auditEvents {
				t.Errorf("the audit trail went from %d to %d events", before.auditEvents, after.auditEvents)
			}
			if after.users != before.users {
				t.Errorf("the user count went from %d to %d", before.users, after.users)
			}
			if a, b := after.target, before.target; a.Disabled != b.Disabled || a.PasswordHash != b.PasswordHash ||
				!a.SessionsValidAfter.Equal(b.SessionsValidAfter) || !a.UpdatedAt.Equal(b.UpdatedAt) {
				t.Errorf("bob's account changed: %+v, was %+v", a, b)
			}
		})
	}
	if _, signedIn, _ := malloryBrowser.whoami(); !signedIn {
		t.Error("mallory's own session ended after EndAllSessions of herself was refused")
	}
}

// Scenario 2 ---------------------------------------------------------------

func TestAdministratorCannotDisableTheirOwnAccount(t *testing.T) {
	r := newRig(t, rigOptions{})
	root := r.createUser("root", user.RoleAdmin)
	rootBrowser := r.newBrowser("203.0.113.1")
	rootBrowser.mustSignIn(root)

	var err error
	rootBrowser.do(func(ctx context.Context) { _, _, err = r.svc.SetDisabled(ctx, rootBrowser.as(root), root.ID, true) })
	if !errors.Is(err, account.ErrOwnAccount) {
		t.Fatalf("root disables root: %v, want ErrOwnAccount", err)
	}
	if r.user(root.ID).Disabled {
		t.Error("root's account is disabled")
	}
	if _, signedIn, ended := rootBrowser.whoami(); !signedIn {
		t.Errorf("root was signed out (%q)", ended)
	}
	for _, ev := range r.auditTrail() {
		if ev.Action == audit.UserDisabled {
			t.Errorf("audit trail records a disable that did not happen: %+v", ev)
		}
	}
}

func TestCommandLineCanDisableAnyAccount(t *testing.T) {
	r := newRig(t, rigOptions{})
	root := r.createUser("root", user.RoleAdmin)
	r.createUser("backup", user.RoleAdmin) // so root is not the last administrator
	rootBrowser := r.newBrowser("203.0.113.1")
	rootKey := rootBrowser.mustSignIn(root)

	u, ended, err := r.svc.SetDisabled(context.Background(), account.CommandLine(), root.ID, true)
	if err != nil {
		t.Fatalf("the command line disables root: %v", err)
	}
	if !u.Disabled || !r.user(root.ID).Disabled {
		t.Error("root's account is still enabled")
	}
	if ended.Sessions != 1 || ended.Deferred {
		t.Errorf("ended %+v, want root's one session ended at once", ended)
	}
	if reason := r.endReason(rootKey); reason != session.EndedDisabled {
		t.Errorf("root's session ended with %q, want %q", reason, session.EndedDisabled)
	}
	if _, err := r.newBrowser("203.0.113.1").signIn("root", goodPassword); !errors.Is(err, account.ErrDisabled) {
		t.Errorf("root signs in again: %v, want ErrDisabled", err)
	}
}

// Scenario 3 ---------------------------------------------------------------

func TestCommandLineWithoutRedisEndsSessionsAtTheirNextRefresh(t *testing.T) {
	cases := []struct {
		name   string
		act    func(cli *account.Service, userID int64) (account.Ended, error)
		reason session.EndReason
	}{
		{"sign out everywhere", func(cli *account.Service, userID int64) (account.Ended, error) {
			return cli.EndAllSessions(context.Background(), account.CommandLine(), userID)
		}, session.EndedRevoked},
		{"set password", func(cli *account.Service, userID int64) (account.Ended, error) {
			return cli.SetPassword(context.Background(), account.CommandLine(), userID, "a brand new password")
		}, session.EndedRevoked},
		{"disable", func(cli *account.Service, userID int64) (account.Ended, error) {
			_, ended, err := cli.SetDisabled(context.Background(), account.CommandLine(), userID, true)
			return ended, err
		}, session.EndedDisabled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			bob := r.createUser("bob", user.RoleUser)
			laptop := r.newBrowser("203.0.113.10")
			laptop.mustSignIn(bob)
			info, _, _ := laptop.whoami()
			r.clock.Advance(time.Second)

			ended, err := tc.act(r.commandLineWithoutRedis(), bob.ID)
			if err != nil {
				t.Fatalf("command line: %v", err)
			}
			if ended != (account.Ended{Deferred: true}) {
				t.Errorf("ended %+v, want Ended{Deferred: true}", ended)
			}
			if got := r.user(bob.ID).SessionsValidAfter; !got.Equal(r.clock.Now()) {
				t.Errorf("bob's sessions valid after %v, want now (%v)", got, r.clock.Now())
			}
			if n := len(r.liveSessions(bob.ID)); n != 1 {
				t.Errorf("the server's store has %d sessions of bob right away, want his 1 untouched", n)
			}

			reason, err := r.svc.CheckSession(context.Background(), bob.ID, info.Created)
			if err != nil || reason != tc.reason {
				t.Errorf("CheckSession of the laptop's session: %q, %v; want %q", reason, err, tc.reason)
			}
			r.clock.Advance(pastNextCheck)
			if _, signedIn, got := laptop.whoami(); signedIn || got != tc.reason {
				t.Errorf("the laptop's next request: signed in %t, ended %q; want signed out, %q", signedIn, got, tc.reason)
			}
		})
	}
}

func TestCheckSessionKeepsSessionsFromAfterTheRevocation(t *testing.T) {
	r := newRig(t, rigOptions{})
	bob := r.createUser("bob", user.RoleUser)
	revokedAt := r.clock.Now()
	if _, err := r.commandLineWithoutRedis().EndAllSessions(context.Background(), account.CommandLine(), bob.ID); err != nil {
		t.Fatalf("end all sessions: %v", err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		created time.Time
		want    session.EndReason
	}{
		{revokedAt.Add(-time.Millisecond), session.EndedRevoked},
		{revokedAt, ""},
		{revokedAt.Add(time.Minute), ""},
	} {
		if got, err := r.svc.CheckSession(ctx, bob.ID, tc.created); err != nil || got != tc.want {
			t.Errorf("session created %v after the revocation: %q, %v; want %q", tc.created.Sub(revokedAt), got, err, tc.want)
		}
	}
	if got, err := r.svc.CheckSession(ctx, bob.ID+100, revokedAt); err != nil || got != session.EndedDisabled {
		t.Errorf("session of a deleted user: %q, %v; want %q", got, err, session.EndedDisabled)
	}
}

func TestCommandLineWithoutRedisCannotSeeSingleSessions(t *testing.T) {
	r := newRig(t, rigOptions{})
	bob := r.createUser("bob", user.RoleUser)
	r.newBrowser("203.0.113.10").mustSignIn(bob)
	publicID := r.liveSessions(bob.ID)[0]
	cli := r.commandLineWithoutRedis()
	ctx := context.Background()

	if _, err := cli.EndUserSession(ctx, account.CommandLine(), publicID); !errors.Is(err, account.ErrSessionsOutOfReach) {
		t.Errorf("EndUserSession: %v, want ErrSessionsOutOfReach", err)
	}
	if _, err := cli.UserSessions(ctx, account.CommandLine(), bob.ID); !errors.Is(err, account.ErrSessionsOutOfReach) {
		t.Errorf("UserSessions: %v, want ErrSessionsOutOfReach", err)
	}
	if _, err := cli.RecentSessions(ctx, account.CommandLine(), 0, 10); !errors.Is(err, account.ErrSessionsOutOfReach) {
		t.Errorf("RecentSessions: %v, want ErrSessionsOutOfReach", err)
	}
	if got := r.liveSessions(bob.ID); !slices.Equal(got, []string{publicID}) {
		t.Errorf("bob's sessions are %v, want %v untouched", got, []string{publicID})
	}
}

// Scenario 4 ---------------------------------------------------------------

// trace is what an action on a signed-in user leaves behind.
type trace struct {
	event      audit.Event
	reasons    []session.EndReason // of the user's two sessions, in the store
	seen       session.EndReason   // what the user's next request learns
	live       int                 // sessions the manager still lists
	validAfter time.Time
	actedAt    time.Time
	adminID    int64
}

// actOnSignedInUser seeds a fresh rig with the administrator "root" and the
// user "bob" signed in on two devices, lets act end bob's sessions — from
// the command line, or from root's signed-in browser — and returns what it
// left.
func actOnSignedInUser(t *testing.T, fromCommandLine bool, action audit.Action,
	act func(ctx context.Context, svc *account.Service, a account.Actor, userID int64) error) trace {
	t.Helper()
	r := newRig(t, rigOptions{})
	root := r.createUser("root", user.RoleAdmin)
	bob := r.createUser("bob", user.RoleUser)
	laptop, phone := r.newBrowser("203.0.113.10"), r.newBrowser("203.0.113.11")
	keys := []string{laptop.mustSignIn(bob), phone.mustSignIn(bob)}
	r.clock.Advance(time.Second)

	if fromCommandLine {
		if err := act(context.Background(), r.svc, account.CommandLine(), bob.ID); err != nil {
			t.Fatalf("from the command line: %v", err)
		}
	} else {
		rootBrowser := r.newBrowser("203.0.113.1")
		rootBrowser.mustSignIn(root)
		var err error
		rootBrowser.do(func(ctx context.Context) { err = act(ctx, r.svc, rootBrowser.as(root), bob.ID) })
		if err != nil {
			t.Fatalf("from the admin pages: %v", err)
		}
	}
	tr := trace{
		event:      r.lastEvent(action),
		live:       len(r.liveSessions(bob.ID)),
		validAfter: r.user(bob.ID).SessionsValidAfter,
		actedAt:    r.clock.Now(),
		adminID:    root.ID,
	}
	for _, k := range keys {
		tr.reasons = append(tr.reasons, r.endReason(k))
	}
	_, _, tr.seen = laptop.whoami()
	return tr
}

func TestCommandLineAndAdministratorLeaveTheSameTraceAndEffect(t *testing.T) {
	cases := []struct {
		name   string
		action audit.Action
		reason session.EndReason
		act    func(ctx context.Context, svc *account.Service, a account.Actor, userID int64) error
	}{
		{"sign out everywhere", audit.SessionsRevokedAll, session.EndedByAdmin,
			func(ctx context.Context, svc *account.Service, a account.Actor, userID int64) error {
				_, err := svc.EndAllSessions(ctx, a, userID)
				return err
			}},
		{"disable", audit.UserDisabled, session.EndedDisabled,
			func(ctx context.Context, svc *account.Service, a account.Actor, userID int64) error {
				_, _, err := svc.SetDisabled(ctx, a, userID, true)
				return err
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cli := actOnSignedInUser(t, true, tc.action, tc.act)
			admin := actOnSignedInUser(t, false, tc.action, tc.act)

			c, a := cli.event, admin.event
			if c.Action != a.Action || c.TargetUserID != a.TargetUserID || c.TargetName != a.TargetName || c.Detail != a.Detail {
				t.Errorf("audit records differ:\n command line %+v\n admin        %+v", c, a)
			}
			if c.TargetName != "bob" {
				t.Errorf("audit record names %q, want bob", c.TargetName)
			}
			if c.ActorName != "cli" || c.ActorID != 0 {
				t.Errorf("command line's record has actor %d %q, want 0 \"cli\"", c.ActorID, c.ActorName)
			}
			if a.ActorName != "root" || a.ActorID != admin.adminID {
				t.Errorf("admin's record has actor %d %q, want %d \"root\"", a.ActorID, a.ActorName, admin.adminID)
			}
			for who, tr := range map[string]trace{"command line": cli, "admin": admin} {
				want := []session.EndReason{tc.reason, tc.reason}
				if !slices.Equal(tr.reasons, want) || tr.live != 0 || tr.seen != tc.reason {
					t.Errorf("%s: bob's sessions ended %v (%d still listed), his laptop was told %q; want %v, none listed, %q",
						who, tr.reasons, tr.live, tr.seen, want, tc.reason)
				}
				if !tr.validAfter.Equal(tr.actedAt) {
					t.Errorf("%s: bob's sessions valid after %v, want the time of the action %v", who, tr.validAfter, tr.actedAt)
				}
			}
		})
	}
}

// Scenario 5 ---------------------------------------------------------------

func TestClosedDatabaseIsUnavailableNotABug(t *testing.T) {
	r := newRig(t, rigOptions{})
	bob := r.createUser("bob", user.RoleUser)
	if err := r.db.Close(); err != nil {
		t.Fatalf("close database: %v", err)
	}
	svc, cli, ctx := r.svc, account.CommandLine(), context.Background()
	cases := map[string]func() error{
		"Users": func() error {
			_, err := svc.Users(ctx, cli, user.ListOptions{})
			return err
		},
		"ListUsers": func() error {
			_, err := svc.ListUsers(ctx, cli, user.ListOptions{})
			return err
		},
		"Overview": func() error {
			_, err := svc.Overview(ctx, cli, 10, 10)
			return err
		},
		"UserByName": func() error {
			_, err := svc.UserByName(ctx, cli, "bob")
			return err
		},
		"User": func() error {
			_, err := svc.User(ctx, cli, bob.ID)
			return err
		},
		"AuditEvents": func() error {
			_, _, err := svc.AuditEvents(ctx, cli, 0, 10)
			return err
		},
		"EndAllSessions": func() error {
			_, err := svc.EndAllSessions(ctx, cli, bob.ID)
			return err
		},
		"SetDisabled": func() error {
			_, _, err := svc.SetDisabled(ctx, cli, bob.ID, true)
			return err
		},
		"CreateUser": func() error {
			_, err := svc.CreateUser(ctx, cli, "carol", goodPassword, user.RoleUser)
			return err
		},
		"CheckSession": func() error {
			_, err := svc.CheckSession(ctx, bob.ID, r.clock.Now())
			return err
		},
	}
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		t.Run(name, func(t *testing.T) {
			err := cases[name]()
			var unavailable *account.UnavailableError
			if !errors.Is(err, account.ErrUnavailable) || !errors.As(err, &unavailable) {
				t.Fatalf("got %v, want ErrUnavailable", err)
			}
			if unavailable.Dependency != account.DepDatabase {
				t.Errorf("dependency %q, want %q", unavailable.Dependency, account.DepDatabase)
			}
		})
	}
}

func TestMalformedStoredHashIsABugNotAnOutage(t *testing.T) {
	r := newRig(t, rigOptions{})
	bob := r.createUser("bob", user.RoleUser)
	if err := r.users.SetPasswordHash(context.Background(), bob.ID, "not-a-phc-string"); err != nil {
		t.Fatalf("set password hash: %v", err)
	}
	laptop := r.newBrowser("203.0.113.10")
	_, err := laptop.signIn("bob", goodPassword)
	switch {
	case err == nil:
		t.Fatal("bob signed in against a malformed hash")
	case errors.Is(err, account.ErrUnavailable):
		t.Errorf("got %v: classified as an outage (503), want a bug (500)", err)
	case errors.Is(err, account.ErrBadCredentials):
		t.Errorf("got %v: classified as a wrong password, want a bug (500)", err)
	case !errors.Is(err, password.ErrMalformedHash):
		t.Errorf("got %v, want the hasher's ErrMalformedHash as it is", err)
	}
	if _, signedIn, _ := laptop.whoami(); signedIn {
		t.Error("the browser is signed in")
	}
}

// Scenario 6 ---------------------------------------------------------------

// strictLogin is a small sign-in policy: three free failures, then a wait.
var strictLogin = throttle.Policy{Limit: 3, Window: time.Minute, BaseDelay: 30 * time.Second, MaxDelay: time.Minute}

// guessInParallel sends n wrong-password sign-ins for username at once,
// each from its own browser and address, and returns their errors.
func guessInParallel(r *rig, username string, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		// Each from an address of its own, as from a botnet: one address
		// gets only its share of the hashing slots.
		attacker := r.newBrowser(fmt.Sprintf("198.51.100.%d", i+1))
		wg.Go(func() { _, errs[i] = attacker.signIn(username, fmt.Sprintf("guess number %d", i)) })
	}
	wg.Wait()
	return errs
}

func TestParallelPasswordGuessesThrottleTheAccount(t *testing.T) {
	r := newRig(t, rigOptions{loginPolicy: strictLogin})
	r.createUser("alice", user.RoleUser)

	checked := 0
	for i, err := range guessInParallel(r, "alice", 20) {
		switch {
		case errors.Is(err, account.ErrBadCredentials):
			checked++
		case errors.Is(err, account.ErrThrottled):
		default:
			t.Errorf("guess %d: %v, want ErrBadCredentials or ErrThrottled", i, err)
		}
	}
	t.Logf("%d of 20 parallel guesses were checked against the password (policy limit %d)", checked, strictLogin.Limit)

	alice := r.newBrowser("203.0.113.10")
	_, err := alice.signIn("alice", goodPassword)
	var throttled *account.ThrottledError
	if !errors.As(err, &throttled) || !errors.Is(err, account.ErrThrottled) {
		t.Fatalf("alice with the right password after 20 guesses: %v, want ErrThrottled", err)
	}
	if throttled.Wait <= 0 || throttled.Wait > strictLogin.MaxDelay {
		t.Errorf("wait %v, want above 0 and at most %v", throttled.Wait, strictLogin.MaxDelay)
	}
	if _, signedIn, _ := alice.whoami(); signedIn {
		t.Error("alice is signed in while throttled")
	}

	r.clock.Advance(throttled.Wait)
	if _, err := alice.signIn("alice", goodPassword); err != nil {
		t.Errorf("alice once the wait is over: %v, want signed in", err)
	}
}

func TestUnknownUserAndWrongPasswordGetTheSameAnswer(t *testing.T) {
	r := newRig(t, rigOptions{loginPolicy: strictLogin})
	r.createUser("alice", user.RoleUser)

	_, wrongPassword := r.newBrowser("203.0.113.10").signIn("alice", "not alices password")
	_, unknownUser := r.newBrowser("203.0.113.11").signIn("nobody", "not alices password")
	if !errors.Is(wrongPassword, account.ErrBadCredentials) || !errors.Is(unknownUser, account.ErrBadCredentials) {
		t.Fatalf("wrong password: %v; unknown user: %v; want ErrBadCredentials for both", wrongPassword, unknownUser)
	}
	if wrongPassword.Error() != unknownUser.Error() {
		t.Errorf("the answers differ: %q and %q", wrongPassword, unknownUser)
	}

	// Both are counted alike: past the limit, both are throttled.
	for i, name := range []string{"alice", "nobody"} {
		b := r.newBrowser("192.0.2." + strconv.Itoa(i+1))
		var err error
		for range strictLogin.Limit + 1 {
			_, err = b.signIn(name, "still wrong")
		}
		if _, err = b.signIn(name, "still wrong"); !errors.Is(err, account.ErrThrottled) {
			t.Errorf("%s after %d failures: %v, want ErrThrottled", name, strictLogin.Limit+2, err)
		}
	}
}

// Scenario 7 ---------------------------------------------------------------

// fieldsOf returns the fields a ValidationError names, sorted.
func fieldsOf(t *testing.T, err error) []account.Field {
	t.Helper()
	var invalid *account.ValidationError
	if !errors.As(err, &invalid) || !errors.Is(err, account.ErrInvalid) {
		t.Fatalf("got %v, want a ValidationError", err)
	}
	for f, msg := range invalid.Fields {
		if msg == "" {
			t.Errorf("field %s has no message", f)
		}
	}
	return slices.Sorted(maps.Keys(invalid.Fields))
}

func TestSignUpRefusesBadInputByField(t *testing.T) {
	cases := []struct {
		name                        string
		username, password, confirm string
		want                        []account.Field
	}{
		{"short password", "carol", "short", "short", []account.Field{account.FieldPassword}},
		{"mismatched confirmation", "carol", "rosemary tin lantern", "rosemary tin lant3rn", []account.Field{account.FieldConfirmPassword}},
		{"username too short", "ca", "rosemary tin lantern", "rosemary tin lantern", []account.Field{account.FieldUsername}},
		{"username with a space", "carol smith", "rosemary tin lantern", "rosemary tin lantern", []account.Field{account.FieldUsername}},
		{"username starting with a dash", "-carol", "rosemary tin lantern", "rosemary tin lantern", []account.Field{account.FieldUsername}},
		{"bad username and short password", "c@rol", "short", "short", []account.Field{account.FieldPassword, account.FieldUsername}},
		{"taken username", "alice", "rosemary tin lantern", "rosemary tin lantern", []account.Field{account.FieldUsername}},
		{"taken username in other case", "ALICE", "rosemary tin lantern", "rosemary tin lantern", []account.Field{account.FieldUsername}},
	}
	r := newRig(t, rigOptions{})
	r.createUser("alice", user.RoleUser)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Each case from its own address, clear of the sign-up policy.
			b := r.newBrowser("192.0.2." + strconv.Itoa(i+1))
			var err error
			b.do(func(ctx context.Context) {
				_, err = r.svc.SignUp(ctx, b.visitor(), tc.username, tc.password, tc.confirm)
			})
			if got := fieldsOf(t, err); !slices.Equal(got, tc.want) {
				t.Errorf("fields %v, want %v", got, tc.want)
			}
			if _, signedIn, _ := b.whoami(); signedIn {
				t.Error("the visitor is signed in")
			}
		})
	}
	if n, _ := r.users.Count(context.Background()); n != 1 {
		t.Errorf("%d users, want alice alone", n)
	}
}

func TestSignUpSignsTheNewUserIn(t *testing.T) {
	r := newRig(t, rigOptions{})
	b := r.newBrowser("192.0.2.1")
	var (
		u   user.User
		err error
	)
	b.do(func(ctx context.Context) {
		u, err = r.svc.SignUp(ctx, b.visitor(), "  carol  ", "rosemary tin lantern", "rosemary tin lantern")
	})
	if err != nil {
		t.Fatalf("sign up: %v", err)
	}
	if u.Username != "carol" || u.Role != user.RoleUser {
		t.Errorf("signed up %q as %q, want carol as a user", u.Username, u.Role)
	}
	if info, signedIn, _ := b.whoami(); !signedIn || info.UserID != u.ID {
		t.Errorf("signed in %t as %d, want carol (%d)", signedIn, info.UserID, u.ID)
	}
}

func TestSignUpAttemptsAreCountedSuccessfulOrNot(t *testing.T) {
	// SignUp's contract: "Sign-ups are counted per client address,
	// successful or not". A visitor probing which usernames exist gets a
	// "taken" answer each time; past the policy they must wait.
	policy := throttle.Policy{Limit: 3, Window: time.Hour, BaseDelay: time.Minute, MaxDelay: time.Hour}
	r := newRig(t, rigOptions{signupPolicy: policy})
	r.createUser("alice", user.RoleUser)
	prober := r.newBrowser("198.51.100.66")
	var err error
	for range policy.Limit + 2 {
		prober.do(func(ctx context.Context) {
			_, err = r.svc.SignUp(ctx, prober.visitor(), "alice", "probe password", "probe password")
		})
	}
	if !errors.Is(err, account.ErrThrottled) {
		t.Errorf("sign-up attempt %d from one address: %v, want ErrThrottled", policy.Limit+2, err)
	}
}

func TestCreateUserRefusesBadInputByField(t *testing.T) {
	cases := []struct {
		name               string
		username, password string
		want               []account.Field
	}{
		{"short password", "carol", "short", []account.Field{account.FieldPassword}},
		{"password over 256 bytes", "carol", string(make([]byte, 257)), []account.Field{account.FieldPassword}},
		{"username too long", string(slices.Repeat([]byte("c"), 65)), "rosemary tin lantern", []account.Field{account.FieldUsername}},
		{"username with a slash", "carol/admin", "rosemary tin lantern", []account.Field{account.FieldUsername}},
		{"bad username and short password", "_carol", "short", []account.Field{account.FieldPassword, account.FieldUsername}},
		{"taken username", "alice", "rosemary tin lantern", []account.Field{account.FieldUsername}},
		{"taken username in other case", "Alice", "rosemary tin lantern", []account.Field{account.FieldUsername}},
	}
	r := newRig(t, rigOptions{})
	r.createUser("alice", user.RoleUser)
	before := len(r.auditTrail())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.svc.CreateUser(context.Background(), account.CommandLine(), tc.username, tc.password, user.RoleUser)
			if got := fieldsOf(t, err); !slices.Equal(got, tc.want) {
				t.Errorf("fields %v, want %v", got, tc.want)
			}
		})
	}
	if n, _ := r.users.Count(context.Background()); n != 1 {
		t.Errorf("%d users, want alice alone", n)
	}
	if after := len(r.auditTrail()); after != before {
		t.Errorf("refused creations left %d audit events", after-before)
	}
}

func TestCreateUserRecordsWhoCreatedWhom(t *testing.T) {
	r := newRig(t, rigOptions{})
	u, err := r.svc.CreateUser(context.Background(), account.CommandLine(), "carol", "rosemary tin lantern", user.RoleAdmin)
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	if got := r.user(u.ID); got.Username != "carol" || got.Role != user.RoleAdmin {
		t.Errorf("stored %q as %q, want carol as admin", got.Username, got.Role)
	}
	ev := r.lastEvent(audit.UserCreated)
	if ev.ActorName != "cli" || ev.TargetUserID != u.ID || ev.TargetName != "carol" || ev.Detail != "role admin" {
		t.Errorf("audit record %+v", ev)
	}
	if _, err := r.newBrowser("192.0.2.1").signIn("carol", "rosemary tin lantern"); err != nil {
		t.Errorf("carol signs in: %v", err)
	}
}

// The durable record and the session that survives it ----------------------

func TestTheDeviceThatEndsItsOtherSessionsStaysSignedInPastTheNextCheck(t *testing.T) {
	// The session manager keeps a session's creation time in whole
	// milliseconds; the user database keeps sessions-valid-after in
	// microseconds. Real clocks are rarely on a millisecond boundary.
	for _, offset := range []time.Duration{0, 500 * time.Microsecond} {
		for _, tc := range []struct {
			name string
			role user.Role
			act  func(ctx context.Context, svc *account.Service, a account.Actor) error
		}{
			{"password change", user.RoleUser, func(ctx context.Context, svc *account.Service, a account.Actor) error {
				return svc.ChangePassword(ctx, a, goodPassword, "a brand new password", "a brand new password")
			}},
			{"administrator signs themself out everywhere", user.RoleAdmin, func(ctx context.Context, svc *account.Service, a account.Actor) error {
				_, err := svc.EndAllSessions(ctx, a, a.UserID)
				return err
			}},
		} {
			t.Run(fmt.Sprintf("%s at %v past the second", tc.name, offset), func(t *testing.T) {
				r := newRig(t, rigOptions{})
				bob := r.createUser("bob", tc.role)
				laptop, phone := r.newBrowser("203.0.113.10"), r.newBrowser("203.0.113.11")
				laptop.mustSignIn(bob)
				phoneKey := phone.mustSignIn(bob)
				r.clock.Advance(time.Second + offset)

				var err error
				laptop.do(func(ctx context.Context) { err = tc.act(ctx, r.svc, laptop.as(bob)) })
				if err != nil {
					t.Fatalf("on the laptop: %v", err)
				}
				if reason := r.endReason(phoneKey); reason == "" {
					t.Error("the phone's session is still live")
				}
				r.clock.Advance(pastNextCheck)
				if _, signedIn, ended := laptop.whoami(); !signedIn {
					t.Errorf("the laptop was signed out (%q) at its next check", ended)
				}
			})
		}
	}
}
