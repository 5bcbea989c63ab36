package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// publicIDContext separates the public-ID derivation from every other use of
// SHA-256 over a store key.
const publicIDContext = "hallpass public session id\x00"

// Record is a signed-in session as pages and the CLI show it.
type Record struct {
	// PublicID names the session in pages and URLs: "<user id>.<digest>".
	// It derives from the store key by a one-way hash, so it can be turned
	// back into neither a cookie nor a store key.
	PublicID string
	Identity
	Created        time.Time
	LastSeen       time.Time
	IdleExpiry     time.Time
	AbsoluteExpiry time.Time
	IP             string
	Device         string
	Replica        string
	// Current marks the session of the request that asked.
	Current bool

	key string
}

// publicIDFor derives the public ID of the session stored under key.
func publicIDFor(userID int64, key string) string {
	sum := sha256.Sum256([]byte(publicIDContext + key))
	return strconv.FormatInt(userID, 10) + "." + base64.RawURLEncoding.EncodeToString(sum[:12])
}

// UserOfPublicID returns the user a public session ID belongs to.
func UserOfPublicID(id string) (int64, bool) {
	uid, digest, ok := strings.Cut(id, ".")
	if !ok || len(digest) != 16 {
		return 0, false
	}
	n, err := strconv.ParseInt(uid, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// record decodes a stored session.
func (m *Manager) record(e Entry, currentKey string) (Record, error) {
	_, values, err := m.scs.Codec.Decode(e.Data)
	if err != nil {
		return Record{}, fmt.Errorf("decode session: %w", err)
	}
	i64 := func(k string) int64 { v, _ := values[k].(int64); return v }
	str := func(k string) string { v, _ := values[k].(string); return v }
	created, seen := time.UnixMilli(i64(keyCreated)), time.UnixMilli(i64(keySeen))
	uid := i64(keyUserID)
	pol, remembered := m.policies.For(str(keyRole), i64(keyRemember) == 1)
	return Record{
		PublicID: publicIDFor(uid, e.Key),
		Identity: Identity{
			UserID: uid, Username: str(keyUsername), Role: str(keyRole), Remember: remembered,
			Method: str(keyMethod), MustEnrol: i64(keyMustEnrol) == 1,
		},
		Created:        created,
		LastSeen:       seen,
		IdleExpiry:     seen.Add(pol.IdleTimeout),
		AbsoluteExpiry: created.Add(pol.Lifetime),
		IP:             str(keyIP),
		Device:         str(keyDevice),
		Replica:        str(keyReplica),
		Current:        e.Key == currentKey,
		key:            e.Key,
	}, nil
}

// records decodes entries, skipping any that idled out or outlived their
// lifetime by the Manager's clock but are still in the store's grace window.
func (m *Manager) records(ctx context.Context, entries []Entry) ([]Record, error) {
	current := ""
	if _, inRequest := ctx.Value(stateKey{}).(*requestState); inRequest {
		if tok := m.scs.Token(ctx); tok != "" {
			current = keyOf(ctx, tok)
		}
	}
	now := m.now()
	out := make([]Record, 0, len(entries))
	for _, e := range entries {
		r, err := m.record(e, current)
		if err != nil {
			return nil, err
		}
		if !now.Before(r.IdleExpiry) || !now.Before(r.AbsoluteExpiry) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// ListUser returns userID's live sessions, most recently active first, with
// the session of ctx's request marked Current.
func (m *Manager) ListUser(ctx context.Context, userID int64) ([]Record, error) {
	entries, err := m.store.ListUser(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %d: %w", userID, err)
	}
	recs, err := m.records(ctx, entries)
	if err != nil {
		return nil, err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].LastSeen.After(recs[j].LastSeen) })
	return recs, nil
}

// Revoke ends userID's session with the given public ID. It reports false
// if userID has no such live session (someone else's ID included).
//
// It costs two store round trips: one to list the keys of userID's live
// sessions (keys only, no session data), then one to revoke the key whose
// public ID matches; only the first when none does, and none for an ID that
// names another user. The key cannot be derived from the public ID, which is
// a one-way hash of it, hence the listing.
func (m *Manager) Revoke(ctx context.Context, userID int64, publicID string, reason EndReason) (bool, error) {
	if owner, ok := UserOfPublicID(publicID); !ok || owner != userID {
		return false, nil
	}
	keys, err := m.store.ListUserKeys(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("list sessions of user %d: %w", userID, err)
	}
	for _, k := range keys {
		if publicIDFor(userID, k) != publicID {
			continue
		}
		n, err := m.store.Revoke(ctx, userID, []string{k}, reason)
		if err != nil {
			return false, fmt.Errorf("revoke session: %w", err)
		}
		return n > 0, nil
	}
	return false, nil
}

// CurrentPublicID returns the public ID of the request's own session, the
// one ListUser marks Current. It is worked out from the request's token,
// with no store round trip. It reports false outside LoadAndSave and when
// nobody is signed in.
func (m *Manager) CurrentPublicID(ctx context.Context) (string, bool) {
	if _, inRequest := ctx.Value(stateKey{}).(*requestState); !inRequest {
		return "", false
	}
	uid := m.scs.GetInt64(ctx, keyUserID)
	token := m.scs.Token(ctx)
	if uid == 0 || token == "" {
		return "", false
	}
	return publicIDFor(uid, keyOf(ctx, token)), true
}

// RevokeOthers ends every session of the request's user except the
// request's own, and returns how many it ended. Sign-ins of the user that
// authenticated before it and are still in flight can no longer create a
// session (see Origin); the request's own session can re-issue its token
// with Login, with an Identity.AuthenticatedAt taken after RevokeOthers
// returned.
func (m *Manager) RevokeOthers(ctx context.Context, reason EndReason) (int, error) {
	info, ok := m.Current(ctx)
	if !ok {
		return 0, nil
	}
	n, err := m.store.RevokeUser(ctx, info.UserID, keyOf(ctx, m.scs.Token(ctx)), reason)
	if err != nil {
		return 0, fmt.Errorf("revoke other sessions of user %d: %w", info.UserID, err)
	}
	return n, nil
}

// RevokeUser ends every session of userID and returns how many it ended.
// Sign-ins of the user that authenticated before it and are still in flight
// can no longer create a session (see Origin).
func (m *Manager) RevokeUser(ctx context.Context, userID int64, reason EndReason) (int, error) {
	n, err := m.store.RevokeUser(ctx, userID, "", reason)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions of user %d: %w", userID, err)
	}
	return n, nil
}

// RevokeEveryone ends every session of each of userIDs except the
// request's own (none outside LoadAndSave, or when nobody is signed in), in
// one store call (see Registry.RevokeUsers), and returns how many it ended. As with RevokeUser,
// sign-ins of those users that authenticated before it and are still in
// flight can no longer create a session; the request's own session can
// re-issue its token with Login, with an Identity.AuthenticatedAt taken
// after RevokeEveryone returned. A caller ending every user's sessions
// calls it once per page of users (see Registry.RevokeUsers).
func (m *Manager) RevokeEveryone(ctx context.Context, userIDs []int64, reason EndReason) (int, error) {
	except := ""
	if _, ok := m.Current(ctx); ok {
		except = keyOf(ctx, m.scs.Token(ctx))
	}
	n, err := m.store.RevokeUsers(ctx, userIDs, except, reason)
	if err != nil {
		return n, fmt.Errorf("revoke sessions of %d users: %w", len(userIDs), err)
	}
	return n, nil
}

// Count returns how many signed-in sessions are live.
func (m *Manager) Count(ctx context.Context) (int, error) {
	n, err := m.store.Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count sessions: %w", err)
	}
	return n, nil
}

// CountUsers returns how many live sessions each of userIDs has (0 for a
// user with none), in one store round trip however many users are listed.
// Unlike ListUser it counts by the store's expiry, so a session past the
// Manager's idle timeout but inside the store's grace window still counts.
func (m *Manager) CountUsers(ctx context.Context, userIDs []int64) (map[int64]int, error) {
	counts, err := m.store.CountUsers(ctx, userIDs)
	if err != nil {
		return nil, fmt.Errorf("count sessions of %d users: %w", len(userIDs), err)
	}
	return counts, nil
}

// Recent returns live sessions, most recently active first.
func (m *Manager) Recent(ctx context.Context, offset, limit int) ([]Record, error) {
	entries, err := m.store.Recent(ctx, offset, limit)
	if err != nil {
		return nil, fmt.Errorf("list recent sessions: %w", err)
	}
	return m.records(ctx, entries)
}
