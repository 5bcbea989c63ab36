package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/alexedwards/scs/v2"
)

// codec encodes session data for the store. A signed-in session holds only
// the values Hallpass puts there, so it is written in a compact binary form
// (about 70 bytes instead of gob's 340 for a typical session: that is what
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
// length-prefixed. Offsets keep the varints short.

// maxCompactString bounds each string on decode, so corrupt data cannot
// ask for a huge allocation.
const maxCompactString = 1 << 12

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
	buf := make([]byte, 0, 80)
	if values[keyRemember] == int64(1) {
		buf = append(buf, tagCompactRemembered)
	} else {
		buf = append(buf, tagCompact)
	}
	buf = binary.AppendVarint(buf, created)
	buf = binary.AppendVarint(buf, values[keySeen].(int64)-created)
	buf = binary.AppendVarint(buf, deadline.UnixMilli()-created)
	buf = binary.AppendVarint(buf, values[keyUserID].(int64))
	for _, k := range compactStrings {
		s := values[k].(string)
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	return buf, nil
}

// isCompact reports whether values hold exactly the compact form's keys,
// with their types and sizes.
func isCompact(values map[string]any) bool {
	n := len(compactInts) + len(compactStrings)
	if r, ok := values[keyRemember]; ok {
		if r != int64(1) {
			return false
		}
		n++
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
	case tagCompact, tagCompactRemembered:
	default:
		return time.Time{}, nil, fmt.Errorf("%w: unknown format %d", errCorruptSession, b[0])
	}
	remembered := b[0] == tagCompactRemembered
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
	values := make(map[string]any, len(compactInts)+len(compactStrings))
	values[keyCreated] = created
	values[keySeen] = created + ints[1]
	values[keyUserID] = ints[3]
	deadline := created + ints[2]
	for _, k := range compactStrings {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > maxCompactString || uint64(len(b)-n) < l {
			return time.Time{}, nil, errCorruptSession
		}
		values[k] = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	if len(b) != 0 {
		return time.Time{}, nil, errCorruptSession
	}
	if remembered {
		values[keyRemember] = int64(1)
	}
	return time.UnixMilli(deadline), values, nil
}
