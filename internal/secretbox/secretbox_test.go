package secretbox_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/secretbox"
)

// key returns a distinct 32-byte key for each fill byte.
func key(fill byte) []byte { return bytes.Repeat([]byte{fill}, secretbox.MinKeyBytes) }

func newBox(t *testing.T, keys ...[]byte) *secretbox.Box {
	t.Helper()
	b, err := secretbox.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	b := newBox(t, key(1))
	for _, plain := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("seed"), 100)} {
		sealed := b.Seal("totp-secret", plain)
		got, stale, err := b.Open("totp-secret", sealed)
		if err != nil || stale || !bytes.Equal(got, plain) {
			t.Errorf("Open(Seal(%q)) = %q, stale=%t, %v", plain, got, stale, err)
		}
	}
}

func TestSealUsesAFreshNonceEachTime(t *testing.T) {
	b := newBox(t, key(1))
	if bytes.Equal(b.Seal("p", []byte("same")), b.Seal("p", []byte("same"))) {
		t.Error("sealing the same value twice gave the same bytes")
	}
}

func TestOpenRejectsAnotherPurpose(t *testing.T) {
	b := newBox(t, key(1))
	sealed := b.Seal("totp-secret", []byte("seed"))
	if _, _, err := b.Open("signin-state", sealed); !errors.Is(err, secretbox.ErrOpen) {
		t.Errorf("Open with another purpose: err = %v, want ErrOpen", err)
	}
}

func TestOpenRejectsEveryTamperedByte(t *testing.T) {
	b := newBox(t, key(1))
	sealed := b.Seal("p", []byte("seed"))
	for i := range sealed {
		tampered := bytes.Clone(sealed)
		tampered[i] ^= 0x01
		if got, _, err := b.Open("p", tampered); !errors.Is(err, secretbox.ErrOpen) {
			t.Errorf("byte %d flipped: Open = %q, %v; want ErrOpen", i, got, err)
		}
	}
	for _, short := range [][]byte{nil, sealed[:1], sealed[:5], sealed[:len(sealed)-1]} {
		if _, _, err := b.Open("p", short); !errors.Is(err, secretbox.ErrOpen) {
			t.Errorf("truncated to %d bytes: err = %v, want ErrOpen", len(short), err)
		}
	}
}

// TestOpenDoesNotMixSealAndSealString checks a value from Seal cannot be
// passed off as one from SealString (its first bytes read as an expiry).
func TestOpenDoesNotMixSealAndSealString(t *testing.T) {
	b := newBox(t, key(1))
	text := base64.RawURLEncoding.EncodeToString(b.Seal("p", []byte("0123456789")))
	if _, err := b.OpenString("p", text, time.Now()); !errors.Is(err, secretbox.ErrOpen) {
		t.Errorf("OpenString of a Seal value: err = %v, want ErrOpen", err)
	}
	sealed, err := base64.RawURLEncoding.DecodeString(b.SealString("p", []byte("x"), time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Open("p", sealed); !errors.Is(err, secretbox.ErrOpen) {
		t.Errorf("Open of a SealString value: err = %v, want ErrOpen", err)
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := key(1), key(2)
	sealed := newBox(t, oldKey).Seal("p", []byte("seed"))

	rotated := newBox(t, newKey, oldKey)
	got, stale, err := rotated.Open("p", sealed)
	if err != nil || !stale || string(got) != "seed" {
		t.Fatalf("Open under [new, old] = %q, stale=%t, %v; want seed, stale", got, stale, err)
	}
	resealed := rotated.Seal("p", got)
	if got, stale, err := rotated.Open("p", resealed); err != nil || stale || string(got) != "seed" {
		t.Errorf("Open of the re-sealed value = %q, stale=%t, %v; want seed, not stale", got, stale, err)
	}

	retired := newBox(t, newKey)
	if _, _, err := retired.Open("p", sealed); !errors.Is(err, secretbox.ErrOpen) {
		t.Errorf("Open under [new] of a value sealed under old: err = %v, want ErrOpen", err)
	}
	if got, _, err := retired.Open("p", resealed); err != nil || string(got) != "seed" {
		t.Errorf("Open under [new] of the re-sealed value = %q, %v", got, err)
	}
}

func TestSealStringExpiry(t *testing.T) {
	b := newBox(t, key(1))
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	expires := now.Add(10 * time.Minute)
	text := b.SealString("signin", []byte("state"), expires)
	if strings.ContainsAny(text, "+/=") {
		t.Errorf("SealString = %q, want unpadded base64url", text)
	}
	for _, tc := range []struct {
		at      time.Time
		wantErr error
	}{
		{now, nil},
		{expires.Add(-time.Millisecond), nil},
		{expires, secretbox.ErrExpired},
		{expires.Add(time.Hour), secretbox.ErrExpired},
	} {
		got, err := b.OpenString("signin", text, tc.at)
		if !errors.Is(err, tc.wantErr) || (err == nil && string(got) != "state") {
			t.Errorf("OpenString at %v = %q, %v; want state, %v", tc.at, got, err, tc.wantErr)
		}
	}
	if _, err := b.OpenString("other", text, now); !errors.Is(err, secretbox.ErrOpen) {
		t.Errorf("OpenString with another purpose: err = %v, want ErrOpen", err)
	}
	if _, err := b.OpenString("signin", "not base64!", now); !errors.Is(err, secretbox.ErrOpen) {
		t.Errorf("OpenString of junk: err = %v, want ErrOpen", err)
	}
}

func TestParseKeys(t *testing.T) {
	k32 := key(7)
	std := base64.StdEncoding.EncodeToString(k32)
	url := base64.RawURLEncoding.EncodeToString(append(bytes.Repeat([]byte{0xfb}, 32), 0xff)) // has - and _
	short := base64.StdEncoding.EncodeToString(make([]byte, 31))

	for _, tc := range []struct {
		name, in string
		want     int    // keys on success
		wantErr  string // part of the message; "" for success
	}{
		{"one standard padded", std, 1, ""},
		{"one standard unpadded", strings.TrimRight(std, "="), 1, ""},
		{"URL alphabet", url, 1, ""},
		{"two with spaces", std + " , " + url, 2, ""},
		{"empty", "", 0, "no secret key"},
		{"blank", "   ", 0, "no secret key"},
		{"short", short, 0, "key 1 of 1: 31 bytes"},
		{"bad base64", "!!!!" + std, 0, "key 1 of 1: not valid base64"},
		{"mixed alphabets", "+" + url, 0, "key 1 of 1: not valid base64"},
		{"one good one bad", std + ",%%%", 0, "key 2 of 2: not valid base64"},
		{"trailing comma", std + ",", 0, "key 2 of 2: empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := secretbox.ParseKeys(tc.in)
			if tc.wantErr == "" {
				if err != nil || len(keys) != tc.want {
					t.Fatalf("ParseKeys = %d keys, %v; want %d", len(keys), err, tc.want)
				}
				if _, err := secretbox.New(keys); err != nil {
					t.Errorf("New(ParseKeys(...)): %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseKeys err = %v, want one saying %q", err, tc.wantErr)
			}
			// No key, good or bad, is echoed back.
			for _, part := range strings.Split(tc.in, ",") {
				if p := strings.TrimSpace(part); len(p) >= 4 && strings.Contains(err.Error(), p) {
					t.Errorf("error %q quotes the key %q", err, p)
				}
			}
		})
	}
	if keys, err := secretbox.ParseKeys(std); err == nil && !bytes.Equal(keys[0], k32) {
		t.Errorf("ParseKeys decoded %x, want %x", keys[0], k32)
	}
}

func TestNewRejectsShortOrMissingKeys(t *testing.T) {
	for _, keys := range [][][]byte{nil, {make([]byte, 31)}, {key(1), make([]byte, 16)}} {
		if _, err := secretbox.New(keys); err == nil {
			t.Errorf("New(%d keys) succeeded, want an error", len(keys))
		}
	}
	if _, err := secretbox.New([][]byte{make([]byte, 64)}); err != nil {
		t.Errorf("New with a 64-byte key: %v", err)
	}
}

func FuzzOpenString(f *testing.F) {
	b, err := secretbox.New([][]byte{key(1), key(2)})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Add(b.SealString("p", []byte("state"), now.Add(time.Hour)))
	f.Add(b.SealString("p", nil, now.Add(-time.Hour)))
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, text string) {
		plain, err := b.OpenString("p", text, now)
		if err != nil && plain != nil {
			t.Errorf("OpenString returned %q with error %v", plain, err)
		}
		if err != nil && !errors.Is(err, secretbox.ErrOpen) && !errors.Is(err, secretbox.ErrExpired) {
			t.Errorf("OpenString error %v is neither ErrOpen nor ErrExpired", err)
		}
	})
}
