package session

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

func signedInValues() map[string]any {
	return map[string]any{
		keyUserID: int64(42), keyUsername: "alice", keyRole: "admin",
		keyCreated: int64(1_700_000_000_000), keySeen: int64(1_700_000_060_000),
		keyReplica: "hallpass-2", keyIP: "2001:db8::1", keyDevice: "Firefox on Linux",
	}
}

func TestCodecRoundTrips(t *testing.T) {
	deadline := time.UnixMilli(1_700_043_200_123)
	for name, values := range map[string]map[string]any{
		"signed-in session": signedInValues(),
		"remembered session": func() map[string]any {
			v := signedInValues()
			v[keyRemember] = int64(1)
			return v
		}(),
		"other values": {"flash": "hello", "n": 3},
		"empty":        {},
	} {
		t.Run(name, func(t *testing.T) {
			var c codec
			b, err := c.Encode(deadline, values)
			if err != nil {
				t.Fatal(err)
			}
			gotDeadline, got, err := c.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !gotDeadline.Equal(deadline) || !reflect.DeepEqual(got, values) {
				t.Errorf("round trip: %v %v, want %v %v", gotDeadline, got, deadline, values)
			}
		})
	}
}

func TestCodecIsCompactForSignedInSessions(t *testing.T) {
	var c codec
	b, err := c.Encode(time.Now(), signedInValues())
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != tagCompact || len(b) > 80 {
		t.Errorf("signed-in session encoded in %d bytes with tag %d, want the compact form under 80 bytes", len(b), b[0])
	}
}

func TestCodecKeepsARememberedSessionCompactAtNoCost(t *testing.T) {
	var c codec
	plain, _ := c.Encode(time.Now(), signedInValues())
	v := signedInValues()
	v[keyRemember] = int64(1)
	remembered, err := c.Encode(time.Now(), v)
	if err != nil {
		t.Fatal(err)
	}
	if remembered[0] != tagCompactRemembered || len(remembered) != len(plain) {
		t.Errorf("remembered session: tag %d, %d bytes; want tag %d and the plain session's %d bytes",
			remembered[0], len(remembered), tagCompactRemembered, len(plain))
	}
	v[keyRemember] = int64(2) // not a value Hallpass writes
	if b, _ := c.Encode(time.Now(), v); b[0] != tagGob {
		t.Errorf("an odd remember value was encoded compactly (tag %d): it would read back as 1", b[0])
	}
}

func TestCodecRefusesCorruptData(t *testing.T) {
	var c codec
	good, _ := c.Encode(time.Now(), signedInValues())
	for name, b := range map[string][]byte{
		"empty":          {},
		"unknown tag":    {9, 1, 2},
		"truncated":      good[:len(good)-3],
		"trailing bytes": append(bytes.Clone(good), 0),
		"huge string":    append([]byte{tagCompact, 2, 2, 2, 2, 2}, 0xff, 0xff, 0xff, 0xff, 0x0f),
	} {
		if _, _, err := c.Decode(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestCodecKeepsDeadlineToTheMillisecond(t *testing.T) {
	var c codec
	deadline := time.UnixMilli(1_700_043_200_123).Add(456 * time.Microsecond)
	b, _ := c.Encode(deadline, signedInValues())
	got, _, err := c.Decode(b)
	if err != nil || !got.Equal(deadline.Truncate(time.Millisecond)) {
		t.Errorf("deadline %v (%v), want %v", got, err, deadline.Truncate(time.Millisecond))
	}
}

func FuzzCodecDecode(f *testing.F) {
	var c codec
	good, _ := c.Encode(time.Now(), signedInValues())
	gob, _ := c.Encode(time.Now(), map[string]any{"x": "y"})
	f.Add(good)
	f.Add(gob)
	f.Add([]byte{tagCompact})
	f.Fuzz(func(t *testing.T, b []byte) {
		deadline, values, err := c.Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same thing.
		again, err := c.Encode(deadline, values)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		d2, v2, err := c.Decode(again)
		if err != nil || !d2.Equal(deadline) || !reflect.DeepEqual(v2, values) {
			t.Fatalf("re-decode differs: %v %v %v", err, v2, values)
		}
	})
}
