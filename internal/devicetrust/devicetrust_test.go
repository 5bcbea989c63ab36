package devicetrust_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/devicetrust"
)

func TestATokenVouchesOnlyForItsAccountAndKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, devicetrust.KeySize)
	s := devicetrust.NewSigner(key)
	tok := s.Issue("Alice")
	id, ok := s.Verify(tok, "alice")
	if !ok || id == "" {
		t.Fatalf("a fresh token for Alice does not verify for alice: %q %v", id, ok)
	}
	if again := s.Issue("alice"); again == tok {
		t.Error("two sign-ins got the same token")
	}
	if strings.Contains(strings.ToLower(tok), "alice") {
		t.Error("the token names its account")
	}
	other := devicetrust.NewSigner(bytes.Repeat([]byte{8}, devicetrust.KeySize))
	for name, bad := range map[string]struct{ token, user string }{
		"another account": {tok, "bob"},
		"another key":     {other.Issue("alice"), "alice"},
		"a changed id":    {strings.Replace(tok, ".", ".A", 1)[:len(tok)], "alice"},
		"a changed mac":   {tok[:len(tok)-1] + "x", "alice"},
		"empty":           {"", "alice"},
		"another version": {"d2" + tok[2:], "alice"},
		"junk":            {"d1..", "alice"},
		"oversized":       {tok + strings.Repeat("A", 200), "alice"},
	} {
		if _, ok := s.Verify(bad.token, bad.user); ok {
			t.Errorf("%s: %q verified for %s", name, bad.token, bad.user)
		}
	}
}

func FuzzVerify(f *testing.F) {
	s := devicetrust.NewSigner(bytes.Repeat([]byte{7}, devicetrust.KeySize))
	f.Add(s.Issue("alice"), "alice")
	f.Add("d1.AAAAAAAAAAAAAAAAAAAAAA.x", "bob")
	f.Fuzz(func(t *testing.T, token, user string) {
		id, ok := s.Verify(token, user)
		if ok && (len(id) != 22 || !strings.HasPrefix(token, "d1."+id+".")) {
			t.Fatalf("Verify(%q, %q) = %q, true", token, user, id)
		}
	})
}
