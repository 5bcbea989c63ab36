// Package devicetrust issues and checks device cookies: a browser that has
// signed in to an account before carries a token, signed by the server and
// bound to that account's name, that earns it an attempt budget of its own.
// An attacker elsewhere who keeps the account's shared budget used up then
// cannot lock its owner out (OWASP, "Slow Down Online Guessing Attacks with
// Device Cookies").
//
// A token is "d1.<id>.<mac>": id is 128 random bits naming this device's
// budget, mac an HMAC-SHA256 over the lower-cased account name and id. The
// name is not in the token, so a token read off a shared computer does not
// say whose it is; Verify is given the name the visitor typed.
package devicetrust

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// KeySize is the size of the signing key, in bytes.
const KeySize = 32

// version prefixes every token, so the format can change.
const version = "d1"

// Signer issues and verifies tokens with one key.
type Signer struct {
	key []byte
}

// NewSigner returns a Signer with key (KeySize random bytes, the same on
// every replica).
func NewSigner(key []byte) *Signer {
	return &Signer{key: append([]byte(nil), key...)}
}

// Issue returns a fresh token for a browser that has just signed in as
// username.
func (s *Signer) Issue(username string) string {
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails on supported platforms.
	idText := base64.RawURLEncoding.EncodeToString(id[:])
	return version + "." + idText + "." + s.mac(username, idText)
}

// Verify reports whether token was issued by this Signer for username
// (ignoring case), and returns the device ID it names.
func (s *Signer) Verify(token, username string) (id string, ok bool) {
	if len(token) > 128 {
		return "", false
	}
	v, rest, _ := strings.Cut(token, ".")
	id, mac, found := strings.Cut(rest, ".")
	if v != version || !found || len(id) != 22 {
		return "", false
	}
	if !hmac.Equal([]byte(mac), []byte(s.mac(username, id))) {
		return "", false
	}
	return id, true
}

func (s *Signer) mac(username, id string) string {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(strings.ToLower(username)))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}
