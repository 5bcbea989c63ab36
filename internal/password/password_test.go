package password

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fast are cheap parameters: most tests check behaviour, not cost.
var fast = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func mustHash(t testing.TB, h *Hasher, plain string) string {
	t.Helper()
	encoded, err := h.Hash(context.Background(), plain)
	if err != nil {
		t.Fatalf("Hash(%q): %v", plain, err)
	}
	return encoded
}

func TestHashVerifyRoundTrip(t *testing.T) {
	h := NewHasher(fast, 2)
	encoded := mustHash(t, h, "correct horse battery staple")

	format := regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !format.MatchString(encoded) {
		t.Errorf("Hash = %q, want PHC argon2id with a 16-byte salt and 32-byte key", encoded)
	}

	ok, rehash, err := h.Verify(context.Background(), "correct horse battery staple", encoded)
	if err != nil || !ok || rehash {
		t.Errorf("Verify(right password) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestWrongPasswordFails(t *testing.T) {
	h := NewHasher(fast, 1)
	encoded := mustHash(t, h, "correct horse battery staple")
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple", "correct horse battery staple "} {
		ok, rehash, err := h.Verify(context.Background(), wrong, encoded)
		if err != nil || ok || rehash {
			t.Errorf("Verify(%q) = %v, %v, %v; want false, false, nil", wrong, ok, rehash, err)
		}
	}
}

func TestHashesHaveDistinctSalts(t *testing.T) {
	h := NewHasher(fast, 1)
	a, b := mustHash(t, h, "same password"), mustHash(t, h, "same password")
	if a == b {
		t.Fatalf("two hashes of one password are identical: %s", a)
	}
	pa, _ := parsePHC(a)
	pb, _ := parsePHC(b)
	if bytes.Equal(pa.salt, pb.salt) {
		t.Errorf("two hashes share the salt %x", pa.salt)
	}
}

// TestDefaultParams is the one test that pays for real parameters.
func TestDefaultParams(t *testing.T) {
	h := NewHasher(DefaultParams, 1)
	encoded := mustHash(t, h, "correct horse battery staple")
	if !strings.HasPrefix(encoded, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("Hash = %q, want m=19456,t=2,p=1", encoded)
	}
	if ok, rehash, err := h.Verify(context.Background(), "correct horse battery staple", encoded); err != nil || !ok || rehash {
		t.Errorf("Verify(own hash) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}

	// A hash from the days of m=12288,t=3: more passes, but less memory.
	old := NewHasher(Params{Memory: 12288, Time: 3, Threads: 1, SaltLen: 16, KeyLen: 32}, 1)
	oldHash := mustHash(t, old, "correct horse battery staple")
	if ok, rehash, err := h.Verify(context.Background(), "correct horse battery staple", oldHash); err != nil || !ok || !rehash {
		t.Errorf("Verify(m=12288,t=3 hash) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
}

func TestNeedsRehash(t *testing.T) {
	current := Params{Memory: 64, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 32}
	h := NewHasher(current, 1)
	for _, tc := range []struct {
		name   string
		stored Params
		want   bool
	}{
		{"same", current, false},
		{"stronger everywhere", Params{Memory: 128, Time: 3, Threads: 4, SaltLen: 32, KeyLen: 64}, false},
		{"less memory", Params{Memory: 32, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 32}, true},
		{"fewer passes", Params{Memory: 64, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32}, true},
		{"fewer threads", Params{Memory: 64, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}, true},
		{"shorter key", Params{Memory: 64, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 16}, true},
		{"shorter salt", Params{Memory: 64, Time: 2, Threads: 2, SaltLen: 8, KeyLen: 32}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored := mustHash(t, NewHasher(tc.stored, 1), "a password")
			ok, rehash, err := h.Verify(context.Background(), "a password", stored)
			if err != nil || !ok || rehash != tc.want {
				t.Errorf("Verify = %v, %v, %v; want true, %v, nil", ok, rehash, err, tc.want)
			}
			// A wrong password never asks for a rehash: there is nothing to hash.
			if ok, rehash, err := h.Verify(context.Background(), "wrong password", stored); err != nil || ok || rehash {
				t.Errorf("Verify(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

// goodPHC is a valid hash of "password" at m=64,t=1,p=1.
const goodPHC = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$YTg3YmQ4NzdkZmNhNTI1ZjY3ZDBiNmE2MTc5NWJiNjU"

func TestVerifyMalformedHash(t *testing.T) {
	h := NewHasher(fast, 1)
	salt, key := "c2FsdHNhbHRzYWx0c2FsdA", "YTg3YmQ4NzdkZmNhNTI1ZjY3ZDBiNmE2MTc5NWJiNjU"
	for _, tc := range []struct{ name, encoded string }{
		{"empty", ""},
		{"plain text", "password"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"no leading dollar", "argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"old version", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"missing hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"extra field", goodPHC + "$x"},
		{"params out of order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"two params", "$argon2id$v=19$m=64,t=1$" + salt + "$" + key},
		{"four params", "$argon2id$v=19$m=64,t=1,p=1,x=2$" + salt + "$" + key},
		{"zero memory", "$argon2id$v=19$m=0,t=1,p=1$" + salt + "$" + key},
		{"zero time", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"zero threads", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"256 threads", "$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key},
		{"huge memory", "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key},
		{"memory overflows", "$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + key},
		{"huge time", "$argon2id$v=19$m=64,t=100000,p=1$" + salt + "$" + key},
		{"negative", "$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key},
		{"plus sign", "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key},
		{"not a number", "$argon2id$v=19$m=lots,t=1,p=1$" + salt + "$" + key},
		{"padded base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"bad base64", "$argon2id$v=19$m=64,t=1,p=1$!!!!$" + key},
		{"short salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key},
		{"empty salt", "$argon2id$v=19$m=64,t=1,p=1$$" + key},
		{"short hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$YWJj"},
		{"empty hash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(context.Background(), "password", tc.encoded)
			if !errors.Is(err, ErrMalformedHash) || ok || rehash {
				t.Errorf("Verify(%q) = %v, %v, %v; want false, false, ErrMalformedHash", tc.encoded, ok, rehash, err)
			}
		})
	}

	if _, _, err := h.Verify(context.Background(), "password", goodPHC); err != nil {
		t.Errorf("Verify(well-formed hash) = %v", err)
	}
}

func TestTooLongRefusedWithoutHashing(t *testing.T) {
	h := NewHasher(fast, 1)
	encoded := mustHash(t, h, "a password")
	tooLong := strings.Repeat("x", MaxLength+1)

	// Hold the only slot: anything that tried to hash would end in ErrBusy.
	h.slots <- struct{}{}
	t.Cleanup(h.release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if _, err := h.Hash(ctx, tooLong); !errors.Is(err, ErrTooLong) {
		t.Errorf("Hash(%d bytes) = %v, want ErrTooLong", len(tooLong), err)
	}
	if ok, rehash, err := h.Verify(ctx, tooLong, encoded); !errors.Is(err, ErrTooLong) || ok || rehash {
		t.Errorf("Verify(%d bytes) = %v, %v, %v; want false, false, ErrTooLong", len(tooLong), ok, rehash, err)
	}
	if err := h.VerifyDummy(ctx, tooLong); !errors.Is(err, ErrTooLong) {
		t.Errorf("VerifyDummy(%d bytes) = %v, want ErrTooLong", len(tooLong), err)
	}
}

func TestMaxLengthPasswordWorks(t *testing.T) {
	h := NewHasher(fast, 1)
	longest := strings.Repeat("x", MaxLength)
	ok, _, err := h.Verify(context.Background(), longest, mustHash(t, h, longest))
	if err != nil || !ok {
		t.Errorf("Verify(%d bytes) = %v, %v; want true, nil", MaxLength, ok, err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plain string
		want  error
	}{
		{"empty", "", ErrTooShort},
		{"seven bytes", "1234567", ErrTooShort},
		{"eight bytes", "12345678", nil},
		{"four two-byte runes are eight bytes", "éééé", nil},
		{"three two-byte runes are six bytes", "ééé", ErrTooShort},
		{"max length", strings.Repeat("x", MaxLength), nil},
		{"one byte over", strings.Repeat("x", MaxLength+1), ErrTooLong},
		{"multibyte over in bytes", strings.Repeat("é", MaxLength/2+1), ErrTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.plain)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Validate(%d bytes) = %v, want %v", len(tc.plain), err, tc.want)
			}
		})
	}
}

func TestConcurrencyCap(t *testing.T) {
	h := NewHasher(fast, 1)
	encoded := mustHash(t, h, "a password")

	// Another hash holds the only slot.
	h.slots <- struct{}{}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	timingOut, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	for name, ctx := range map[string]context.Context{"cancelled": cancelled, "deadline": timingOut} {
		if _, err := h.Hash(ctx, "a password"); !errors.Is(err, ErrBusy) || !errors.Is(err, ctx.Err()) {
			t.Errorf("%s: Hash = %v, want ErrBusy wrapping %v", name, err, ctx.Err())
		}
		if ok, _, err := h.Verify(ctx, "a password", encoded); !errors.Is(err, ErrBusy) || ok {
			t.Errorf("%s: Verify = %v, %v, want false, ErrBusy", name, ok, err)
		}
		if err := h.VerifyDummy(ctx, "a password"); !errors.Is(err, ErrBusy) {
			t.Errorf("%s: VerifyDummy = %v, want ErrBusy", name, err)
		}
	}

	// A caller with time to spare queues until the slot frees up.
	done := make(chan error, 1)
	go func() {
		_, err := h.Hash(context.Background(), "a password")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Hash finished while the only slot was held (err=%v)", err)
	default:
	}
	h.release()
	if err := <-done; err != nil {
		t.Errorf("queued Hash = %v after the slot was released", err)
	}
}

func TestVerifyDummy(t *testing.T) {
	h := NewHasher(fast, 1)
	for range 2 {
		if err := h.VerifyDummy(context.Background(), "some password"); err != nil {
			t.Fatalf("VerifyDummy = %v", err)
		}
	}
	// The dummy hash costs what a real one does.
	if h.dummy.memory != fast.Memory || h.dummy.time != fast.Time || h.dummy.threads != fast.Threads ||
		len(h.dummy.key) != int(fast.KeyLen) || len(h.dummy.salt) != int(fast.SaltLen) {
		t.Errorf("dummy hash %s does not use the hasher's parameters %+v", h.dummy, fast)
	}
	if _, err := parsePHC(h.dummy.String()); err != nil {
		t.Errorf("dummy hash does not parse: %v", err)
	}
}

func TestInvalidParams(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Params
	}{
		{"zero", Params{}},
		{"no time", Params{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"no threads", Params{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32}},
		{"memory below 8 per thread", Params{Memory: 15, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32}},
		{"short salt", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32}},
		{"short key", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.p.Validate(); !errors.Is(err, ErrInvalidParams) {
				t.Errorf("Validate = %v, want ErrInvalidParams", err)
			}
			h := NewHasher(tc.p, 1)
			if _, err := h.Hash(context.Background(), "a password"); !errors.Is(err, ErrInvalidParams) {
				t.Errorf("Hash = %v, want ErrInvalidParams", err)
			}
			if err := h.VerifyDummy(context.Background(), "a password"); !errors.Is(err, ErrInvalidParams) {
				t.Errorf("VerifyDummy = %v, want ErrInvalidParams", err)
			}
		})
	}
	if err := DefaultParams.Validate(); err != nil {
		t.Errorf("DefaultParams.Validate() = %v", err)
	}
}

func FuzzParsePHC(f *testing.F) {
	for _, seed := range []string{
		goodPHC,
		"",
		"$",
		"$$$$$",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$YTg3YmQ4NzdkZmNhNTI1ZjY3ZDBiNmE2MTc5NWJiNjU",
		"$argon2id$v=19$m=0,t=0,p=0$$",
		"$argon2id$v=19$m=4294967296,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$YWJj",
		"$argon2id$v=19$m=64,t=1,p=1,$c2FsdA==$",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("parsePHC(%q) = %v, want ErrMalformedHash", s, err)
			}
			return
		}
		// Whatever parses re-encodes to something that parses to the same.
		again, err := parsePHC(p.String())
		if err != nil {
			t.Fatalf("parsePHC(%q) ok, but its re-encoding %q does not parse: %v", s, p.String(), err)
		}
		if again.String() != p.String() {
			t.Fatalf("re-encoding is not stable: %q then %q", p.String(), again.String())
		}
	})
}

func BenchmarkHashDefault(b *testing.B) {
	h := NewHasher(DefaultParams, 1)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}
