package testsvc

import (
	"testing"

	"github.com/hallpass/hallpass/internal/localsvc"
)

// chromiumNames are the names a Chromium-family browser goes by, Debian's
// package first; /usr/lib/chromium holds the real binary behind Debian's
// wrapper script.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"}

// Chromium returns the path of a Chromium (or Chrome) binary for browser
// tests. Without one it skips t, or fails it when backends are required: the
// browser suites are part of make test, so a missing browser must not pass as
// a skip there.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range chromiumNames {
		if p, err := localsvc.LookBinary(name, "/usr/bin", "/usr/lib/chromium", "/opt/google/chrome"); err == nil {
			return p
		}
	}
	unavailable(t, "Chromium not found (Debian package chromium)")
	return ""
}
