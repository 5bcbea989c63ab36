package session

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
)

// Shard tags: how one user's sessions stay on one Redis Cluster node.
//
// Redis Cluster runs a script only when every key it touches lies in one
// hash slot, and a user's sessions, their tombstones, the user's index and
// revocation time are touched together (create.lua, revoke_user.lua). So
// each user has a shard tag, and every one of those keys carries it as a
// Redis hash tag ({tag}), which is all Redis hashes. The tag must be known
// from the cookie alone (a page view has nothing else), so the cookie
// token carries it in front, "<tag>.<scs token>", and the store key
// derived from the token starts with "{<tag>}".
//
// The tag is derived from the user ID (UserTag), so a user's sessions
// always meet their index, and it is a hash, not the ID: a cookie does not
// say who it belongs to. ShardTags tags spread users over up to that many
// slots: enough that each of up to a few dozen primaries gets an even share
// (the count per primary varies by about the square root of its share), few
// enough that the global listings, one call per tag, stay cheap (Count and
// Recent, the admin pages; see RedisStore.Count).
const ShardTags = 256

// tagLen is the length of a shard tag: two lowercase hex digits.
const tagLen = 2

// UserTag returns userID's shard tag: the first byte of a SHA-256 of the
// ID, in hex.
func UserTag(userID int64) string {
	sum := sha256.Sum256([]byte("hallpass/shard/" + strconv.FormatInt(userID, 10)))
	return hex.EncodeToString(sum[:1])
}

// ShardTag returns tag i of ShardTags (0 <= i < ShardTags).
func ShardTag(i int) string { return hex.EncodeToString([]byte{byte(i)}) }

// RedisShardKey is a key of the shard with tag (its global index): the
// Redis Cluster slot of every key of the shard's users is this key's.
func RedisShardKey(tag string) string { return globalIndex(tag) }

// validTag reports whether tag is a shard tag UserTag can return.
func validTag(tag string) bool {
	if len(tag) != tagLen {
		return false
	}
	for i := range tagLen {
		if c := tag[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// KeyTag returns the shard tag a store key carries ("{<tag>}" in front),
// and whether it carries one.
func KeyTag(key string) (string, bool) {
	if len(key) < tagLen+2 || key[0] != '{' || key[tagLen+1] != '}' || !validTag(key[1:tagLen+1]) {
		return "", false
	}
	return key[1 : tagLen+1], true
}

// CookieToken is the cookie value of a session whose user has tag and whose
// scs token is raw: "<tag>.<raw>".
func CookieToken(tag, raw string) string { return tag + "." + raw }

// keyHashLen is how many base64url characters of the token's SHA-256 a
// store key keeps: 21, 126 bits, one short of the 128 bits' 22, so that a
// session key's name, "hp:s:{3f}" and the hash, is 30 bytes and Redis
// keeps it in a 32-byte allocation rather than 40 (measured by
// BenchmarkRedisMemoryPerSession: the tag cost 18 B per session, over the
// 512 B target). 126 bits still make a collision between two live
// sessions' keys (Create refuses it) as unlikely as between 128.
const keyHashLen = 21

// StoreKey is the key under which the session of a cookie token is stored:
// its shard tag as a Redis hash tag, then the first 126 bits of the
// token's SHA-256, unpadded base64url. A store, its dumps and its replicas
// never hold a raw token, and the key cannot be turned back into one. A
// token without a tag (never issued since tags came in) gets a key without
// one, which no Create accepts, so it finds nothing.
func StoreKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	hash := base64.RawURLEncoding.EncodeToString(sum[:16])[:keyHashLen]
	if tag, ok := tokenTag(token); ok {
		return "{" + tag + "}" + hash
	}
	return hash
}

// tokenTag returns the shard tag in front of a cookie token.
func tokenTag(token string) (string, bool) {
	if len(token) < tagLen+1 || token[tagLen] != '.' || !validTag(token[:tagLen]) {
		return "", false
	}
	return token[:tagLen], true
}
