package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/alexedwards/scs/v2"
)

// codec encodes session data for the store. A signed-in session holds only
// the values Hallpass puts there, so it is written in a compact binary form
// (about 70 bytes instead of gob's 380 for a typical session: that is what
// keeps a session with its index entries under 512 bytes of Redis memory).
// Times are whole milliseconds: the created and last-seen values are Unix
// milliseconds already, and the deadline is rounded down to one. Anything
// else falls back to scs's gob codec, behind a different tag.
type codec struct {
	fallback scs.GobCodec
}

// Format tags: the first byte of every encoded session.
const (
	tagGob     byte = 0
	tagCompact byte = 1
	// tagCompactRemembered is the compact form of a session whose user
	// asked to stay signed in: the flag costs no byte, and sessions written
	// before it existed read as not remembered.
	tagCompactRemembered byte = 2
	// tagCompactFacts is the compact form of a session that also records
	// how the user signed in and when they last proved it (every session
	// Login has written since): a flags varint, the last proof as an offset
	// from created, and the method as one more string. Sessions written
	// under tags 1 and 2 read as they always did, without those values.
	tagCompactFacts byte = 3
)

// Flags of tagCompactFacts. Any other bit is corrupt data: a later format
// must take a new tag, so this code never drops a fact it cannot read.
const (
	flagRemembered uint64 = 1 << 0
	flagMustEnrol  uint64 = 1 << 1
	knownFlags            = flagRemembered | flagMustEnrol
)

var errCorruptSession = errors.New("session: corrupt session data")

// compactInts and compactStrings are the values of the compact form, in
// their order on the wire.
var (
	compactInts    = [...]string{keyUserID, keyCreated, keySeen}
	compactStrings = [...]string{keyUsername, keyRole, keyReplica, keyIP, keyDevice}
)

// On the wire, after the tag: created (Unix ms), last seen and the deadline
// as offsets from created in ms, the user ID, then the strings, each
// length-prefixed. Offsets keep the varints short. Under tagCompactFacts the
// user ID is followed by the flags (uvarint) and the last proof of sign-in
// as an offset from created, and the strings by the method (see
// knownMethods).

// maxCompactString bounds each string on decode, so corrupt data cannot
// ask for a huge allocation.
const maxCompactString = 1 << 12

// knownMethods are the sign-in methods the account layer uses today. The
// method is written as a uvarint v: odd v names knownMethods[v>>1] in one
// byte, even v is followed by a string of v>>1 bytes, so any other method
// still works. The one byte matters: spelled out, "password" takes a
// typical session from 70 to 78 bytes, past the 76 that fit Redis's
// 80-byte allocation, which BenchmarkRedisMemoryPerSession measured as 16 B
// more per session. Only ever append: stored sessions refer to these by
// position.
var knownMethods = [...]string{"password", "passkey", "password+totp", "password+passkey", "password+recovery"}

// Encode writes deadline and values, compactly when values are exactly a
// signed-in session's.
func (c codec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	if !isCompact(values) {
		b, err := c.fallback.Encode(deadline, values)
		if err != nil {
			return nil, err
		}
		return append([]byte{tagGob}, b...), nil
	}
	created := values[keyCreated].(int64)
	_, facts := values[keyMethod]
	var flags uint64
	if values[keyRemember] == int64(1) {
		flags |= flagRemembered
	}
	if values[keyMustEnrol] == int64(1) {
		flags |= flagMustEnrol
	}
	buf := make([]byte, 0, 96)
	switch {
	case facts:
		buf = append(buf, tagCompactFacts)
	case flags&flagRemembered != 0:
		buf = append(buf, tagCompactRemembered)
	default:
		buf = append(buf, tagCompact)
	}
	buf = binary.AppendVarint(buf, created)
	buf = binary.AppendVarint(buf, values[keySeen].(int64)-created)
	buf = binary.AppendVarint(buf, deadline.UnixMilli()-created)
	buf = binary.AppendVarint(buf, values[keyUserID].(int64))
	if facts {
		buf = binary.AppendUvarint(buf, flags)
		buf = binary.AppendVarint(buf, values[keyReauth].(int64)-created)
	}
	appendString := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	for _, k := range compactStrings {
		appendString(values[k].(string))
	}
	if facts {
		method := values[keyMethod].(string)
		if i := slices.Index(knownMethods[:], method); i >= 0 {
			buf = binary.AppendUvarint(buf, uint64(i)<<1|1)
		} else {
			buf = binary.AppendUvarint(buf, uint64(len(method))<<1)
			buf = append(buf, method...)
		}
	}
	return buf, nil
}

// isCompact reports whether values hold exactly the compact form's keys,
// with their types and sizes. The method and the last proof of sign-in come
// together (tagCompactFacts) or not at all (tags 1 and 2, which have no
// room for must-enrol either); the flags are present only when set, as
// Decode gives them back.
func isCompact(values map[string]any) bool {
	n := len(compactInts) + len(compactStrings)
	for _, k := range [...]string{keyRemember, keyMustEnrol} {
		if v, ok := values[k]; ok {
			if v != int64(1) {
				return false
			}
			n++
		}
	}
	method, hasMethod := values[keyMethod].(string)
	_, hasReauth := values[keyReauth].(int64)
	switch {
	case hasMethod && hasReauth:
		if len(method) > maxCompactString {
			return false
		}
		n += 2
	case hasMethod || hasReauth:
		return false
	case values[keyMustEnrol] != nil:
		return false
	}
	if len(values) != n {
		return false
	}
	for _, k := range compactInts {
		if _, ok := values[k].(int64); !ok {
			return false
		}
	}
	for _, k := range compactStrings {
		if s, ok := values[k].(string); !ok || len(s) > maxCompactString {
			return false
		}
	}
	return true
}

// Decode reads what Encode wrote. Corrupt input is an error, never a panic.
func (c codec) Decode(b []byte) (time.Time, map[string]any, error) {
	if len(b) == 0 {
		return time.Time{}, nil, errCorruptSession
	}
	switch b[0] {
	case tagGob:
		return c.fallback.Decode(b[1:])
	case tagCompact, tagCompactRemembered, tagCompactFacts:
	default:
		return time.Time{}, nil, fmt.Errorf("%w: unknown format %d", errCorruptSession, b[0])
	}
	tag := b[0]
	b = b[1:]
	next := func() (int64, bool) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	var ints [4]int64 // created, seen offset, deadline offset, user ID
	for i := range ints {
		v, ok := next()
		if !ok {
			return time.Time{}, nil, errCorruptSession
		}
		ints[i] = v
	}
	created := ints[0]
	var flags uint64
	var reauth int64
	switch tag {
	case tagCompactRemembered:
		flags = flagRemembered
	case tagCompactFacts:
		f, n := binary.Uvarint(b)
		if n <= 0 || f&^knownFlags != 0 {
			return time.Time{}, nil, errCorruptSession
		}
		b = b[n:]
		flags = f
		v, ok := next()
		if !ok {
			return time.Time{}, nil, errCorruptSession
		}
		reauth = created + v
	}
	values := make(map[string]any, len(compactInts)+len(compactStrings)+4)
	values[keyCreated] = created
	values[keySeen] = created + ints[1]
	values[keyUserID] = ints[3]
	deadline := created + ints[2]
	nextString := func() (string, bool) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > maxCompactString || uint64(len(b)-n) < l {
			return "", false
		}
		s := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return s, true
	}
	for _, k := range compactStrings {
		s, ok := nextString()
		if !ok {
			return time.Time{}, nil, errCorruptSession
		}
		values[k] = s
	}
	if tag == tagCompactFacts {
		v, n := binary.Uvarint(b)
		switch {
		case n <= 0:
			return time.Time{}, nil, errCorruptSession
		case v&1 == 1:
			if v>>1 >= uint64(len(knownMethods)) {
				return time.Time{}, nil, errCorruptSession
			}
			values[keyMethod] = knownMethods[v>>1]
			b = b[n:]
		default:
			l := v >> 1
			if l > maxCompactString || uint64(len(b)-n) < l {
				return time.Time{}, nil, errCorruptSession
			}
			values[keyMethod] = string(b[n : n+int(l)])
			b = b[n+int(l):]
		}
		values[keyReauth] = reauth
	}
	if len(b) != 0 {
		return time.Time{}, nil, errCorruptSession
	}
	if flags&flagRemembered != 0 {
		values[keyRemember] = int64(1)
	}
	if flags&flagMustEnrol != 0 {
		values[keyMustEnrol] = int64(1)
	}
	return time.UnixMilli(deadline), values, nil
}
