// Package testsvc starts real backing services (Redis, PostgreSQL) for tests,
// each on a free loopback port in its own temporary directory, and stops them
// when the test that asked for them ends.
//
// A service whose binaries are missing skips the test on a developer's quick
// run, but fails it when HALLPASS_REQUIRE_BACKENDS is set (make test and CI set
// it), so a missing backend can never pass as a skip.
package testsvc

import (
	"fmt"
	"os"
	"testing"

	"github.com/hallpass/hallpass/internal/localsvc"
)

// RequireBackendsEnv names the variable that turns a missing backend from a
// skip into a failure.
const RequireBackendsEnv = "HALLPASS_REQUIRE_BACKENDS"

// unavailable reports that a backend cannot run here: a failure when backends
// are required, a skip otherwise.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireBackendsEnv) != "" {
		t.Fatalf("%s (%s is set, so a missing backend fails the test; run `make test-deps`)", msg, RequireBackendsEnv)
	}
	t.Skipf("%s (run `make test-deps`, or set %s to make this a failure)", msg, RequireBackendsEnv)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := localsvc.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return port
}
