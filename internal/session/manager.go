package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/alexedwards/scs/v2"
)

// Cookie names. The __Host- prefix makes browsers refuse the cookie unless it
// is Secure, has Path=/ and no Domain, so no subdomain or plain-http page can
// plant or overwrite it. Browsers also refuse the prefix on an insecure
// cookie, hence the plain name for plain-http rigs.
const (
	SecureCookieName   = "__Host-hallpass"
	InsecureCookieName = "hallpass"
)

// Session value keys. Values are plain int64 and string so the gob codec
// needs no type registration.
const (
	keyUserID   = "hp.uid"
	keyUsername = "hp.user"
	keyRole     = "hp.role"
	keyCreated  = "hp.created" // Unix milliseconds of the sign-in.
	keySeen     = "hp.seen"    // Unix milliseconds of the last refreshed activity.
	keyReplica  = "hp.replica" // Replica that created the session.
	keyIP       = "hp.ip"      // Client IP at sign-in.
	keyDevice   = "hp.device"  // Readable device label at sign-in.
	// keyRemember is 1 in a session whose user asked to stay signed in
	// ("keep me signed in") and whose role allows it; absent otherwise.
	keyRemember = "hp.remember"
	// keyMethod is how the user proved who they are at sign-in
	// (Identity.Method). Sessions written before it existed lack it, and
	// keyReauth with it: they read as method "" and a last proof at
	// creation.
	keyMethod = "hp.method"
	// keyReauth is the Unix milliseconds of the last proof of sign-in:
	// the sign-in itself, then each MarkReauthenticated (sudo mode).
	keyReauth = "hp.reauth"
	// keyMustEnrol is 1 in a session that may do nothing but enrol a
	// second factor; absent otherwise.
	keyMustEnrol = "hp.enrol"
)

// EndReason says why a session the browser presented is no longer valid.
type EndReason string

// End reasons the manager decides itself; the login page explains each.
const (
	EndedIdle     EndReason = "idle"
	EndedLifetime EndReason = "lifetime"
	// EndedUnknown: the browser presented a session the store no longer
	// has (it expired long ago, or the store lost it).
	EndedUnknown EndReason = "expired"
	// EndedSignedOut is recorded by Delete, and by Create for the session
	// a new one replaces: the user signed out (or the token was renewed).
	EndedSignedOut EndReason = "signed-out"
	// EndedByAdmin: an administrator signed the session out.
	EndedByAdmin EndReason = "admin"
	// EndedFromOtherDevice: the user signed this session out from another.
	EndedFromOtherDevice EndReason = "other-device"
	// EndedTooMany: evicted to make room under the concurrent-session limit.
	EndedTooMany EndReason = "too-many-devices"
	// EndedPasswordChanged: the user's password changed.
	EndedPasswordChanged EndReason = "password-changed"
	// EndedDisabled: the user's account was disabled.
	EndedDisabled EndReason = "disabled"
	// EndedEveryone: an administrator signed every user out at once
	// (incident response).
	EndedEveryone EndReason = "everyone"
	// EndedRevoked: the database says the user's sessions from before a
	// point in time are void (the durable record of a revocation).
	EndedRevoked EndReason = "revoked"
)

// StoreOptions returns the store options that fit a Manager with the same
// idle timeout and lifetime. The store keeps a session one touch interval
// past its idle end, so the Manager still finds it and can tell the user it
// idled out instead of finding nothing.
func StoreOptions(idle, lifetime time.Duration, now func() time.Time) Options {
	return Options{IdleTimeout: idle + touchInterval(idle), Lifetime: lifetime, Now: now}
}

// Identity is who a session belongs to.
type Identity struct {
	UserID   int64
	Username string
	Role     string
	// AuthenticatedAt is read by Login only: when the user proved who they
	// are for the session it starts (see Origin for the rule and the
	// clocks). For a password sign-in it is when the sign-in began, before
	// the user was read and the password checked, so that a whole-user
	// revocation (disable, password change, sign out everywhere) landing
	// while the sign-in is in flight voids it. For a signed-in session
	// re-issuing its own token after such a revocation that kept it, it is
	// the moment of the re-issue, after the revocation. Zero means now: the
	// moment Login stores the session. Sessions do not store it, so Info
	// and Record leave it zero.
	AuthenticatedAt time.Time
	// Remember: for Login, the user asked to stay signed in ("keep me
	// signed in"); in Info and Record, the session is a remembered one
	// (its role allowed it), with the Remembered idle timeout and
	// lifetime.
	Remember bool
	// Method says how the user proved who they are for the session: a
	// short label the account layer chooses ("password", "passkey",
	// "password+totp", ...), read by Login and stored with the session.
	// Sessions stored before methods were recorded have "".
	Method string
	// MustEnrol: the session may do nothing but enrol a second factor
	// (policy requires one and the user had none at sign-in). Read by
	// Login; ClearMustEnrol lifts it.
	MustEnrol bool
}

// Info describes the signed-in session of the current request.
type Info struct {
	Identity
	Created  time.Time
	LastSeen time.Time
	// Replica is the replica that created the session.
	Replica string
	// IdleExpiry is when the session ends if no further request arrives.
	IdleExpiry time.Time
	// AbsoluteExpiry is when the session ends whatever the activity.
	AbsoluteExpiry time.Time
	// ReauthenticatedAt is the last time the user proved who they are in
	// this session: the sign-in (Created), or the latest
	// MarkReauthenticated. Sudo mode is granted relative to it.
	ReauthenticatedAt time.Time
}

// ManagerOptions configures a Manager.
type ManagerOptions struct {
	Store        Store
	IdleTimeout  time.Duration
	Lifetime     time.Duration
	CookieSecure bool
	// BrowserSessionCookie makes the session cookie a browser-session
	// cookie (no Expires or Max-Age), dropped when the browser closes: for
	// shared computers. Otherwise the cookie expires at the session's
	// absolute end, and never later than the server keeps the session.
	BrowserSessionCookie bool
	// ReplicaID is recorded in sessions this replica creates.
	ReplicaID string
	// Now is the clock that decides expiry; nil means time.Now.
	Now func() time.Time
	// Limit caps each user's concurrent sessions.
	Limit Limit
	// Policies, if set, chooses each session's idle timeout, lifetime and
	// limit by role and "keep me signed in", and IdleTimeout, Lifetime and
	// Limit are ignored; nil means they apply to every session.
	Policies *Policies
	// Logger receives what the Manager cannot answer with an error (a
	// last-seen refresh that was not saved); nil discards it.
	Logger *slog.Logger
	// CheckUser, if set, is asked whether a session of userID created at
	// created may go on; it runs when the last-seen time is refreshed (at
	// most once per touch interval), so it is off the hot path. It returns
	// a reason to end the session, or "".
	CheckUser func(ctx context.Context, userID int64, created time.Time) (EndReason, error)
}

// Client describes the browser a session is created for.
type Client struct {
	IP     string
	Device string
}

// Manager ties scs to Hallpass's session rules: scs owns the cookie, the
// token and load/save; the Manager decides who is signed in, enforces the
// idle timeout and absolute lifetime with its own clock, and refreshes the
// last-seen time at most once per touch interval.
//
// scs's own IdleTimeout is deliberately unused: it marks every loaded session
// modified, which costs a store write and a Set-Cookie on every request.
type Manager struct {
	scs       *scs.SessionManager
	store     Store
	limit     Limit
	checkUser func(ctx context.Context, userID int64, created time.Time) (EndReason, error)
	log       *slog.Logger
	now       func() time.Time
	policies  Policies
	replicaID string
}

// NewManager returns a Manager over the given store.
func NewManager(opts ManagerOptions) *Manager {
	sm := scs.New()
	// scs hands tokens to hashingStore, which turns each into its store key
	// before any store sees it; scs's own HashTokenInStore is off because
	// its 43-character keys cost more Redis memory than the 22 we need.
	sm.Store = hashingStore{opts.Store}
	sm.Codec = codec{}
	policies := Policies{Default: Policy{IdleTimeout: opts.IdleTimeout, Lifetime: opts.Lifetime, Limit: opts.Limit}}
	if opts.Policies != nil {
		policies = *opts.Policies
	}
	_, sm.Lifetime = policies.Longest() // Login sets each session's own deadline
	sm.Cookie.HttpOnly = true
	sm.Cookie.Path = "/"
	sm.Cookie.Domain = ""
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = opts.CookieSecure
	sm.Cookie.Name = InsecureCookieName
	if opts.CookieSecure {
		sm.Cookie.Name = SecureCookieName
	}
	// The server alone decides when the session ends; the cookie's expiry
	// (the session's absolute end) only lets the browser forget it in time.
	// Deployments on shared computers ask for a browser-session cookie,
	// which closing the browser drops.
	sm.Cookie.Persist = !opts.BrowserSessionCookie

	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Manager{
		scs:       sm,
		store:     opts.Store,
		checkUser: opts.CheckUser,
		log:       cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		now:       now,
		policies:  policies,
		replicaID: opts.ReplicaID,
	}
}

// touchInterval is how stale the last-seen time may get before a request
// refreshes it: a minute, or a quarter of a short idle timeout, so an active
// user is never signed out for idleness while reads stay write-free.
func touchInterval(idle time.Duration) time.Duration {
	if q := idle / 4; q < time.Minute {
		return q
	}
	return time.Minute
}

// CookieName is the name of the session cookie.
func (m *Manager) CookieName() string { return m.scs.Cookie.Name }

// requestState carries what the middleware learnt about the request's
// session to the handlers.
type requestState struct {
	ended EndReason
	// created is set once Login has stored a new session, whose cookie the
	// response must carry.
	created *createdSession
	// noSave is set when nothing this request did to the session may be
	// saved (a failed Login).
	noSave bool
	// touched is set when the refreshed last-seen time is due to be saved.
	touched bool
	// changed is set when the request changed what the session says
	// (MarkReauthenticated, ClearMustEnrol): unlike a refresh alone, its
	// save must succeed or the response must fail.
	changed bool
	// tag is the shard tag of the user Login signed in on this request:
	// the session's scs token does not carry it (scs made the token), and
	// its store key must (see keyOf).
	tag string
}

type createdSession struct {
	token  string
	expiry time.Time
}

type stateKey struct{}

// LoadAndSave returns middleware that loads the request's session, ends it if
// it has idled out or outlived its lifetime, refreshes its last-seen time
// when due, and saves any change before the first byte of the response is
// written. A store failure is answered by onStoreError, before the handler's
// response and without touching the cookie.
func (m *Manager) LoadAndSave(onStoreError func(w http.ResponseWriter, r *http.Request, err error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return m.loadAndSave(next, onStoreError)
	}
}

func (m *Manager) loadAndSave(next http.Handler, onStoreError func(w http.ResponseWriter, r *http.Request, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Cookie")
		token := ""
		if c, err := r.Cookie(m.scs.Cookie.Name); err == nil && wellFormedToken(c.Value) {
			token = c.Value
		}
		ctx, err := m.scs.Load(r.Context(), token)
		if err != nil {
			onStoreError(w, r, fmt.Errorf("load session: %w", err))
			return
		}
		st := &requestState{}
		if token != "" && m.scs.GetInt64(ctx, keyUserID) == 0 {
			st.ended = m.endReason(ctx, token)
		}
		if err := m.enforce(ctx, st); err != nil {
			onStoreError(w, r, err)
			return
		}
		r = r.WithContext(context.WithValue(ctx, stateKey{}, st))
		sw := &savingWriter{ResponseWriter: w, req: r, m: m, onError: onStoreError}
		next.ServeHTTP(sw, r)
		sw.save()
	})
}

// enforce ends a session past its idle timeout or lifetime and refreshes the
// last-seen time of a live one when it is due.
func (m *Manager) enforce(ctx context.Context, st *requestState) error {
	if m.scs.GetInt64(ctx, keyUserID) == 0 {
		return nil
	}
	now := m.now()
	created := time.UnixMilli(m.scs.GetInt64(ctx, keyCreated))
	seen := time.UnixMilli(m.scs.GetInt64(ctx, keySeen))
	// The policy as configured now: a role no longer allowed to stay
	// signed in falls back to its plain timeouts at once.
	pol, _ := m.policies.For(m.scs.GetString(ctx, keyRole), m.scs.GetInt64(ctx, keyRemember) == 1)
	switch {
	case !now.Before(created.Add(pol.Lifetime)):
		st.ended = EndedLifetime
	case !now.Before(seen.Add(pol.IdleTimeout)):
		st.ended = EndedIdle
	}
	if st.ended != "" {
		if err := m.scs.Destroy(ctx); err != nil {
			return fmt.Errorf("end %s session: %w", st.ended, err)
		}
		return nil
	}
	touchEvery := touchInterval(pol.IdleTimeout)
	if now.Sub(seen) < touchEvery || passive(ctx) {
		return nil
	}
	if m.checkUser != nil {
		reason, err := m.checkUser(ctx, m.scs.GetInt64(ctx, keyUserID), created)
		if err != nil {
			return fmt.Errorf("check session's user: %w", err)
		}
		if reason != "" {
			st.ended = reason
			if err := m.scs.Destroy(ctx); err != nil {
				return fmt.Errorf("end %s session: %w", reason, err)
			}
			return nil
		}
	}
	m.scs.Put(ctx, keySeen, now.UnixMilli())
	// The store keeps the session one touch interval past its next idle
	// end (or its absolute end, if sooner), and no longer: this session's
	// own idle timeout, not the longest any session may have.
	end := now.Add(pol.IdleTimeout)
	if abs := created.Add(pol.Lifetime); abs.Before(end) {
		end = abs
	}
	m.scs.SetDeadline(ctx, end.Add(touchEvery))
	st.touched = true
	return nil
}

// endReason says why the store no longer has the session of token: the
// reason its tombstone records, or EndedUnknown. A lookup failure is not
// worth failing the request over: the visitor is signed out either way.
func (m *Manager) endReason(ctx context.Context, token string) EndReason {
	reason, err := m.store.EndReason(ctx, keyOf(ctx, token))
	if err != nil || reason == "" || reason == EndedSignedOut {
		return EndedUnknown
	}
	return reason
}

// keyOf is the store key of token as a request with ctx holds it: a
// cookie token carries its shard tag, and the token scs made for the
// session Login stored on this request is given the tag of that session's
// user, as the cookie carries it (CookieToken).
func keyOf(ctx context.Context, token string) string {
	if _, tagged := tokenTag(token); !tagged {
		if st, ok := ctx.Value(stateKey{}).(*requestState); ok && st.tag != "" {
			token = CookieToken(st.tag, token)
		}
	}
	return StoreKey(token)
}

// hashingStore is the Store scs sees: it receives raw tokens and passes
// only their store keys on.
type hashingStore struct {
	Store
}

func (h hashingStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	return h.Store.FindCtx(ctx, keyOf(ctx, token))
}

func (h hashingStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	return h.Store.CommitCtx(ctx, keyOf(ctx, token), b, expiry)
}

func (h hashingStore) DeleteCtx(ctx context.Context, token string) error {
	if token == "" {
		return nil // a session that was never stored
	}
	key := keyOf(ctx, token)
	if replaced, _ := ctx.Value(replacedKey{}).(string); replaced == key {
		return nil // Login's Create ends it, atomically with its checks
	}
	return h.Store.DeleteCtx(ctx, key)
}

// replacedKey marks the context Login hands scs's RenewToken with the store
// key of the session the new one replaces, so hashingStore leaves that
// session alone: Create ends it, in the same atomic step that checks it is
// still live.
type replacedKey struct{}

func (h hashingStore) Find(token string) ([]byte, bool, error) {
	return h.FindCtx(context.Background(), token)
}

func (h hashingStore) Commit(token string, b []byte, expiry time.Time) error {
	return h.CommitCtx(context.Background(), token, b, expiry)
}

func (h hashingStore) Delete(token string) error {
	return h.DeleteCtx(context.Background(), token)
}

// wellFormedToken reports whether v looks like a cookie token Hallpass
// issued (a shard tag, a dot, then scs's 32 random bytes as unpadded
// base64url), so junk cookies cost no store lookup.
func wellFormedToken(v string) bool {
	if _, ok := tokenTag(v); !ok {
		return false
	}
	v = v[tagLen+1:]
	if len(v) != 43 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// Login starts a signed-in session for id on a fresh token, dropping
// whatever the browser's previous session held (session fixation defence).
// The session is stored at once, in one step that enforces the concurrent-
// session limit: it returns how many of the user's other sessions were
// evicted, or ErrTooManySessions under the reject policy, or a store error.
//
// The same step checks the revocations that may have landed while the
// request was in flight, and returns ErrRevoked if one did: the session the
// request carries (a token re-issued after a password change, or a sign-in
// from a signed-in browser) must still be live, and is ended by that step
// (leaving a tombstone, as a sign-out does); and id.AuthenticatedAt must not
// be before the user's latest whole-user revocation (see Origin). On
// ErrRevoked, as on any error, nothing is stored, the request is left
// signed out and the response carries no cookie. The session the request
// carried is ended only by a Create that succeeds: after another failure
// (ErrTooManySessions, the store down) it is as it was.
func (m *Manager) Login(ctx context.Context, id Identity, client Client) (evicted int, err error) {
	st, ok := ctx.Value(stateKey{}).(*requestState)
	if !ok {
		return 0, errors.New("session: Login outside LoadAndSave")
	}
	st.noSave = true // until the new session is stored
	// A token means a stored session: Load keeps only tokens it found, and
	// ending a session drops its token.
	replaces := ""
	if old := m.scs.Token(ctx); old != "" {
		replaces = keyOf(ctx, old)
	}
	if err := m.scs.Clear(ctx); err != nil {
		return 0, fmt.Errorf("clear pre-login session: %w", err)
	}
	// RenewToken would delete the old session first, and a Create that
	// then found it gone could not tell a revocation from the renewal.
	if err := m.scs.RenewToken(context.WithValue(ctx, replacedKey{}, replaces)); err != nil {
		return 0, fmt.Errorf("renew session token: %w", err)
	}
	now := m.now()
	pol, remembered := m.policies.For(id.Role, id.Remember)
	// The store keeps the session one touch interval past its lifetime, so
	// a request just after the end still learns why it ended.
	deadline := now.Add(pol.Lifetime + touchInterval(pol.IdleTimeout))
	m.scs.SetDeadline(ctx, deadline)
	values := map[string]any{
		keyUserID:   id.UserID,
		keyUsername: id.Username,
		keyRole:     id.Role,
		keyCreated:  now.UnixMilli(),
		keySeen:     now.UnixMilli(),
		keyReplica:  m.replicaID,
		keyIP:       client.IP,
		keyDevice:   client.Device,
		keyMethod:   id.Method,
		// Signing in is a proof of who the user is.
		keyReauth: now.UnixMilli(),
	}
	if remembered {
		values[keyRemember] = int64(1)
	}
	if id.MustEnrol {
		values[keyMustEnrol] = int64(1)
	}
	for k, v := range values {
		m.scs.Put(ctx, k, v)
	}
	data, err := m.scs.Codec.Encode(deadline, values)
	if err != nil {
		return 0, fmt.Errorf("encode session: %w", err)
	}
	st.tag = UserTag(id.UserID)
	token := CookieToken(st.tag, m.scs.Token(ctx))
	origin := Origin{AuthenticatedAt: id.AuthenticatedAt, Replaces: replaces}
	keys, err := m.store.Create(ctx, StoreKey(token), id.UserID, data, deadline, pol.Limit, origin)
	if err != nil {
		// Nobody is signed in on this request after all.
		for k := range values {
			m.scs.Remove(ctx, k)
		}
		st.tag = ""
		return 0, fmt.Errorf("create session: %w", err)
	}
	st.noSave = false
	// The cookie lasts until the absolute end; the store keeps the session
	// one touch interval longer (deadline), so the cookie never outlives it.
	st.created = &createdSession{token: token, expiry: now.Add(pol.Lifetime)}
	return len(keys), nil
}

// Logout ends the current session in the store and expires the cookie.
func (m *Manager) Logout(ctx context.Context) error {
	if err := m.scs.Destroy(ctx); err != nil {
		return fmt.Errorf("destroy session: %w", err)
	}
	return nil
}

// Current returns the signed-in session of the request, if any. Outside
// LoadAndSave there is none.
func (m *Manager) Current(ctx context.Context) (Info, bool) {
	if _, ok := ctx.Value(stateKey{}).(*requestState); !ok {
		return Info{}, false
	}
	uid := m.scs.GetInt64(ctx, keyUserID)
	if uid == 0 {
		return Info{}, false
	}
	created := time.UnixMilli(m.scs.GetInt64(ctx, keyCreated))
	seen := time.UnixMilli(m.scs.GetInt64(ctx, keySeen))
	role := m.scs.GetString(ctx, keyRole)
	pol, remembered := m.policies.For(role, m.scs.GetInt64(ctx, keyRemember) == 1)
	reauth := created
	if ms, ok := m.scs.Get(ctx, keyReauth).(int64); ok {
		reauth = time.UnixMilli(ms)
	}
	return Info{
		Identity: Identity{
			UserID:    uid,
			Username:  m.scs.GetString(ctx, keyUsername),
			Role:      role,
			Remember:  remembered,
			Method:    m.scs.GetString(ctx, keyMethod),
			MustEnrol: m.scs.GetInt64(ctx, keyMustEnrol) == 1,
		},
		Created:           created,
		LastSeen:          seen,
		Replica:           m.scs.GetString(ctx, keyReplica),
		IdleExpiry:        seen.Add(pol.IdleTimeout),
		AbsoluteExpiry:    created.Add(pol.Lifetime),
		ReauthenticatedAt: reauth,
	}, true
}

// MarkReauthenticated records that the user of the request's session has
// just proved who they are again (sudo mode): Info.ReauthenticatedAt
// becomes now by the Manager's clock. The change is saved with the
// response, as any change to the session is: conditionally, so a session
// revoked while the request was in flight stays revoked (the response then
// carries no cookie and the next request is signed out), and a store that
// refuses the write fails the response rather than leave the user believing
// the proof was kept. It returns an error outside LoadAndSave or when
// nobody is signed in.
func (m *Manager) MarkReauthenticated(ctx context.Context) error {
	st, ok := m.signedIn(ctx)
	if !ok {
		return errors.New("mark session reauthenticated: nobody is signed in")
	}
	// Tag 3 of the compact form carries the method and the last proof
	// together: a session stored before they were recorded gets the method
	// it reads as anyway, so it stays compact.
	if !m.scs.Exists(ctx, keyMethod) {
		m.scs.Put(ctx, keyMethod, "")
	}
	m.scs.Put(ctx, keyReauth, m.now().UnixMilli())
	st.changed = true
	return nil
}

// ClearMustEnrol lifts MustEnrol from the request's session, once the user
// has enrolled a second factor. It is saved with the response, as
// MarkReauthenticated is, and does nothing for a session without it. It
// returns an error outside LoadAndSave or when nobody is signed in.
func (m *Manager) ClearMustEnrol(ctx context.Context) error {
	st, ok := m.signedIn(ctx)
	if !ok {
		return errors.New("clear must-enrol: nobody is signed in")
	}
	if m.scs.Exists(ctx, keyMustEnrol) {
		m.scs.Remove(ctx, keyMustEnrol)
		st.changed = true
	}
	return nil
}

// signedIn returns the request's state when someone is signed in on it.
func (m *Manager) signedIn(ctx context.Context) (*requestState, bool) {
	st, ok := ctx.Value(stateKey{}).(*requestState)
	if !ok || st.noSave || m.scs.GetInt64(ctx, keyUserID) == 0 {
		return nil, false
	}
	return st, true
}

// StillLive reports whether the request's session is still in the store:
// false once it has been signed out, revoked or evicted since the request
// loaded it. A use case that changes something lasting (a password) asks
// just before it does, so an action already running when its session was
// revoked does not go on to complete. One store read.
func (m *Manager) StillLive(ctx context.Context) (bool, error) {
	if _, ok := m.Current(ctx); !ok {
		return false, nil
	}
	_, found, err := m.store.FindCtx(FreshRead(ctx), keyOf(ctx, m.scs.Token(ctx)))
	if err != nil {
		return false, fmt.Errorf("check session: %w", err)
	}
	return found, nil
}

// Ended reports why the session the browser presented on this request was
// ended by the middleware, or "" if it was not.
func (m *Manager) Ended(ctx context.Context) EndReason {
	if st, ok := ctx.Value(stateKey{}).(*requestState); ok {
		return st.ended
	}
	return ""
}

// savingWriter saves the session before the first byte of the response, so
// a failed save can still be answered with an error page instead of a page
// whose cookie was never stored.
type savingWriter struct {
	http.ResponseWriter
	req     *http.Request
	m       *Manager
	onError func(w http.ResponseWriter, r *http.Request, err error)
	saved   bool
	failed  bool
}

func (sw *savingWriter) save() {
	if sw.saved {
		return
	}
	sw.saved = true
	ctx := sw.req.Context()
	if st, ok := ctx.Value(stateKey{}).(*requestState); ok {
		switch {
		case st.noSave:
			return
		case st.created != nil:
			// Login stored the session; a change made after it in the
			// same request is saved on top, conditionally as ever.
			if st.changed {
				if _, _, err := sw.m.scs.Commit(ctx); errors.Is(err, ErrRevoked) {
					return
				} else if err != nil {
					sw.failed = true
					sw.onError(sw.ResponseWriter, sw.req, fmt.Errorf("save session: %w", err))
					return
				}
			}
			sw.m.scs.WriteSessionCookie(ctx, sw.ResponseWriter, st.created.token, st.created.expiry)
			return
		}
	}
	if st, ok := ctx.Value(stateKey{}).(*requestState); ok && st.touched && !st.changed && sw.m.scs.Status(ctx) == scs.Modified {
		sw.saveTouch(ctx)
		return
	}
	switch sw.m.scs.Status(ctx) {
	case scs.Modified:
		token, expiry, err := sw.m.scs.Commit(ctx)
		if errors.Is(err, ErrRevoked) {
			// Revoked while this request was in flight: the store refused to
			// bring it back, and there is no cookie to send.
			return
		}
		if err != nil {
			sw.failed = true
			sw.onError(sw.ResponseWriter, sw.req, fmt.Errorf("save session: %w", err))
			return
		}
		if info, ok := sw.m.Current(ctx); ok {
			expiry = info.AbsoluteExpiry // not the store's deadline: see Login
		}
		sw.m.scs.WriteSessionCookie(ctx, sw.ResponseWriter, token, expiry)
	case scs.Destroyed:
		sw.m.scs.WriteSessionCookie(ctx, sw.ResponseWriter, "", time.Time{})
	}
}

// saveTouch stores a refreshed last-seen time. The token is unchanged, so no
// cookie is written; and a failure does not fail the page: the session was
// read fine, and a store that refuses writes for a while (a Redis primary
// just promoted, waiting for a replica) must not lock signed-in users out.
// The refresh is tried again on the next request.
func (sw *savingWriter) saveTouch(ctx context.Context) {
	_, _, err := sw.m.scs.Commit(ctx)
	if err != nil && !errors.Is(err, ErrRevoked) {
		sw.m.log.LogAttrs(ctx, slog.LevelWarn, "session refresh not saved", slog.Any("error", err))
	}
}

// WriteHeader saves the session, then writes the header unless the save
// failed and an error page was written instead.
func (sw *savingWriter) WriteHeader(code int) {
	sw.save()
	if sw.failed {
		return
	}
	sw.ResponseWriter.WriteHeader(code)
}

// Write saves the session, then writes b unless the save failed.
func (sw *savingWriter) Write(b []byte) (int, error) {
	sw.save()
	if sw.failed {
		return len(b), nil
	}
	return sw.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (sw *savingWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }
