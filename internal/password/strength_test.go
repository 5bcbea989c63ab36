package password

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckStrength(t *testing.T) {
	cases := []struct {
		plain, username string
		want            error
	}{
		// Common passwords and their usual disguises.
		{"password", "carol", ErrGuessable},
		{"password1", "carol", ErrGuessable},
		{"P@ssw0rd123", "carol", ErrGuessable},
		{"Summer2024!", "carol", ErrGuessable},
		{"iloveyou", "carol", ErrGuessable},
		{"qwertyuiop", "carol", ErrGuessable},
		{"12345678", "carol", ErrGuessable},
		{"abcdefghijklmnop", "carol", ErrGuessable},
		{"letmein123", "carol", ErrGuessable},
		{"aaaaaaaaaaaaaaaa", "carol", ErrGuessable},
		// Passphrases of unrelated words.
		{"correct horse battery", "carol", nil},
		{"correct horse battery staple", "carol", nil},
		{"tr0ub4dor and three", "carol", nil},
		{"daves password", "carol", nil},
		{"plum kettle orbit", "carol", nil},
		// The username, in any case, anywhere.
		{"carols password", "carol", ErrContainsUsername},
		{"CAROLs password", "carol", ErrContainsUsername},
		{"my name is CaRoL!", "Carol", ErrContainsUsername},
		{"correct horse battery alice.smith", "Alice.Smith", ErrContainsUsername},
		// Short usernames do not count as contained...
		{"always correct horse", "al", nil},
		// ...and zxcvbn knows the username as a word, so a disguised one
		// is guessable though not contained.
		{"kw1nt4vel", "kwintavel", ErrGuessable},
		{"levatniwk22", "kwintavel", ErrGuessable},
		{"levatniwk22", "carol", nil},
		// The service's own name is a dictionary word too.
		{"hallpass2026", "carol", ErrGuessable},
		{"HaLLpa55!", "carol", ErrGuessable},
		// Past the runes zxcvbn sees, only the username is looked for.
		{"correct horse battery password1", "carol", nil},
		{"correct horse battery carol", "carol", ErrContainsUsername},
	}
	for _, tc := range cases {
		if err := CheckStrength(tc.plain, tc.username); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("CheckStrength(%q, %q) = %v, want %v", tc.plain, tc.username, err, tc.want)
		}
	}
}

// leetHeavy contains every character zxcvbn's leet table substitutes, the
// worst case for its dictionary matcher.
var leetHeavy = strings.Repeat("4@8({[<3691!|70$5+%2", 13)[:MaxLength]

func TestCheckStrengthCostIsBoundedOnLongPasswords(t *testing.T) {
	// Unbounded, zxcvbn takes about 12 s on this password; bounded, a few
	// milliseconds. The limit leaves room for a slow, busy machine and the
	// race detector.
	start := time.Now()
	CheckStrength(leetHeavy, "carol")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("CheckStrength on %d bytes took %v", len(leetHeavy), took)
	}
}

func TestFirstRunes(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"", 3, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "abc"},
		{"ééé", 2, "éé"},
		{"a\xffb", 2, "a\xff"},
	} {
		if got := firstRunes(tc.s, tc.n); got != tc.want {
			t.Errorf("firstRunes(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

func BenchmarkCheckStrength(b *testing.B) {
	for _, bc := range []struct{ name, plain string }{
		{"passphrase", "correct horse battery staple"},
		{"common", "P@ssw0rd123"},
		{"leet-heavy 256 bytes", leetHeavy},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				CheckStrength(bc.plain, "carol")
			}
		})
	}
}
