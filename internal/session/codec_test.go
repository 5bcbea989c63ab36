package session

import (
	"bytes"
	"encoding/binary"
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

// loginValues are a session as Login stores it since sessions record how
// the user signed in and when they last proved it.
func loginValues() map[string]any {
	v := signedInValues()
	v[keyMethod] = "password+totp"
	v[keyReauth] = int64(1_700_000_000_000)
	return v
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
		"login session": loginValues(),
		"remembered, must enrol, reauthenticated later": func() map[string]any {
			v := loginValues()
			v[keyRemember] = int64(1)
			v[keyMustEnrol] = int64(1)
			v[keyReauth] = int64(1_700_000_090_000)
			return v
		}(),
		"method not recorded": func() map[string]any {
			v := loginValues()
			v[keyMethod] = ""
			return v
		}(),
		"method spelled out": func() map[string]any {
			v := loginValues()
			v[keyMethod] = "password+sms" // not in knownMethods
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

func TestCodecIsCompactForLoginSessions(t *testing.T) {
	var c codec
	for name, values := range map[string]map[string]any{
		"plain": loginValues(),
		"remembered, must enrol": func() map[string]any {
			v := loginValues()
			v[keyRemember] = int64(1)
			v[keyMustEnrol] = int64(1)
			return v
		}(),
	} {
		b, err := c.Encode(time.Now(), values)
		if err != nil {
			t.Fatal(err)
		}
		// A known method, the flags and the last proof (at sign-in) cost
		// one byte each over the session as it was before they existed.
		old, _ := c.Encode(time.Now(), signedInValues())
		if b[0] != tagCompactFacts || len(b) != len(old)+3 {
			t.Errorf("%s: encoded in %d bytes with tag %d, want tag %d in %d bytes", name, len(b), b[0], tagCompactFacts, len(old)+3)
		}
	}
}

// oldRememberedSession is a remembered session as the code before method,
// last proof and must-enrol were recorded wrote it (tag 2): signedInValues
// with keyRemember, deadline 1_700_043_200_123. Sessions like it are in
// Redis when the new code starts, so it must keep decoding as it did.
const oldRememberedSession = "\x02\x80\xa0\xab\xfe\xf9b\xc0\xa9\a\xf6\xb9\x99)T\x05alice\x05admin\nhallpass-2\v2001:db8::1\x10Firefox on Linux"

func TestCodecDecodesSessionsWrittenBeforeFacts(t *testing.T) {
	var c codec
	deadline, values, err := c.Decode([]byte(oldRememberedSession))
	if err != nil {
		t.Fatal(err)
	}
	want := signedInValues()
	want[keyRemember] = int64(1)
	if !deadline.Equal(time.UnixMilli(1_700_043_200_123)) || !reflect.DeepEqual(values, want) {
		t.Fatalf("old session decoded to %v %v, want %v %v", deadline, values, time.UnixMilli(1_700_043_200_123), want)
	}
	// Read through the Manager, it has no method, its last proof is the
	// sign-in and it need not enrol.
	m := NewManager(ManagerOptions{Store: NewMemoryStore(Options{}), IdleTimeout: time.Hour, Lifetime: 24 * time.Hour})
	rec, err := m.record(Entry{Key: "k", Data: []byte(oldRememberedSession)}, "")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Method != "" || rec.MustEnrol || rec.Username != "alice" {
		t.Errorf("old session's record: method %q, must enrol %v, user %q; want \"\", false, alice",
			rec.Method, rec.MustEnrol, rec.Username)
	}
	// Re-encoded unchanged (a refresh of last seen), it keeps its old form.
	again, err := c.Encode(deadline, values)
	if err != nil || string(again) != oldRememberedSession {
		t.Errorf("old session re-encoded to %q (%v), want the same bytes", again, err)
	}
}

func TestCodecKeepsFactsTogetherOrFallsBackToGob(t *testing.T) {
	var c codec
	for name, edit := range map[string]func(v map[string]any){
		"method without last proof": func(v map[string]any) { delete(v, keyReauth) },
		"last proof without method": func(v map[string]any) { delete(v, keyMethod) },
		"must enrol without facts": func(v map[string]any) {
			delete(v, keyMethod)
			delete(v, keyReauth)
			v[keyMustEnrol] = int64(1)
		},
		"odd must-enrol value":       func(v map[string]any) { v[keyMustEnrol] = int64(2) },
		"last proof of another type": func(v map[string]any) { v[keyReauth] = "soon" },
	} {
		v := loginValues()
		edit(v)
		b, err := c.Encode(time.Now(), v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b[0] != tagGob {
			t.Errorf("%s: encoded compactly (tag %d), would not read back the same", name, b[0])
			continue
		}
		if _, got, err := c.Decode(b); err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("%s: gob round trip %v (%v), want %v", name, got, err, v)
		}
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
	facts, _ := c.Encode(time.Now(), loginValues())
	// The flags varint follows tag, created and the three other varints.
	flagsAt := 1
	for range 4 {
		_, n := binary.Varint(facts[flagsAt:])
		flagsAt += n
	}
	unknownFlag := bytes.Clone(facts)
	unknownFlag[flagsAt] = 0x04
	for name, b := range map[string][]byte{
		"facts truncated":      facts[:len(facts)-3],
		"facts without method": facts[:len(facts)-1],
		"unknown method index": append(bytes.Clone(facts[:len(facts)-1]), byte(len(knownMethods))<<1|1),
		"method past the end":  append(bytes.Clone(facts[:len(facts)-1]), 8<<1, 'p'),
		"facts trailing bytes": append(bytes.Clone(facts), 0),
		"unknown flag":         unknownFlag,
		"empty":                {},
		"unknown tag":          {9, 1, 2},
		"truncated":            good[:len(good)-3],
		"trailing bytes":       append(bytes.Clone(good), 0),
		"huge string":          append([]byte{tagCompact, 2, 2, 2, 2, 2}, 0xff, 0xff, 0xff, 0xff, 0x0f),
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
	facts, _ := c.Encode(time.Now(), loginValues())
	f.Add(good)
	f.Add(facts)
	f.Add([]byte(oldRememberedSession))
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
