package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/testsvc"
)

func TestHealthcheckAsksTheServerOnThisMachine(t *testing.T) {
	r := startServe(t, map[string]string{"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db")})
	port := r.url[strings.LastIndex(r.url, ":")+1:]
	// The check reads HALLPASS_ADDR as serve does; a wildcard address (as in
	// a container) leads it to 127.0.0.1.
	env := map[string]string{"HALLPASS_ADDR": ":" + port}
	for _, tc := range []struct {
		args []string
		path string
	}{
		{[]string{"healthcheck"}, "/healthz"},
		{[]string{"healthcheck", "--ready"}, "/readyz"},
	} {
		out, err := runCLI(t, env, "", tc.args...)
		if err != nil {
			t.Errorf("%v: %v\n%s", tc.args, err, out)
		}
		if want := "GET http://127.0.0.1:" + port + tc.path + ": 200 OK"; !strings.Contains(out, want) {
			t.Errorf("%v printed %q, want %q", tc.args, out, want)
		}
	}

	closed := testsvc.FreePort(t)
	out, err := runCLI(t, nil, "", "healthcheck", "--addr", fmt.Sprintf("127.0.0.1:%d", closed))
	if err == nil {
		t.Errorf("healthcheck of a port nothing listens on succeeded: %s", out)
	}
}

func TestLocalURLReachesWildcardAddressesOnLoopback(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{":8080", "http://127.0.0.1:8080"},
		{"0.0.0.0:9000", "http://127.0.0.1:9000"},
		{"[::]:8080", "http://127.0.0.1:8080"},
		{"127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"10.1.2.3:8080", "http://10.1.2.3:8080"},
		{"[::1]:8080", "http://[::1]:8080"},
		{"localhost:8080", "http://localhost:8080"},
	} {
		got, err := localURL(tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("localURL(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
	if _, err := localURL("8080"); err == nil {
		t.Error("localURL(\"8080\") succeeded")
	}
}
