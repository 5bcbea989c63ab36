// Package secretbox encrypts small secrets (TOTP seeds, sign-in state
// handed to the browser) with AES-256-GCM under keys from the operator's
// HALLPASS_SECRET_KEY, which lives outside the database: a database dump
// alone cannot be turned back into the secrets. Several keys may be given
// for rotation: the first seals, every one opens.
package secretbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MinKeyBytes is the shortest key accepted: 256 bits, the strength of the
// AES-256 key made from it.
const MinKeyBytes = 32

// Errors returned by Open and OpenString; check them with errors.Is. Their
// messages never hold key material or the sealed text.
var (
	// ErrOpen means the sealed value cannot be opened: not sealed by this
	// package, sealed for another purpose, under a key the box does not
	// hold, or altered.
	ErrOpen = errors.New("cannot open sealed value")
	// ErrExpired means a sealed string opened but its expiry has passed.
	ErrExpired = errors.New("sealed value expired")
)

// The sealed layout: version, key ID, then what the AEAD returns (nonce,
// ciphertext, tag).
const (
	version    byte = 1
	idLen           = 4
	headerLen       = 1 + idLen
	expiryLen       = 8 // SealString's expiry, Unix milliseconds, big-endian
	aesKeySize      = 32
)

// What a sealed value is for, bound into the additional data next to the
// caller's purpose, so a value from Seal can never be opened by OpenString
// (which would read its first bytes as an expiry), nor the reverse.
const (
	kindBytes    byte = 'b'
	kindExpiring byte = 'e'
)

// HKDF info labels. The operator's key is used only as HKDF input, never
// directly, so the AES key and the public key ID are independent values and
// a future use of the same setting can take a label of its own.
const (
	aesKeyInfo = "hallpass secretbox v1 AES-256-GCM key"
	keyIDInfo  = "hallpass secretbox v1 key ID"
)

// ParseKeys reads HALLPASS_SECRET_KEY: comma-separated keys, each base64
// (standard or URL alphabet, padded or not) of at least MinKeyBytes bytes;
// spaces around a key are ignored. Empty or short keys are an error that
// says which key and why, never echoing it.
func ParseKeys(s string) ([][]byte, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no secret key given")
	}
	parts := strings.Split(s, ",")
	keys := make([][]byte, 0, len(parts))
	var errs []error
	for i, part := range parts {
		key, err := decodeKey(strings.TrimSpace(part))
		if err != nil {
			errs = append(errs, fmt.Errorf("secret key %d of %d: %w", i+1, len(parts), err))
			continue
		}
		keys = append(keys, key)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return keys, nil
}

// decodeKey decodes one key. Its errors describe the key without quoting
// it: encoding/base64's own error is not passed on, so no byte of the key
// can reach a log line.
func decodeKey(text string) ([]byte, error) {
	if text == "" {
		return nil, errors.New("empty")
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(text, "-_") {
		enc = base64.RawURLEncoding
	}
	key, err := enc.DecodeString(strings.TrimRight(text, "="))
	if err != nil {
		return nil, errors.New("not valid base64 (standard or URL alphabet)")
	}
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("%d bytes after base64 decoding, want at least %d", len(key), MinKeyBytes)
	}
	return key, nil
}

// Box seals and opens values. It is safe for concurrent use.
type Box struct {
	keys []boxKey // keys[0] seals
}

type boxKey struct {
	id   [idLen]byte
	aead cipher.AEAD
}

// New returns a box that seals with keys[0] and opens with any of keys.
// Each key must have at least MinKeyBytes bytes.
func New(keys [][]byte) (*Box, error) {
	if len(keys) == 0 {
		return nil, errors.New("secretbox: no key")
	}
	b := &Box{keys: make([]boxKey, 0, len(keys))}
	for i, key := range keys {
		if len(key) < MinKeyBytes {
			return nil, fmt.Errorf("secretbox: key %d has %d bytes, want at least %d", i+1, len(key), MinKeyBytes)
		}
		k, err := newBoxKey(key)
		if err != nil {
			return nil, fmt.Errorf("secretbox: key %d: %w", i+1, err)
		}
		b.keys = append(b.keys, k)
	}
	return b, nil
}

// newBoxKey derives the AES key and the key ID from an operator key.
//
// HKDF-SHA256 rather than the key itself because keys of any length from 32
// bytes up are accepted and AES-256 needs exactly 32, and rather than a bare
// SHA-256 because HKDF's info label separates the two values derived from one
// key: the key ID, written in clear in every sealed value, says nothing
// about the AES key.
func newBoxKey(key []byte) (boxKey, error) {
	aesKey, err := hkdf.Key(sha256.New, key, nil, aesKeyInfo, aesKeySize)
	if err != nil {
		return boxKey{}, fmt.Errorf("derive AES key: %w", err)
	}
	id, err := hkdf.Key(sha256.New, key, nil, keyIDInfo, idLen)
	if err != nil {
		return boxKey{}, fmt.Errorf("derive key ID: %w", err)
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return boxKey{}, fmt.Errorf("AES: %w", err)
	}
	// A random 96-bit nonce per seal: safe for 2^32 seals under one key,
	// far beyond what enrolling authenticators and signing in will do
	// before the operator rotates it.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return boxKey{}, fmt.Errorf("GCM: %w", err)
	}
	k := boxKey{aead: aead}
	copy(k.id[:], id)
	return k, nil
}

// Seal encrypts plain, binding it to purpose (additional data: a sealed
// TOTP seed cannot be opened as a sign-in state). Output: 1-byte version,
// 4-byte key ID (derived from the sealing key), 12-byte nonce,
// ciphertext+tag.
func (b *Box) Seal(purpose string, plain []byte) []byte {
	return b.seal(kindBytes, purpose, plain)
}

// Open decrypts with whichever of the box's keys sealed it; stale reports
// that it was not the first key, so the caller should seal it again. Any
// problem is ErrOpen.
func (b *Box) Open(purpose string, sealed []byte) (plain []byte, stale bool, err error) {
	return b.open(kindBytes, purpose, sealed)
}

// SealString is Seal for cookies and forms: unpadded base64url text, with
// expires sealed inside, checked by OpenString.
func (b *Box) SealString(purpose string, plain []byte, expires time.Time) string {
	payload := make([]byte, expiryLen, expiryLen+len(plain))
	binary.BigEndian.PutUint64(payload, uint64(expires.UnixMilli()))
	payload = append(payload, plain...)
	return base64.RawURLEncoding.EncodeToString(b.seal(kindExpiring, purpose, payload))
}

// OpenString opens what SealString made: ErrOpen if it cannot, ErrExpired
// if it opens but now is at or past its expiry. A value sealed under an old
// key opens as well; being short-lived, it is not re-sealed.
func (b *Box) OpenString(purpose, text string, now time.Time) ([]byte, error) {
	sealed, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrOpen)
	}
	payload, _, err := b.open(kindExpiring, purpose, sealed)
	if err != nil {
		return nil, err
	}
	if len(payload) < expiryLen {
		return nil, fmt.Errorf("%w: no expiry", ErrOpen) // sealed by us, so not reachable but by a bug
	}
	expires := time.UnixMilli(int64(binary.BigEndian.Uint64(payload)))
	if !now.Before(expires) {
		return nil, ErrExpired
	}
	return payload[expiryLen:], nil
}

func (b *Box) seal(kind byte, purpose string, plain []byte) []byte {
	k := b.keys[0]
	out := make([]byte, headerLen, headerLen+len(plain)+k.aead.Overhead())
	out[0] = version
	copy(out[1:], k.id[:])
	return k.aead.Seal(out, nil, plain, additionalData(out[:headerLen], kind, purpose))
}

func (b *Box) open(kind byte, purpose string, sealed []byte) ([]byte, bool, error) {
	if len(sealed) < headerLen || sealed[0] != version {
		return nil, false, fmt.Errorf("%w: not a sealed value", ErrOpen)
	}
	header, body := sealed[:headerLen], sealed[headerLen:]
	ad := additionalData(header, kind, purpose)
	known := false
	// Four bytes of ID can collide between two keys, so every key with the
	// ID is tried; GCM's tag tells the right one.
	for i, k := range b.keys {
		if !bytes.Equal(k.id[:], header[1:]) {
			continue
		}
		known = true
		plain, err := k.aead.Open(nil, nil, body, ad)
		if err == nil {
			return plain, i > 0, nil
		}
	}
	if !known {
		return nil, false, fmt.Errorf("%w: sealed under a key this box does not hold", ErrOpen)
	}
	return nil, false, fmt.Errorf("%w: altered, or sealed for another purpose", ErrOpen)
}

// additionalData is what GCM authenticates besides the plaintext: the
// header, so a value cannot be relabelled with another key ID or version;
// the kind; and the purpose.
func additionalData(header []byte, kind byte, purpose string) []byte {
	ad := make([]byte, 0, len(header)+1+len(purpose))
	ad = append(ad, header...)
	ad = append(ad, kind)
	return append(ad, purpose...)
}
