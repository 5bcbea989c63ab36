// Package factortest is the contract every factor.Store implementation must
// meet, as a test suite each implementation's tests run.
package factortest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/factor"
)

// MinUsers is how many distinct users newStore must return.
const MinUsers = 2

// Run checks the store contract. newStore must return an empty store of its
// own each time it is called, cleaned up with t, and the IDs of at least
// MinUsers users the store may attach factors to (in an SQL store, rows of
// the users table); subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) (factor.Store, []int64)) {
	tests := []struct {
		name string
		test func(t *testing.T, s factor.Store, alice, bob int64)
	}{
		{"NothingEnrolled", testNothingEnrolled},
		{"TOTPEnrolment", testTOTPEnrolment},
		{"NewPendingTOTPKeepsTheConfirmedOneUntilConfirmed", testNewPendingKeepsConfirmed},
		{"ConfirmWithoutPendingIsNotFound", testConfirmWithoutPending},
		{"TOTPStepIsAcceptedOnlyIfLater", testTOTPStepOnlyIfLater},
		{"TOTPStepWithoutConfirmedSecretIsNotFound", testTOTPStepWithoutSecret},
		{"FiftyConcurrentUsesOfOneTOTPStepAcceptOne", testConcurrentTOTPStep},
		{"RemoveTOTP", testRemoveTOTP},
		{"RecoveryCodesAreUsedOnce", testRecoveryCodesUsedOnce},
		{"FiftyConcurrentUsesOfOneRecoveryCodeAcceptOne", testConcurrentRecoveryCode},
		{"ReplaceRecoveryCodes", testReplaceRecoveryCodes},
		{"RemoveRecoveryCodesCountsUnused", testRemoveRecoveryCodes},
		{"WebAuthnHandleIsMadeOnce", testWebAuthnHandle},
		{"ConcurrentCallersGetTheSameWebAuthnHandle", testConcurrentWebAuthnHandle},
		{"PasskeysRoundTrip", testPasskeysRoundTrip},
		{"DuplicateCredentialIDIsRefused", testDuplicatePasskey},
		{"UsePasskey", testUsePasskey},
		{"RemovePasskeyOnlyOfItsOwner", testRemovePasskey},
		{"SummaryCounts", testSummaryCounts},
		{"ResetRemovesEveryFactorButTheHandle", testReset},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, users := newStore(t)
			if len(users) < MinUsers {
				t.Fatalf("newStore gave %d users, want at least %d", len(users), MinUsers)
			}
			tc.test(t, s, users[0], users[1])
		})
	}
}

// at is where the tests' times start: off UTC and off the microsecond, so
// a store that stores times without normalising them shows.
var at = time.Date(2030, 1, 2, 3, 4, 5, 123_456_789, time.FixedZone("UTC-7", -7*3600))

// stored is at as a store gives it back.
var stored = at.UTC().Truncate(time.Microsecond)

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func summary(t *testing.T, s factor.Store, userID int64) factor.Summary {
	t.Helper()
	sum, err := s.Summary(ctx(t), userID)
	if err != nil {
		t.Fatalf("Summary(%d): %v", userID, err)
	}
	return sum
}

func checkSummary(t *testing.T, s factor.Store, userID int64, want factor.Summary) {
	t.Helper()
	if got := summary(t, s, userID); got != want {
		t.Errorf("Summary(%d) = %+v, want %+v", userID, got, want)
	}
}

// enrolTOTP gives the user the confirmed secret, with step as the last
// step used.
func enrolTOTP(t *testing.T, s factor.Store, userID int64, secret string, step int64) {
	t.Helper()
	if err := s.PutPendingTOTP(ctx(t), userID, []byte(secret), at); err != nil {
		t.Fatalf("PutPendingTOTP: %v", err)
	}
	if err := s.ConfirmTOTP(ctx(t), userID, step, at); err != nil {
		t.Fatalf("ConfirmTOTP: %v", err)
	}
}

func checkSecret(t *testing.T, what string, got []byte, err error, want string) {
	t.Helper()
	switch {
	case want == "" && !errors.Is(err, factor.ErrNotFound):
		t.Errorf("%s = %q, %v; want ErrNotFound", what, got, err)
	case want != "" && (err != nil || string(got) != want):
		t.Errorf("%s = %q, %v; want %q", what, got, err, want)
	}
}

// checkTOTP checks the user's pending and confirmed secrets; "" means none.
func checkTOTP(t *testing.T, s factor.Store, userID int64, wantPending, wantConfirmed string) {
	t.Helper()
	got, err := s.PendingTOTP(ctx(t), userID)
	checkSecret(t, "PendingTOTP", got, err, wantPending)
	got, err = s.TOTP(ctx(t), userID)
	checkSecret(t, "TOTP", got, err, wantConfirmed)
}

func useStep(t *testing.T, s factor.Store, userID, step int64) bool {
	t.Helper()
	ok, err := s.UseTOTPStep(ctx(t), userID, step, at)
	if err != nil {
		t.Fatalf("UseTOTPStep(%d): %v", step, err)
	}
	return ok
}

// codeHashes returns n recovery code hashes, distinct per label.
func codeHashes(label string, n int) [][]byte {
	hashes := make([][]byte, n)
	for i := range hashes {
		h := sha256.Sum256(fmt.Appendf(nil, "%s-code-%d", label, i))
		hashes[i] = h[:]
	}
	return hashes
}

func replaceCodes(t *testing.T, s factor.Store, userID int64, hashes [][]byte) {
	t.Helper()
	if err := s.ReplaceRecoveryCodes(ctx(t), userID, hashes, at); err != nil {
		t.Fatalf("ReplaceRecoveryCodes: %v", err)
	}
}

func useCode(t *testing.T, s factor.Store, userID int64, hash []byte) (bool, int) {
	t.Helper()
	used, left, err := s.UseRecoveryCode(ctx(t), userID, hash, at)
	if err != nil {
		t.Fatalf("UseRecoveryCode: %v", err)
	}
	return used, left
}

func addPasskey(t *testing.T, s factor.Store, userID int64, name string, created time.Time) factor.Passkey {
	t.Helper()
	p, err := s.AddPasskey(ctx(t), factor.Passkey{
		UserID:       userID,
		Name:         name,
		CredentialID: []byte("credential-id-of-" + name),
		Credential:   []byte(`{"name":"` + name + `","signCount":0}`),
		CreatedAt:    created,
	})
	if err != nil {
		t.Fatalf("AddPasskey(%q): %v", name, err)
	}
	return p
}

func passkeys(t *testing.T, s factor.Store, userID int64) []factor.Passkey {
	t.Helper()
	keys, err := s.Passkeys(ctx(t), userID)
	if err != nil {
		t.Fatalf("Passkeys(%d): %v", userID, err)
	}
	return keys
}

func passkeyNames(keys []factor.Passkey) []string {
	names := make([]string, len(keys))
	for i, p := range keys {
		names[i] = p.Name
	}
	return names
}

// atOnce runs n calls of call together, released at the same instant, and
// returns how many returned true.
func atOnce(n int, call func() bool) int {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		won   int
	)
	for range n {
		wg.Go(func() {
			<-start
			if call() {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	return won
}

func testNothingEnrolled(t *testing.T, s factor.Store, alice, _ int64) {
	sum := summary(t, s, alice)
	if sum != (factor.Summary{}) || sum.Any() {
		t.Errorf("Summary of a user with nothing = %+v (Any %t), want zero", sum, sum.Any())
	}
	checkTOTP(t, s, alice, "", "")
	if keys := passkeys(t, s, alice); len(keys) != 0 {
		t.Errorf("Passkeys = %v, want none", keys)
	}
	if _, err := s.PasskeyByCredentialID(ctx(t), []byte("nope")); !errors.Is(err, factor.ErrNotFound) {
		t.Errorf("PasskeyByCredentialID(unknown): err = %v, want ErrNotFound", err)
	}
	if _, err := s.UserByWebAuthnHandle(ctx(t), make([]byte, 64)); !errors.Is(err, factor.ErrNotFound) {
		t.Errorf("UserByWebAuthnHandle(unknown): err = %v, want ErrNotFound", err)
	}
}

func testTOTPEnrolment(t *testing.T, s factor.Store, alice, bob int64) {
	if err := s.PutPendingTOTP(ctx(t), alice, []byte("first try"), at); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPendingTOTP(ctx(t), alice, []byte("seed-A"), at); err != nil {
		t.Fatal(err)
	}
	checkTOTP(t, s, alice, "seed-A", "")
	checkSummary(t, s, alice, factor.Summary{}) // pending is not enrolled

	if err := s.ConfirmTOTP(ctx(t), alice, 1000, at); err != nil {
		t.Fatalf("ConfirmTOTP: %v", err)
	}
	checkTOTP(t, s, alice, "", "seed-A")
	sum := summary(t, s, alice)
	if !sum.TOTP || !sum.Any() {
		t.Errorf("Summary after confirming = %+v, want TOTP", sum)
	}
	checkTOTP(t, s, bob, "", "") // nothing leaks to another user
}

func testNewPendingKeepsConfirmed(t *testing.T, s factor.Store, alice, _ int64) {
	enrolTOTP(t, s, alice, "old seed", 1000)
	if err := s.PutPendingTOTP(ctx(t), alice, []byte("new seed"), at); err != nil {
		t.Fatal(err)
	}
	checkTOTP(t, s, alice, "new seed", "old seed")
	if !useStep(t, s, alice, 1001) {
		t.Error("the confirmed secret stopped working while a new one was pending")
	}
	if err := s.ConfirmTOTP(ctx(t), alice, 2000, at); err != nil {
		t.Fatal(err)
	}
	checkTOTP(t, s, alice, "", "new seed")
	if useStep(t, s, alice, 2000) || !useStep(t, s, alice, 2001) {
		t.Error("after confirming the new secret, its confirming step should be used and the next one accepted")
	}
}

func testConfirmWithoutPending(t *testing.T, s factor.Store, alice, bob int64) {
	if err := s.ConfirmTOTP(ctx(t), alice, 1, at); !errors.Is(err, factor.ErrNotFound) {
		t.Errorf("ConfirmTOTP with nothing: err = %v, want ErrNotFound", err)
	}
	enrolTOTP(t, s, bob, "seed", 1)
	if err := s.ConfirmTOTP(ctx(t), bob, 2, at); !errors.Is(err, factor.ErrNotFound) {
		t.Errorf("ConfirmTOTP again without a new pending secret: err = %v, want ErrNotFound", err)
	}
	checkTOTP(t, s, bob, "", "seed")
}

func testTOTPStepOnlyIfLater(t *testing.T, s factor.Store, alice, bob int64) {
	enrolTOTP(t, s, alice, "seed", 100)
	enrolTOTP(t, s, bob, "seed", 100)
	for _, tc := range []struct {
		step int64
		want bool
	}{
		{100, false}, // used by the confirmation
		{99, false},
		{101, true},
		{101, false}, // replay
		{105, true},
		{103, false}, // earlier, after a later one
		{104, false},
		{106, true},
	} {
		if got := useStep(t, s, alice, tc.step); got != tc.want {
			t.Errorf("UseTOTPStep(%d) = %t, want %t", tc.step, got, tc.want)
		}
	}
	if !useStep(t, s, bob, 101) {
		t.Error("alice's steps were counted against bob")
	}
}

func testTOTPStepWithoutSecret(t *testing.T, s factor.Store, alice, _ int64) {
	if _, err := s.UseTOTPStep(ctx(t), alice, 1, at); !errors.Is(err, factor.ErrNotFound) {
		t.Errorf("UseTOTPStep with nothing: err = %v, want ErrNotFound", err)
	}
	if err := s.PutPendingTOTP(ctx(t), alice, []byte("seed"), at); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseTOTPStep(ctx(t), alice, 1, at); !errors.Is(err, factor.ErrNotFound) {
		t.Errorf("UseTOTPStep with only a pending secret: err = %v, want ErrNotFound", err)
	}
}

// testConcurrentTOTPStep is an attacker who saw one code replaying it from
// many connections (replicas) at the instant its owner uses it.
func testConcurrentTOTPStep(t *testing.T, s factor.Store, alice, _ int64) {
	enrolTOTP(t, s, alice, "seed", 1000)
	for round := range 5 {
		step := int64(1001 + round)
		won := atOnce(50, func() bool {
			ok, err := s.UseTOTPStep(ctx(t), alice, step, at)
			if err != nil {
				t.Errorf("round %d: UseTOTPStep: %v", round, err)
			}
			return ok
		})
		if won != 1 {
			t.Fatalf("round %d: %d of 50 concurrent uses of step %d accepted, want exactly 1", round, won, step)
		}
	}
}

func testRemoveTOTP(t *testing.T, s factor.Store, alice, bob int64) {
	if removed, err := s.RemoveTOTP(ctx(t), alice); err != nil || removed {
		t.Errorf("RemoveTOTP with nothing = %t, %v; want false", removed, err)
	}
	enrolTOTP(t, s, alice, "seed", 1)
	enrolTOTP(t, s, bob, "bob's seed", 1)
	if err := s.PutPendingTOTP(ctx(t), alice, []byte("pending"), at); err != nil {
		t.Fatal(err)
	}
	if removed, err := s.RemoveTOTP(ctx(t), alice); err != nil || !removed {
		t.Errorf("RemoveTOTP = %t, %v; want true", removed, err)
	}
	checkTOTP(t, s, alice, "", "")
	checkSummary(t, s, alice, factor.Summary{})
	checkTOTP(t, s, bob, "", "bob's seed")

	// A pending secret alone is something to remove too.
	if err := s.PutPendingTOTP(ctx(t), alice, []byte("pending"), at); err != nil {
		t.Fatal(err)
	}
	if removed, err := s.RemoveTOTP(ctx(t), alice); err != nil || !removed {
		t.Errorf("RemoveTOTP of a pending secret = %t, %v; want true", removed, err)
	}
	checkTOTP(t, s, alice, "", "")
}

func testRecoveryCodesUsedOnce(t *testing.T, s factor.Store, alice, bob int64) {
	codes := codeHashes("alice", 10)
	replaceCodes(t, s, alice, codes)
	replaceCodes(t, s, bob, codeHashes("bob", 10))
	checkSummary(t, s, alice, factor.Summary{RecoveryCodesLeft: 10})
	if summary(t, s, alice).Any() {
		t.Error("recovery codes alone count as a factor that can sign in")
	}

	if used, left := useCode(t, s, alice, codes[3]); !used || left != 9 {
		t.Errorf("first use = %t, %d left; want true, 9", used, left)
	}
	if used, left := useCode(t, s, alice, codes[3]); used || left != 9 {
		t.Errorf("second use = %t, %d left; want false, 9", used, left)
	}
	unknown := sha256.Sum256([]byte("not a code"))
	if used, left := useCode(t, s, alice, unknown[:]); used || left != 9 {
		t.Errorf("unknown code = %t, %d left; want false, 9", used, left)
	}
	if used, left := useCode(t, s, bob, codes[4]); used || left != 10 {
		t.Errorf("alice's code used by bob = %t, %d left; want false, 10", used, left)
	}
	if used, left := useCode(t, s, alice, codes[4]); !used || left != 8 {
		t.Errorf("another code = %t, %d left; want true, 8", used, left)
	}
}

// testConcurrentRecoveryCode is an attacker who stole one recovery code
// racing its owner, from many replicas at once.
func testConcurrentRecoveryCode(t *testing.T, s factor.Store, alice, _ int64) {
	codes := codeHashes("alice", 10)
	replaceCodes(t, s, alice, codes)
	for round := range 5 {
		var (
			mu        sync.Mutex
			winnerSaw []int
		)
		won := atOnce(50, func() bool {
			used, left, err := s.UseRecoveryCode(ctx(t), alice, codes[round], at)
			if err != nil {
				t.Errorf("round %d: UseRecoveryCode: %v", round, err)
			}
			if used {
				mu.Lock()
				winnerSaw = append(winnerSaw, left)
				mu.Unlock()
			}
			return used
		})
		if won != 1 {
			t.Fatalf("round %d: %d of 50 concurrent uses of one code accepted, want exactly 1", round, won)
		}
		if want := 10 - round - 1; winnerSaw[0] != want {
			t.Errorf("round %d: the accepted use says %d left, want %d", round, winnerSaw[0], want)
		}
	}
	checkSummary(t, s, alice, factor.Summary{RecoveryCodesLeft: 5})
}

func testReplaceRecoveryCodes(t *testing.T, s factor.Store, alice, bob int64) {
	old := codeHashes("old", 10)
	replaceCodes(t, s, alice, old)
	useCode(t, s, alice, old[0])
	// The same hashes for another user are theirs: codes are per user.
	replaceCodes(t, s, bob, old)

	fresh := codeHashes("new", 8)
	replaceCodes(t, s, alice, fresh)
	checkSummary(t, s, alice, factor.Summary{RecoveryCodesLeft: 8})
	if used, _ := useCode(t, s, alice, old[1]); used {
		t.Error("a replaced code still works")
	}
	if used, left := useCode(t, s, alice, fresh[0]); !used || left != 7 {
		t.Errorf("a new code = %t, %d left; want true, 7", used, left)
	}
	checkSummary(t, s, bob, factor.Summary{RecoveryCodesLeft: 10})

	replaceCodes(t, s, alice, nil)
	checkSummary(t, s, alice, factor.Summary{})
}

func testRemoveRecoveryCodes(t *testing.T, s factor.Store, alice, bob int64) {
	if n, err := s.RemoveRecoveryCodes(ctx(t), alice); err != nil || n != 0 {
		t.Errorf("RemoveRecoveryCodes with none = %d, %v; want 0", n, err)
	}
	codes := codeHashes("alice", 10)
	replaceCodes(t, s, alice, codes)
	replaceCodes(t, s, bob, codeHashes("bob", 10))
	useCode(t, s, alice, codes[0])
	useCode(t, s, alice, codes[1])
	if n, err := s.RemoveRecoveryCodes(ctx(t), alice); err != nil || n != 8 {
		t.Errorf("RemoveRecoveryCodes = %d, %v; want 8 (unused)", n, err)
	}
	checkSummary(t, s, alice, factor.Summary{})
	checkSummary(t, s, bob, factor.Summary{RecoveryCodesLeft: 10})
}

func webAuthnHandle(t *testing.T, s factor.Store, userID int64) []byte {
	t.Helper()
	h, err := s.WebAuthnHandle(ctx(t), userID)
	if err != nil {
		t.Fatalf("WebAuthnHandle(%d): %v", userID, err)
	}
	return h
}

func testWebAuthnHandle(t *testing.T, s factor.Store, alice, bob int64) {
	h := webAuthnHandle(t, s, alice)
	if len(h) != 64 {
		t.Errorf("handle has %d bytes, want 64", len(h))
	}
	if again := webAuthnHandle(t, s, alice); !bytes.Equal(again, h) {
		t.Error("the second call made a new handle")
	}
	if hb := webAuthnHandle(t, s, bob); bytes.Equal(hb, h) {
		t.Error("alice and bob have the same handle")
	}
	for _, u := range []int64{alice, bob} {
		got, err := s.UserByWebAuthnHandle(ctx(t), webAuthnHandle(t, s, u))
		if err != nil || got != u {
			t.Errorf("UserByWebAuthnHandle(handle of %d) = %d, %v", u, got, err)
		}
	}
}

func testConcurrentWebAuthnHandle(t *testing.T, s factor.Store, alice, _ int64) {
	var (
		mu      sync.Mutex
		handles [][]byte
	)
	atOnce(20, func() bool {
		h, err := s.WebAuthnHandle(ctx(t), alice)
		if err != nil {
			t.Errorf("WebAuthnHandle: %v", err)
			return false
		}
		mu.Lock()
		handles = append(handles, h)
		mu.Unlock()
		return true
	})
	for _, h := range handles[1:] {
		if !bytes.Equal(h, handles[0]) {
			t.Fatal("concurrent first calls got different handles")
		}
	}
}

func testPasskeysRoundTrip(t *testing.T, s factor.Store, alice, bob int64) {
	// Added out of creation order: Passkeys lists oldest first.
	laptop := addPasskey(t, s, alice, "laptop", at.Add(time.Hour))
	phone := addPasskey(t, s, alice, "phone", at)
	addPasskey(t, s, bob, "bob's key", at)
	if laptop.ID == 0 || phone.ID == 0 || laptop.ID == phone.ID {
		t.Errorf("IDs %d and %d, want distinct and non-zero", laptop.ID, phone.ID)
	}
	if phone.CreatedAt != stored || !phone.LastUsedAt.IsZero() {
		t.Errorf("AddPasskey returned times %v / %v, want %v / zero", phone.CreatedAt, phone.LastUsedAt, stored)
	}

	keys := passkeys(t, s, alice)
	if got := passkeyNames(keys); !slices.Equal(got, []string{"phone", "laptop"}) {
		t.Fatalf("Passkeys = %q, want phone then laptop", got)
	}
	for i, want := range []factor.Passkey{phone, laptop} {
		if !equalPasskeys(keys[i], want) {
			t.Errorf("Passkeys[%d] =\n%+v, want\n%+v", i, keys[i], want)
		}
	}
	got, err := s.PasskeyByCredentialID(ctx(t), laptop.CredentialID)
	if err != nil || !equalPasskeys(got, laptop) {
		t.Errorf("PasskeyByCredentialID =\n%+v, %v; want\n%+v", got, err, laptop)
	}
	checkSummary(t, s, alice, factor.Summary{Passkeys: 2})
	if !summary(t, s, alice).Any() {
		t.Error("Summary with passkeys: Any() = false")
	}
}

func equalPasskeys(a, b factor.Passkey) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.Name == b.Name &&
		bytes.Equal(a.CredentialID, b.CredentialID) && bytes.Equal(a.Credential, b.Credential) &&
		a.CreatedAt == b.CreatedAt && a.LastUsedAt == b.LastUsedAt
}

func testDuplicatePasskey(t *testing.T, s factor.Store, alice, bob int64) {
	p := addPasskey(t, s, alice, "laptop", at)
	for _, owner := range []int64{alice, bob} {
		dup := p
		dup.ID, dup.UserID, dup.Name = 0, owner, "again"
		if _, err := s.AddPasskey(ctx(t), dup); !errors.Is(err, factor.ErrDuplicate) {
			t.Errorf("AddPasskey of a registered credential ID for user %d: err = %v, want ErrDuplicate", owner, err)
		}
	}
	if got := passkeyNames(passkeys(t, s, alice)); !slices.Equal(got, []string{"laptop"}) {
		t.Errorf("alice's passkeys after the duplicates = %q, want [laptop]", got)
	}
	if n := len(passkeys(t, s, bob)); n != 0 {
		t.Errorf("bob has %d passkeys after the duplicate, want 0", n)
	}
}

func testUsePasskey(t *testing.T, s factor.Store, alice, _ int64) {
	p := addPasskey(t, s, alice, "laptop", at)
	usedAt := at.Add(90*time.Minute + 7)
	if err := s.UsePasskey(ctx(t), p.ID, []byte(`{"signCount":7}`), usedAt); err != nil {
		t.Fatalf("UsePasskey: %v", err)
	}
	got, err := s.PasskeyByCredentialID(ctx(t), p.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	want := p
	want.Credential = []byte(`{"signCount":7}`)
	want.LastUsedAt = usedAt.UTC().Truncate(time.Microsecond)
	if !equalPasskeys(got, want) {
		t.Errorf("after UsePasskey:\n%+v, want\n%+v", got, want)
	}
	if err := s.UsePasskey(ctx(t), p.ID+1000, []byte("{}"), usedAt); !errors.Is(err, factor.ErrNotFound) {
		t.Errorf("UsePasskey(unknown ID): err = %v, want ErrNotFound", err)
	}
}

func testRemovePasskey(t *testing.T, s factor.Store, alice, bob int64) {
	p := addPasskey(t, s, alice, "laptop", at)
	if removed, err := s.RemovePasskey(ctx(t), bob, p.ID); err != nil || removed {
		t.Errorf("bob removes alice's passkey = %t, %v; want false", removed, err)
	}
	if n := len(passkeys(t, s, alice)); n != 1 {
		t.Fatalf("alice has %d passkeys after bob's attempt, want 1", n)
	}
	if removed, err := s.RemovePasskey(ctx(t), alice, p.ID); err != nil || !removed {
		t.Errorf("RemovePasskey = %t, %v; want true", removed, err)
	}
	if removed, err := s.RemovePasskey(ctx(t), alice, p.ID); err != nil || removed {
		t.Errorf("RemovePasskey again = %t, %v; want false", removed, err)
	}
	if _, err := s.PasskeyByCredentialID(ctx(t), p.CredentialID); !errors.Is(err, factor.ErrNotFound) {
		t.Errorf("PasskeyByCredentialID after removal: err = %v, want ErrNotFound", err)
	}
}

func testSummaryCounts(t *testing.T, s factor.Store, alice, bob int64) {
	enrolTOTP(t, s, alice, "seed", 1)
	addPasskey(t, s, alice, "one", at)
	addPasskey(t, s, alice, "two", at)
	addPasskey(t, s, alice, "three", at)
	codes := codeHashes("alice", 10)
	replaceCodes(t, s, alice, codes)
	useCode(t, s, alice, codes[0])
	if err := s.PutPendingTOTP(ctx(t), bob, []byte("pending"), at); err != nil {
		t.Fatal(err)
	}
	checkSummary(t, s, alice, factor.Summary{TOTP: true, Passkeys: 3, RecoveryCodesLeft: 9})
	checkSummary(t, s, bob, factor.Summary{})
}

func testReset(t *testing.T, s factor.Store, alice, bob int64) {
	if sum, err := s.Reset(ctx(t), alice); err != nil || sum != (factor.Summary{}) {
		t.Errorf("Reset with nothing = %+v, %v; want zero", sum, err)
	}
	for _, u := range []int64{alice, bob} {
		enrolTOTP(t, s, u, "seed", 1)
		addPasskey(t, s, u, fmt.Sprint("key of ", u), at)
		codes := codeHashes(fmt.Sprint(u), 10)
		replaceCodes(t, s, u, codes)
		useCode(t, s, u, codes[0])
	}
	if err := s.PutPendingTOTP(ctx(t), alice, []byte("pending"), at); err != nil {
		t.Fatal(err)
	}
	handle := webAuthnHandle(t, s, alice)

	sum, err := s.Reset(ctx(t), alice)
	if want := (factor.Summary{TOTP: true, Passkeys: 1, RecoveryCodesLeft: 9}); err != nil || sum != want {
		t.Errorf("Reset = %+v, %v; want %+v", sum, err, want)
	}
	checkSummary(t, s, alice, factor.Summary{})
	checkTOTP(t, s, alice, "", "")
	if !bytes.Equal(webAuthnHandle(t, s, alice), handle) {
		t.Error("Reset changed the WebAuthn handle")
	}
	checkSummary(t, s, bob, factor.Summary{TOTP: true, Passkeys: 1, RecoveryCodesLeft: 9})

	// A pending secret alone is not an enrolled TOTP.
	if err := s.PutPendingTOTP(ctx(t), alice, []byte("pending"), at); err != nil {
		t.Fatal(err)
	}
	if sum, err := s.Reset(ctx(t), alice); err != nil || sum != (factor.Summary{}) {
		t.Errorf("Reset with only a pending secret = %+v, %v; want zero", sum, err)
	}
	checkTOTP(t, s, alice, "", "")
}
