package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// cookieName carries the token, with the same prefix rules as Hallpass's
// session cookie.
const cookieName = "__Host-token"

const (
	issuer   = "hallpass-jwt-baseline"
	audience = "hallpass"
)

// identity is what a token says about its holder: what Hallpass's session
// holds for the home page.
type identity struct {
	ID       int64
	Username string
	Role     string
	Replica  string
}

// claims are a typical token's: the registered ones (iss, sub, aud, exp,
// iat, jti) plus the name and role the page shows and the replica that
// issued it.
type claims struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Replica string `json:"rep"`
	jwt.RegisteredClaims
}

// tokens issues and verifies HS256 tokens with one key.
type tokens struct {
	key      []byte
	lifetime time.Duration
	now      func() time.Time
	parser   *jwt.Parser
}

func newTokens(key []byte, lifetime time.Duration, now func() time.Time) *tokens {
	return &tokens{
		key: key, lifetime: lifetime, now: now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(now),
		),
	}
}

func (t *tokens) issue(id identity) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("token id: %w", err)
	}
	now := t.now()
	c := claims{
		Name: id.Username, Role: id.Role, Replica: id.Replica,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   strconv.FormatInt(id.ID, 10),
			Audience:  jwt.ClaimStrings{audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(t.lifetime)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// verify checks the signature (HS256 only), issuer, audience, issue time and
// expiry, and returns the claims.
func (t *tokens) verify(s string) (*claims, error) {
	var c claims
	if _, err := t.parser.ParseWithClaims(s, &c, func(*jwt.Token) (any, error) { return t.key, nil }); err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	return &c, nil
}
