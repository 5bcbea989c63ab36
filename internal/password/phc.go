package password

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// phc is a parsed argon2id PHC string:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//
// with salt and key in unpadded standard base64.
type phc struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// String encodes p in PHC form.
func (p phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, base64.RawStdEncoding.EncodeToString(p.salt), base64.RawStdEncoding.EncodeToString(p.key))
}

// parsePHC parses an argon2id PHC string strictly: only the form String
// produces, version 19, and costs within the limits hashing accepts, so a
// corrupted stored hash fails cleanly instead of costing unbounded work.
func parsePHC(s string) (phc, error) {
	fail := func(why string) (phc, error) {
		return phc{}, fmt.Errorf("%w: %s", ErrMalformedHash, why)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return fail("want $argon2id$v=19$m=…,t=…,p=…$salt$hash")
	}
	if parts[1] != "argon2id" {
		return fail("algorithm is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return fail("unsupported version")
	}

	costs := strings.Split(parts[3], ",")
	if len(costs) != 3 {
		return fail("want parameters m,t,p")
	}
	var p phc
	for i, c := range []struct {
		key   string
		bits  int
		lo    uint64
		hi    uint64
		store func(uint64)
	}{
		{"m", 32, 1, maxMemory, func(v uint64) { p.memory = uint32(v) }},
		{"t", 32, 1, maxTime, func(v uint64) { p.time = uint32(v) }},
		{"p", 8, 1, 255, func(v uint64) { p.threads = uint8(v) }},
	} {
		val, ok := strings.CutPrefix(costs[i], c.key+"=")
		if !ok {
			return fail("want parameters m,t,p")
		}
		n, err := strconv.ParseUint(val, 10, c.bits)
		if err != nil || n < c.lo || n > c.hi {
			return fail(fmt.Sprintf("parameter %s out of range", c.key))
		}
		c.store(n)
	}

	var err error
	if p.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil {
		return fail("salt is not base64")
	}
	if len(p.salt) < minSaltLen || len(p.salt) > maxSaltLen {
		return fail("salt length out of range")
	}
	if p.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil {
		return fail("hash is not base64")
	}
	if len(p.key) < minKeyLen || len(p.key) > maxKeyLen {
		return fail("hash length out of range")
	}
	return p, nil
}
