package session

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// What the Manager offers a live event stream (internal/live): the store
// key of the request's session, a fresh look at any session by its key, a
// way to load a session without that counting as activity, and a forced
// refresh for "Stay signed in".

type passiveKey struct{}

// Passive marks requests whose session must be loaded without refreshing
// its last-seen time: an open event stream is not activity, so it must not
// keep a session alive by itself. Put it in front of LoadAndSave. The idle
// timeout and lifetime still apply.
func Passive(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), passiveKey{}, true)))
	})
}

type freshKey struct{}

// FreshRead marks a store read that must come from the store of record
// (the Redis primary), not a replica's cache of it nor a Redis replica: a
// check made just before something lasting is changed (StillLive). The
// cache's and the Redis replica's guarantees cover revocations that have
// been acknowledged; such a check also sees one still in flight, and fails
// when no primary answers, as the change it guards would.
func FreshRead(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

// IsFreshRead reports whether ctx asks for a read from the store of record.
func IsFreshRead(ctx context.Context) bool {
	f, _ := ctx.Value(freshKey{}).(bool)
	return f
}

func passive(ctx context.Context) bool {
	p, _ := ctx.Value(passiveKey{}).(bool)
	return p
}

// CurrentKey returns the store key of the request's session (never shown to
// anyone), with no store round trip; false when nobody is signed in.
func (m *Manager) CurrentKey(ctx context.Context) (string, bool) {
	if _, ok := m.Current(ctx); !ok {
		return "", false
	}
	return keyOf(ctx, m.scs.Token(ctx)), true
}

// Lookup reads the session stored under key as the middleware would judge
// it now: its record, or why it ended (its tombstone's reason, the idle
// timeout or the lifetime by the Manager's clock, or EndedUnknown).
func (m *Manager) Lookup(ctx context.Context, key string) (Record, EndReason, error) {
	b, found, err := m.store.FindCtx(ctx, key)
	if err != nil {
		return Record{}, "", fmt.Errorf("look up session: %w", err)
	}
	if !found {
		reason, err := m.store.EndReason(ctx, key)
		if err != nil {
			return Record{}, "", fmt.Errorf("look up session end: %w", err)
		}
		if reason == "" {
			reason = EndedUnknown
		}
		return Record{}, reason, nil
	}
	rec, err := m.record(Entry{Key: key, Data: b}, key)
	if err != nil {
		return Record{}, "", err
	}
	now := m.now()
	switch {
	case !now.Before(rec.AbsoluteExpiry):
		return Record{}, EndedLifetime, nil
	case !now.Before(rec.IdleExpiry):
		return Record{}, EndedIdle, nil
	}
	return rec, "", nil
}

// Refresh makes the request count as activity now, whatever the touch
// interval: the last-seen time is refreshed and saved with the response
// ("Stay signed in"). The session's other tabs learn the new deadlines from
// the store's invalidation.
func (m *Manager) Refresh(ctx context.Context) error {
	st, ok := ctx.Value(stateKey{}).(*requestState)
	if !ok || m.scs.GetInt64(ctx, keyUserID) == 0 {
		return fmt.Errorf("refresh session: nobody is signed in")
	}
	now := m.now()
	created := time.UnixMilli(m.scs.GetInt64(ctx, keyCreated))
	pol, _ := m.policies.For(m.scs.GetString(ctx, keyRole), m.scs.GetInt64(ctx, keyRemember) == 1)
	m.scs.Put(ctx, keySeen, now.UnixMilli())
	end := now.Add(pol.IdleTimeout)
	if abs := created.Add(pol.Lifetime); abs.Before(end) {
		end = abs
	}
	m.scs.SetDeadline(ctx, end.Add(touchInterval(pol.IdleTimeout)))
	st.touched = true
	return nil
}

// WarnBefore is how long before a session's idle end (or absolute end) the
// open tabs warn that it is about to end: two minutes, or a quarter of the
// idle timeout when that is shorter.
func WarnBefore(idle time.Duration) time.Duration {
	return min(2*time.Minute, idle/4)
}
