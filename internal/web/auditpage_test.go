package web

import (
	"net/url"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/user"
)

func TestAuditPageWritesOutBidiAndControlCharactersOfTypedNames(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("root", alicePW, user.RoleAdmin)
	// A name typed at a failed sign-in that would read "root.exe" backwards
	// if the page let the right-to-left override act.
	typed := "exe.\u202Etoor"
	ts.newBrowser().postForm("/login", url.Values{"username": {typed}, "password": {"wrong password"}})
	admin := ts.newBrowser()
	admin.login("root", alicePW)
	page := admin.get("/admin/audit")
	if strings.Contains(page.body, "\u202E") {
		t.Error("the audit page carries a raw right-to-left override")
	}
	if !strings.Contains(page.body, `exe.\u{202E}toor`) {
		t.Errorf("the audit page does not show the typed name written out:\n%.2000s", page.body)
	}
}
