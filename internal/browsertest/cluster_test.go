package browsertest

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/cluster"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// startCluster runs the loopback cluster (HAProxy, three replicas, Redis
// through Sentinel, PostgreSQL) as a site the browser opens through the
// load balancer.
func startCluster(t *testing.T) *site {
	t.Helper()
	c, err := cluster.Start(t.Context(), cluster.Options{Hallpass: shared.hallpassBinary(t)})
	if errors.Is(err, cluster.ErrNotInstalled) {
		if os.Getenv(testsvc.RequireBackendsEnv) != "" {
			t.Fatalf("%v (%s is set, so a missing backend fails the test)", err, testsvc.RequireBackendsEnv)
		}
		t.Skipf("%v (set %s to make this a failure)", err, testsvc.RequireBackendsEnv)
	}
	if err != nil {
		t.Fatalf("start the loopback cluster: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return &site{
		// localhost, a secure origin to Chromium, keeps the __Host- cookie.
		URL: strings.Replace(c.URL(), "127.0.0.1", "localhost", 1),
		add: func(t *testing.T, name, password string, admin bool) {
			t.Helper()
			if err := c.AddUser(t.Context(), name, password, admin); err != nil {
				t.Fatalf("add %s to the cluster: %v", name, err)
			}
		},
	}
}

func TestOneBrowserStaysSignedInWhilePagesComeFromDifferentReplicas(t *testing.T) {
	s := startCluster(t)
	s.addUser(t, "gina", alicePassword, false)
	b := newBrowser(t, s, laptop)
	b.signIn("gina", alicePassword)

	servedBy := map[string]int{}
	for range 12 {
		b.open("/")
		if got := b.text("h1"); got != "Hello, gina" {
			t.Fatalf("page %d through HAProxy shows %q, want gina's home page%s", len(servedBy), got, b.whereAmI())
		}
		servedBy[b.text(".served-by")]++
	}
	t.Logf("home pages served by %v", servedBy)
	if len(servedBy) < 2 {
		t.Errorf("12 page views all came from %v: the load balancer did not spread them", servedBy)
	}
	for id := range servedBy {
		if !strings.HasPrefix(id, "app") {
			t.Errorf("unexpected replica ID %q", id)
		}
	}
}
