package web

import (
	"go/build"
	"slices"
	"testing"
)

// TestHandlersReachTheRulesOnlyThroughTheAccountService keeps the layering
// of ARCHITECTURE.md true: the web package parses, calls the account
// service and renders; it never reaches password hashing, throttles, Redis
// or SQL itself.
func TestHandlersReachTheRulesOnlyThroughTheAccountService(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{
		"github.com/hallpass/hallpass/internal/password",
		"github.com/hallpass/hallpass/internal/throttle",
		"github.com/hallpass/hallpass/internal/redisx",
		"github.com/hallpass/hallpass/internal/database",
		"github.com/gomodule/redigo/redis",
		"database/sql",
	} {
		if slices.Contains(pkg.Imports, banned) {
			t.Errorf("internal/web imports %s: handlers must go through internal/account", banned)
		}
	}
	if !slices.Contains(pkg.Imports, "github.com/hallpass/hallpass/internal/account") {
		t.Error("internal/web does not import internal/account: the check above would prove nothing")
	}
}
