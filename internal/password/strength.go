package password

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
)

// Errors returned by CheckStrength; check them with errors.Is.
var (
	// ErrGuessable is returned for a password that a password cracker
	// would try early: a common password, a dictionary word or name, a
	// keyboard pattern, a date, or one of these lightly disguised.
	ErrGuessable = errors.New("password too easy to guess")
	// ErrContainsUsername is returned for a password that contains the
	// user's name, in any case.
	ErrContainsUsername = errors.New("password contains the username")
)

const (
	// MinScore is the lowest zxcvbn score CheckStrength accepts. A score of
	// 3 is an estimate of at least 10^8 guesses: out of reach of online
	// guessing, and of a quick offline run through the usual lists.
	MinScore = 3

	// strengthRunes is how much of a password zxcvbn sees. Its dictionary
	// matcher tries every substring under every leet substitution the
	// password's characters allow, so its cost grows with the cube of the
	// length times up to a few hundred substitutions. Measured on a busy
	// two-core machine (BenchmarkCheckStrength): 0.3–0.5 ms for ordinary
	// passwords, but for one written to hold every leet character
	// ("4@8({[<3691!|70$5+%2…") 3 ms at 16 runes, 7–8 ms at 20, 15–50 ms
	// at 24, 1.5–2 s at 100 and 12 s at 256 bytes — and sign-up is open to
	// anyone. Twenty runes keep that worst case under half an argon2id hash
	// and still judge most of a passphrase. Judging a prefix is mostly
	// stricter than judging the whole; the exception is a repetition cut
	// short, which looks less regular than it is ("Summer2024!Summer2024!").
	strengthRunes = 20

	// minUsernameRunes is the shortest username the containment rule
	// applies to: a two-letter name turns up in too many good passwords.
	minUsernameRunes = 3
)

// CheckStrength reports whether plain is fit to be a new password of the
// user named username: ErrContainsUsername if it contains the username (of
// at least three characters) in any case, ErrGuessable if zxcvbn, given the
// username as a word to look for, scores its first 20 runes under MinScore.
// Check the length with Validate first: CheckStrength does not, though it
// bounds its own cost on any input.
func CheckStrength(plain, username string) error {
	if utf8.RuneCountInString(username) >= minUsernameRunes &&
		strings.Contains(strings.ToLower(plain), strings.ToLower(username)) {
		return ErrContainsUsername
	}
	// The service's own name counts as a dictionary word too (ASVS 6.2.11):
	// "hallpass2026" is a guess an attacker of this site tries early.
	userInputs := []string{"hallpass"}
	if username != "" {
		userInputs = append(userInputs, username)
	}
	if zxcvbn.PasswordStrength(firstRunes(plain, strengthRunes), userInputs).Score < MinScore {
		return ErrGuessable
	}
	return nil
}

// firstRunes returns at most the first n runes of s.
func firstRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
