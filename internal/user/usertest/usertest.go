// Package usertest is the contract every user.Store implementation must meet,
// as a test suite each implementation's tests run.
package usertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/user"
)

// Run checks the store contract. newStore must return an empty store of its
// own each time it is called, cleaned up with t; subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) user.Store) {
	tests := []struct {
		name string
		test func(t *testing.T, s user.Store)
	}{
		{"CreateThenByID", testCreateThenByID},
		{"CreateAssignsDistinctIDs", testCreateAssignsDistinctIDs},
		{"CreateRejectsDuplicateIgnoringCase", testCreateRejectsDuplicate},
		{"CreateRejectsInvalidUsername", testCreateRejectsInvalidUsername},
		{"CreateRejectsInvalidRole", testCreateRejectsInvalidRole},
		{"ByIDNotFound", testByIDNotFound},
		{"ByUsernameIgnoresCase", testByUsernameIgnoresCase},
		{"ByUsernameNotFound", testByUsernameNotFound},
		{"ListOrdersByUsername", testListOrdersByUsername},
		{"ListPages", testListPages},
		{"ListSearchIgnoresCase", testListSearchIgnoresCase},
		{"ListSearchEscapesWildcards", testListSearchEscapesWildcards},
		{"ListEmpty", testListEmpty},
		{"Count", testCount},
		{"SetPasswordHash", testSetPasswordHash},
		{"SetDisabledRoundTrip", testSetDisabledRoundTrip},
		{"LastAdminCannotBeDisabled", testLastAdminCannotBeDisabled},
		{"AdminWhoIsNotTheLastCanBeDisabled", testNonLastAdminCanBeDisabled},
		{"PlainUserCanAlwaysBeDisabled", testPlainUserCanAlwaysBeDisabled},
		{"TwoAdminsDisablingEachOtherAtOnceLeaveOneEnabled", adminsDisablingEachOtherAtOnce(2, 50)},
		{"FiveAdminsDisablingEachOtherAtOnceLeaveOneEnabled", adminsDisablingEachOtherAtOnce(5, 20)},
		{"SetSessionsValidAfterRoundTrip", testSetSessionsValidAfter},
		{"SetAllSessionsValidAfterMovesEveryUsersTimeForward", testSetAllSessionsValidAfter},
		{"ListIDsPagesInAscendingOrder", testListIDs},
		{"UpdatesOfMissingUserAreNotFound", testUpdatesOfMissingUser},
		{"TimesRoundTrip", testTimesRoundTrip},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// create adds a user with role user and a hash derived from the name.
func create(t *testing.T, s user.Store, name string) user.User {
	t.Helper()
	u, err := s.Create(ctx(t), user.NewUser{Username: name, PasswordHash: "hash-of-" + name, Role: user.RoleUser})
	if err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	return u
}

func byID(t *testing.T, s user.Store, id int64) user.User {
	t.Helper()
	u, err := s.ByID(ctx(t), id)
	if err != nil {
		t.Fatalf("ByID(%d): %v", id, err)
	}
	return u
}

func names(users []user.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.Username
	}
	return out
}

func list(t *testing.T, s user.Store, opts user.ListOptions) []string {
	t.Helper()
	users, err := s.List(ctx(t), opts)
	if err != nil {
		t.Fatalf("List(%+v): %v", opts, err)
	}
	return names(users)
}

// checkTime checks a stored time is set, in UTC and to the microsecond.
func checkTime(t *testing.T, what string, got time.Time) {
	t.Helper()
	if got.IsZero() {
		t.Errorf("%s is zero", what)
	}
	if got.Location() != time.UTC {
		t.Errorf("%s = %v, want UTC", what, got)
	}
	if !got.Equal(got.Truncate(time.Microsecond)) {
		t.Errorf("%s = %v, want microsecond precision", what, got)
	}
}

func testCreateThenByID(t *testing.T, s user.Store) {
	created, err := s.Create(ctx(t), user.NewUser{Username: "Alice.Admin", PasswordHash: "$argon2id$x", Role: user.RoleAdmin})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if created.ID == 0 {
		t.Error("Create returned ID 0")
	}
	want := user.User{
		ID:           created.ID,
		Username:     "Alice.Admin",
		PasswordHash: "$argon2id$x",
		Role:         user.RoleAdmin,
		CreatedAt:    created.CreatedAt,
		UpdatedAt:    created.CreatedAt,
	}
	if created != want {
		t.Errorf("Create returned\n%+v, want\n%+v", created, want)
	}
	checkTime(t, "CreatedAt", created.CreatedAt)
	if got := byID(t, s, created.ID); got != want {
		t.Errorf("ByID returned\n%+v, want\n%+v", got, want)
	}
}

func testCreateAssignsDistinctIDs(t *testing.T, s user.Store) {
	a, b := create(t, s, "alice"), create(t, s, "bob")
	if a.ID == b.ID {
		t.Fatalf("two users share ID %d", a.ID)
	}
	if got := byID(t, s, b.ID).Username; got != "bob" {
		t.Errorf("ByID(%d).Username = %q, want bob", b.ID, got)
	}
}

func testCreateRejectsDuplicate(t *testing.T, s user.Store) {
	original := create(t, s, "alice")
	for _, name := range []string{"alice", "ALICE", "Alice"} {
		_, err := s.Create(ctx(t), user.NewUser{Username: name, PasswordHash: "other", Role: user.RoleAdmin})
		if !errors.Is(err, user.ErrDuplicateUsername) {
			t.Errorf("Create(%q) after alice = %v, want ErrDuplicateUsername", name, err)
		}
	}
	if got := byID(t, s, original.ID); got != original {
		t.Errorf("original user changed to %+v", got)
	}
	if n, err := s.Count(ctx(t)); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
}

func testCreateRejectsInvalidUsername(t *testing.T, s user.Store) {
	for _, name := range []string{"", "al", "-alice", "al ice", "alicé", string(make([]byte, 65))} {
		_, err := s.Create(ctx(t), user.NewUser{Username: name, PasswordHash: "h", Role: user.RoleUser})
		if !errors.Is(err, user.ErrInvalidUsername) {
			t.Errorf("Create(%q) = %v, want ErrInvalidUsername", name, err)
		}
	}
	if n, err := s.Count(ctx(t)); err != nil || n != 0 {
		t.Errorf("Count = %d, %v; want 0", n, err)
	}
}

func testCreateRejectsInvalidRole(t *testing.T, s user.Store) {
	for _, role := range []user.Role{"", "root", "Admin"} {
		_, err := s.Create(ctx(t), user.NewUser{Username: "alice", PasswordHash: "h", Role: role})
		if !errors.Is(err, user.ErrInvalidRole) {
			t.Errorf("Create with role %q = %v, want ErrInvalidRole", role, err)
		}
	}
}

func testByIDNotFound(t *testing.T, s user.Store) {
	u := create(t, s, "alice")
	for _, id := range []int64{0, -1, u.ID + 1000} {
		if _, err := s.ByID(ctx(t), id); !errors.Is(err, user.ErrNotFound) {
			t.Errorf("ByID(%d) = %v, want ErrNotFound", id, err)
		}
	}
}

func testByUsernameIgnoresCase(t *testing.T, s user.Store) {
	created := create(t, s, "Alice_1")
	create(t, s, "bob")
	for _, name := range []string{"Alice_1", "alice_1", "ALICE_1"} {
		got, err := s.ByUsername(ctx(t), name)
		if err != nil {
			t.Fatalf("ByUsername(%q): %v", name, err)
		}
		if got != created {
			t.Errorf("ByUsername(%q) = %+v, want %+v", name, got, created)
		}
	}
}

func testByUsernameNotFound(t *testing.T, s user.Store) {
	create(t, s, "alice")
	for _, name := range []string{"", "alic", "alice2", "alice ", "al%", "al_ce"} {
		if _, err := s.ByUsername(ctx(t), name); !errors.Is(err, user.ErrNotFound) {
			t.Errorf("ByUsername(%q) = %v, want ErrNotFound", name, err)
		}
	}
}

func testListOrdersByUsername(t *testing.T, s user.Store) {
	for _, name := range []string{"carol", "Bob", "alice", "a-b", "a.b", "a_b", "ab9", "0zero"} {
		create(t, s, name)
	}
	// Case is ignored; ties cannot happen (names are unique ignoring case);
	// punctuation sorts by byte value: '-' < '.' < digits < '_' < letters.
	want := []string{"0zero", "a-b", "a.b", "a_b", "ab9", "alice", "Bob", "carol"}
	if got := list(t, s, user.ListOptions{}); !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
}

func testListPages(t *testing.T, s user.Store) {
	for i := range 7 {
		create(t, s, fmt.Sprintf("user%d", i))
	}
	for _, tc := range []struct {
		opts user.ListOptions
		want []string
	}{
		{user.ListOptions{Limit: 3}, []string{"user0", "user1", "user2"}},
		{user.ListOptions{Limit: 3, Offset: 3}, []string{"user3", "user4", "user5"}},
		{user.ListOptions{Limit: 3, Offset: 6}, []string{"user6"}},
		{user.ListOptions{Limit: 3, Offset: 7}, nil},
		{user.ListOptions{Offset: 5}, []string{"user5", "user6"}},
		{user.ListOptions{Limit: -1, Offset: -1}, []string{"user0", "user1", "user2", "user3", "user4", "user5", "user6"}},
		{user.ListOptions{Search: "user", Limit: 2, Offset: 1}, []string{"user1", "user2"}},
	} {
		if got := list(t, s, tc.opts); !slices.Equal(got, tc.want) {
			t.Errorf("List(%+v) = %q, want %q", tc.opts, got, tc.want)
		}
	}
}

func testListSearchIgnoresCase(t *testing.T, s user.Store) {
	for _, name := range []string{"Alice", "malcolm", "bob", "ALBERT"} {
		create(t, s, name)
	}
	for _, tc := range []struct {
		search string
		want   []string
	}{
		{"al", []string{"ALBERT", "Alice", "malcolm"}},
		{"AL", []string{"ALBERT", "Alice", "malcolm"}},
		{"bob", []string{"bob"}},
		{"lic", []string{"Alice"}},
		{"zed", nil},
	} {
		if got := list(t, s, user.ListOptions{Search: tc.search}); !slices.Equal(got, tc.want) {
			t.Errorf("List(Search: %q) = %q, want %q", tc.search, got, tc.want)
		}
	}
}

func testListSearchEscapesWildcards(t *testing.T, s user.Store) {
	for _, name := range []string{"a_b", "axb", "a.b", "abc"} {
		create(t, s, name)
	}
	for _, tc := range []struct {
		search string
		want   []string
	}{
		{"_", []string{"a_b"}},   // not "any one character"
		{"a_b", []string{"a_b"}}, // not axb or a.b
		{"%", nil},               // not "anything"
		{"a%b", nil},
		{`\`, nil},
		{`a\_b`, nil},
		{".", []string{"a.b"}},
	} {
		if got := list(t, s, user.ListOptions{Search: tc.search}); !slices.Equal(got, tc.want) {
			t.Errorf("List(Search: %q) = %q, want %q", tc.search, got, tc.want)
		}
	}
}

func testListEmpty(t *testing.T, s user.Store) {
	if got := list(t, s, user.ListOptions{}); len(got) != 0 {
		t.Errorf("List of an empty store = %q", got)
	}
}

func testCount(t *testing.T, s user.Store) {
	for i := range 3 {
		if n, err := s.Count(ctx(t)); err != nil || n != i {
			t.Fatalf("Count = %d, %v; want %d", n, err, i)
		}
		create(t, s, fmt.Sprintf("user%d", i))
	}
	if n, err := s.Count(ctx(t)); err != nil || n != 3 {
		t.Errorf("Count = %d, %v; want 3", n, err)
	}
}

func testSetPasswordHash(t *testing.T, s user.Store) {
	u := create(t, s, "alice")
	other := create(t, s, "bob")
	if err := s.SetPasswordHash(ctx(t), u.ID, "new-hash"); err != nil {
		t.Fatalf("SetPasswordHash: %v", err)
	}
	got := byID(t, s, u.ID)
	if got.PasswordHash != "new-hash" {
		t.Errorf("PasswordHash = %q, want new-hash", got.PasswordHash)
	}
	checkUpdated(t, u, got)
	if got := byID(t, s, other.ID); got != other {
		t.Errorf("another user changed: %+v", got)
	}
}

// checkUpdated checks an update kept the creation time and did not move the
// update time backwards.
func checkUpdated(t *testing.T, before, after user.User) {
	t.Helper()
	if !after.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("CreatedAt changed from %v to %v", before.CreatedAt, after.CreatedAt)
	}
	checkTime(t, "UpdatedAt", after.UpdatedAt)
	if after.UpdatedAt.Before(before.UpdatedAt) {
		t.Errorf("UpdatedAt went back from %v to %v", before.UpdatedAt, after.UpdatedAt)
	}
}

func testSetDisabledRoundTrip(t *testing.T, s user.Store) {
	u := create(t, s, "alice")
	for _, disabled := range []bool{true, true, false, true} {
		if err := s.SetDisabled(ctx(t), u.ID, disabled); err != nil {
			t.Fatalf("SetDisabled(%t): %v", disabled, err)
		}
		got := byID(t, s, u.ID)
		if got.Disabled != disabled {
			t.Errorf("after SetDisabled(%t), Disabled = %t", disabled, got.Disabled)
		}
		checkUpdated(t, u, got)
		if byName, err := s.ByUsername(ctx(t), "alice"); err != nil || byName.Disabled != disabled {
			t.Errorf("ByUsername after SetDisabled(%t) = %+v, %v", disabled, byName, err)
		}
	}
}

// createAdmin adds an enabled administrator.
func createAdmin(t *testing.T, s user.Store, name string) user.User {
	t.Helper()
	u, err := s.Create(ctx(t), user.NewUser{Username: name, PasswordHash: "hash-of-" + name, Role: user.RoleAdmin})
	if err != nil {
		t.Fatalf("Create(%q, admin): %v", name, err)
	}
	return u
}

// enabledAdmins returns the names of the enabled administrators.
func enabledAdmins(t *testing.T, s user.Store) []string {
	t.Helper()
	users, err := s.List(ctx(t), user.ListOptions{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []string
	for _, u := range users {
		if u.Role == user.RoleAdmin && !u.Disabled {
			out = append(out, u.Username)
		}
	}
	return out
}

func testLastAdminCannotBeDisabled(t *testing.T, s user.Store) {
	root := createAdmin(t, s, "root")
	create(t, s, "alice") // plain users do not count
	for range 2 {
		if err := s.SetDisabled(ctx(t), root.ID, true); !errors.Is(err, user.ErrLastAdmin) {
			t.Fatalf("SetDisabled(last admin) = %v, want ErrLastAdmin", err)
		}
		if got := byID(t, s, root.ID); got != root {
			t.Errorf("the refused disable changed root to %+v, was %+v", got, root)
		}
	}

	// A disabled administrator is no administrator to fall back on.
	other := createAdmin(t, s, "other")
	if err := s.SetDisabled(ctx(t), other.ID, true); err != nil {
		t.Fatalf("SetDisabled(other admin): %v", err)
	}
	if err := s.SetDisabled(ctx(t), root.ID, true); !errors.Is(err, user.ErrLastAdmin) {
		t.Errorf("SetDisabled(root) beside a disabled admin = %v, want ErrLastAdmin", err)
	}
	// Once another is enabled again, root is not the last any more.
	if err := s.SetDisabled(ctx(t), other.ID, false); err != nil {
		t.Fatalf("re-enable other: %v", err)
	}
	if err := s.SetDisabled(ctx(t), root.ID, true); err != nil {
		t.Errorf("SetDisabled(root) beside an enabled admin: %v", err)
	}
	if got := enabledAdmins(t, s); !slices.Equal(got, []string{"other"}) {
		t.Errorf("enabled admins %q, want [other]", got)
	}
}

func testNonLastAdminCanBeDisabled(t *testing.T, s user.Store) {
	root, backup := createAdmin(t, s, "root"), createAdmin(t, s, "backup")
	if err := s.SetDisabled(ctx(t), backup.ID, true); err != nil {
		t.Fatalf("SetDisabled(one of two admins): %v", err)
	}
	got := byID(t, s, backup.ID)
	if !got.Disabled {
		t.Error("backup is still enabled")
	}
	checkUpdated(t, backup, got)
	// Disabling a disabled administrator again changes nothing about who
	// can administer, so it is not refused.
	if err := s.SetDisabled(ctx(t), backup.ID, true); err != nil {
		t.Errorf("SetDisabled(already disabled admin): %v", err)
	}
	if err := s.SetDisabled(ctx(t), root.ID, true); !errors.Is(err, user.ErrLastAdmin) {
		t.Errorf("SetDisabled(the admin left) = %v, want ErrLastAdmin", err)
	}
	if got := enabledAdmins(t, s); !slices.Equal(got, []string{"root"}) {
		t.Errorf("enabled admins %q, want [root]", got)
	}
}

func testPlainUserCanAlwaysBeDisabled(t *testing.T, s user.Store) {
	// With no administrator at all, with one, and with one disabled.
	alice := create(t, s, "alice")
	if err := s.SetDisabled(ctx(t), alice.ID, true); err != nil {
		t.Errorf("SetDisabled(user) with no admin: %v", err)
	}
	createAdmin(t, s, "root")
	bob := create(t, s, "bob")
	if err := s.SetDisabled(ctx(t), bob.ID, true); err != nil {
		t.Errorf("SetDisabled(user) beside the last admin: %v", err)
	}
	for _, u := range []user.User{alice, bob} {
		if !byID(t, s, u.ID).Disabled {
			t.Errorf("%s is still enabled", u.Username)
		}
	}
	if got := enabledAdmins(t, s); !slices.Equal(got, []string{"root"}) {
		t.Errorf("enabled admins %q, want [root]", got)
	}
}

// adminsDisablingEachOtherAtOnce is the attack the rule is for: every one
// of n administrators, at the same instant, disables every other one, and
// again, rounds times. Each admin is the target of n-1 disables, so all but
// one end up disabled; the one left is the survivor, and exactly its n-1
// disables are refused. A check that reads and then writes without
// excluding the others (or one statement under PostgreSQL's READ COMMITTED,
// which reads a snapshot) leaves none.
func adminsDisablingEachOtherAtOnce(n, rounds int) func(t *testing.T, s user.Store) {
	return func(t *testing.T, s user.Store) {
		admins := make([]user.User, n)
		for i := range admins {
			admins[i] = createAdmin(t, s, fmt.Sprintf("admin%d", i))
		}
		c := ctx(t)
		for round := range rounds {
			var (
				wg      sync.WaitGroup
				start   = make(chan struct{})
				mu      sync.Mutex
				refused int
			)
			for i, actor := range admins {
				// Admin i disables the others starting with the next one,
				// so that every admin is a target from the first instant.
				for k := 1; k < n; k++ {
					target := admins[(i+k)%n]
					wg.Go(func() {
						<-start
						err := s.SetDisabled(c, target.ID, true)
						switch {
						case errors.Is(err, user.ErrLastAdmin):
							mu.Lock()
							refused++
							mu.Unlock()
						case err != nil:
							t.Errorf("round %d: %s disables %s: %v", round, actor.Username, target.Username, err)
						}
					})
				}
			}
			close(start)
			wg.Wait()
			enabled := enabledAdmins(t, s)
			if len(enabled) != 1 {
				t.Fatalf("round %d: enabled admins after all disabled each other: %q, want exactly one", round, enabled)
			}
			if refused != n-1 {
				t.Errorf("round %d: %d disables refused with ErrLastAdmin, want %d (those of %s)", round, refused, n-1, enabled[0])
			}
			for _, a := range admins {
				if err := s.SetDisabled(c, a.ID, false); err != nil {
					t.Fatalf("round %d: re-enable %s: %v", round, a.Username, err)
				}
			}
		}
	}
}

func testSetSessionsValidAfter(t *testing.T, s user.Store) {
	u := create(t, s, "alice")
	if !u.SessionsValidAfter.IsZero() {
		t.Errorf("new user has SessionsValidAfter %v, want zero", u.SessionsValidAfter)
	}
	at := time.Date(2031, 2, 3, 4, 5, 6, 789_123_456, time.FixedZone("UTC+5", 5*3600))
	if err := s.SetSessionsValidAfter(ctx(t), u.ID, at); err != nil {
		t.Fatalf("SetSessionsValidAfter: %v", err)
	}
	got := byID(t, s, u.ID)
	if want := time.Date(2031, 2, 2, 23, 5, 6, 789_123_000, time.UTC); got.SessionsValidAfter != want {
		t.Errorf("SessionsValidAfter = %v, want %v (UTC, microseconds)", got.SessionsValidAfter, want)
	}
	checkUpdated(t, u, got)

	if err := s.SetSessionsValidAfter(ctx(t), u.ID, time.Time{}); err != nil {
		t.Fatalf("SetSessionsValidAfter(zero): %v", err)
	}
	if got := byID(t, s, u.ID).SessionsValidAfter; !got.IsZero() {
		t.Errorf("after clearing, SessionsValidAfter = %v, want zero", got)
	}
}

func testSetAllSessionsValidAfter(t *testing.T, s user.Store) {
	if n, err := s.SetAllSessionsValidAfter(ctx(t), time.Now()); err != nil || n != 0 {
		t.Fatalf("SetAllSessionsValidAfter of no users = %d, %v; want 0", n, err)
	}
	alice, bob, carol := create(t, s, "alice"), create(t, s, "bob"), create(t, s, "carol")
	at := time.Date(2031, 2, 3, 4, 5, 6, 789_123_456, time.FixedZone("UTC+5", 5*3600))
	want := time.Date(2031, 2, 2, 23, 5, 6, 789_123_000, time.UTC)
	// bob's sessions were already revoked later than at, a microsecond
	// later (the precision), and carol's earlier.
	bobLater := want.Add(time.Microsecond)
	if err := s.SetSessionsValidAfter(ctx(t), bob.ID, bobLater); err != nil {
		t.Fatalf("SetSessionsValidAfter: %v", err)
	}
	if err := s.SetSessionsValidAfter(ctx(t), carol.ID, want.Add(-time.Hour)); err != nil {
		t.Fatalf("SetSessionsValidAfter: %v", err)
	}
	bob = byID(t, s, bob.ID)

	n, err := s.SetAllSessionsValidAfter(ctx(t), at)
	if err != nil {
		t.Fatalf("SetAllSessionsValidAfter: %v", err)
	}
	if n != 2 {
		t.Errorf("SetAllSessionsValidAfter changed %d users, want 2 (alice and carol)", n)
	}
	for _, u := range []user.User{alice, carol} {
		got := byID(t, s, u.ID)
		if got.SessionsValidAfter != want {
			t.Errorf("%s: SessionsValidAfter = %v, want %v (UTC, microseconds)", u.Username, got.SessionsValidAfter, want)
		}
		checkUpdated(t, u, got)
	}
	if got := byID(t, s, bob.ID); got != bob {
		t.Errorf("bob, revoked later already, changed: SessionsValidAfter %v, want %v kept", got.SessionsValidAfter, bobLater)
	}

	// Again at the same time: nothing moves.
	if n, err := s.SetAllSessionsValidAfter(ctx(t), at); err != nil || n != 0 {
		t.Errorf("SetAllSessionsValidAfter at the same time again = %d, %v; want 0", n, err)
	}
	if _, err := s.SetAllSessionsValidAfter(ctx(t), time.Time{}); err == nil {
		t.Error("SetAllSessionsValidAfter(zero) succeeded; it would clear nothing and move nothing")
	}
}

func testListIDs(t *testing.T, s user.Store) {
	if ids, err := s.ListIDs(ctx(t), 0, 10); err != nil || len(ids) != 0 {
		t.Fatalf("ListIDs of no users = %v, %v; want none", ids, err)
	}
	// Created in an order that is not the names' order, so a store that
	// orders by name shows.
	var all []int64
	for _, name := range []string{"mallory", "carol", "alice", "zed", "bob", "eve", "dave"} {
		all = append(all, create(t, s, name).ID)
	}
	slices.Sort(all)
	list := func(after int64, limit int) []int64 {
		t.Helper()
		ids, err := s.ListIDs(ctx(t), after, limit)
		if err != nil {
			t.Fatalf("ListIDs(%d, %d): %v", after, limit, err)
		}
		return ids
	}
	if got := list(0, 0); !slices.Equal(got, all) {
		t.Fatalf("ListIDs(0, no cap) = %v, want %v", got, all)
	}
	// Page by page, each page starting after the last ID of the one before.
	var paged []int64
	after := int64(0)
	for page := 0; ; page++ {
		ids := list(after, 3)
		if want := min(3, len(all)-len(paged)); len(ids) != want {
			t.Fatalf("page %d: %d IDs, want %d", page, len(ids), want)
		}
		if len(ids) == 0 {
			break
		}
		paged = append(paged, ids...)
		after = ids[len(ids)-1]
	}
	if !slices.Equal(paged, all) {
		t.Errorf("paged IDs %v, want %v", paged, all)
	}
	for _, tc := range []struct {
		after int64
		limit int
		want  []int64
	}{
		{all[2], 2, all[3:5]},
		{all[2] - 1, 1, all[2:3]}, // IDs need not be consecutive; after need not exist
		{-1, -1, all},
		{all[6], 5, nil},
	} {
		if got := list(tc.after, tc.limit); !slices.Equal(got, tc.want) {
			t.Errorf("ListIDs(%d, %d) = %v, want %v", tc.after, tc.limit, got, tc.want)
		}
	}
}

func testUpdatesOfMissingUser(t *testing.T, s user.Store) {
	u := create(t, s, "alice")
	missing := u.ID + 1000
	for name, err := range map[string]error{
		"SetPasswordHash":       s.SetPasswordHash(ctx(t), missing, "h"),
		"SetDisabled":           s.SetDisabled(ctx(t), missing, true),
		"SetSessionsValidAfter": s.SetSessionsValidAfter(ctx(t), missing, time.Now()),
	} {
		if !errors.Is(err, user.ErrNotFound) {
			t.Errorf("%s(missing user) = %v, want ErrNotFound", name, err)
		}
	}
	if got := byID(t, s, u.ID); got != u {
		t.Errorf("existing user changed: %+v", got)
	}
}

// testTimesRoundTrip checks stored times read back exactly as Create and the
// setters reported them, through both lookups and List.
func testTimesRoundTrip(t *testing.T, s user.Store) {
	created := create(t, s, "alice")
	checkTime(t, "CreatedAt", created.CreatedAt)
	checkTime(t, "UpdatedAt", created.UpdatedAt)
	if created.UpdatedAt != created.CreatedAt {
		t.Errorf("new user: UpdatedAt %v != CreatedAt %v", created.UpdatedAt, created.CreatedAt)
	}
	byName, err := s.ByUsername(ctx(t), "alice")
	if err != nil {
		t.Fatal(err)
	}
	users, err := s.List(ctx(t), user.ListOptions{})
	if err != nil || len(users) != 1 {
		t.Fatalf("List = %v, %v", users, err)
	}
	for what, got := range map[string]user.User{"ByID": byID(t, s, created.ID), "ByUsername": byName, "List": users[0]} {
		// == rather than Equal: the location must round-trip too.
		if got.CreatedAt != created.CreatedAt || got.UpdatedAt != created.UpdatedAt {
			t.Errorf("%s times = %v / %v, want %v / %v", what, got.CreatedAt, got.UpdatedAt, created.CreatedAt, created.UpdatedAt)
		}
	}
}

func testPing(t *testing.T, s user.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
