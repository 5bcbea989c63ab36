package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/metrics"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// linkPackage is where the Makefile and the Dockerfile set the version and
// commit with -ldflags -X.
const linkPackage = "github.com/hallpass/hallpass/internal/metrics"

func TestVersionPrintsTheBuild(t *testing.T) {
	out, err := runCLI(t, nil, "", "version")
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	b := metrics.ReadBuild()
	want := fmt.Sprintf("hallpass %s\ncommit   %s\ngo       %s %s/%s\n", b.Version, b.Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if out != want {
		t.Errorf("version printed\n%s\nwant\n%s", out, want)
	}
	if _, err := runCLI(t, nil, "", "version", "extra"); err == nil {
		t.Error("version with an argument succeeded")
	}
}

func TestBuildInfoIsServedWithTheMetrics(t *testing.T) {
	metricsPort := testsvc.FreePort(t)
	startServe(t, map[string]string{
		"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "h.db"),
		"HALLPASS_METRICS_ADDR": fmt.Sprintf("127.0.0.1:%d", metricsPort),
		"HALLPASS_SECRET_KEY":   testSecretKey,
	})
	b := metrics.ReadBuild()
	want := fmt.Sprintf(`hallpass_build_info{commit=%q,goversion=%q,version=%q} 1`, b.Commit, b.GoVersion, b.Version)
	if body := get(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)); !strings.Contains(body, want+"\n") {
		t.Errorf("/metrics lacks %s", want)
	}
}

// TestLinkTimeVersionReachesVersionAndMetrics builds the binary the way the
// Makefile and the Dockerfile do, with the version and commit set by the
// linker, and reads them back from `hallpass version` and from /metrics.
func TestLinkTimeVersionReachesVersionAndMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const version, commit = "v9.8.7-3-g0123abc-dirty", "0123abcdef0123abcdef0123abcdef0123abcdef"
	bin := filepath.Join(t.TempDir(), "hallpass")
	ldflags := fmt.Sprintf("-X %s.version=%s -X %s.commit=%s", linkPackage, version, linkPackage, commit)
	build := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, "github.com/hallpass/hallpass/cmd/hallpass")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("hallpass version: %v\n%s", err, out)
	}
	for _, want := range []string{"hallpass " + version + "\n", "commit   " + commit + "\n", "go       " + runtime.Version() + " "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("hallpass version printed\n%s\nwant a line %q", out, want)
		}
	}

	addr := fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t))
	serve := exec.Command(bin, "serve")
	serve.Env = append(os.Environ(),
		"HALLPASS_ADDR="+addr, "HALLPASS_METRICS_ADDR="+metricsAddr, "HALLPASS_DRAIN_DELAY=0s",
		"HALLPASS_DATABASE_URL=sqlite:"+filepath.Join(t.TempDir(), "h.db"), "HALLPASS_SECRET_KEY="+testSecretKey)
	logs := &testkit.LogBuffer{}
	serve.Stdout, serve.Stderr = logs, logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Kill()
		serve.Wait()
	})
	want := fmt.Sprintf(`hallpass_build_info{commit=%q,goversion=%q,version=%q} 1`, commit, runtime.Version(), version)
	testkit.Eventually(t, 30*time.Second, "/metrics with the link-time build", func() error {
		body, err := fetch("http://" + metricsAddr + "/metrics")
		if err != nil {
			return fmt.Errorf("%w; logs:\n%s", err, logs)
		}
		if !strings.Contains(body, want+"\n") {
			return fmt.Errorf("/metrics lacks %s", want)
		}
		return nil
	})
}

// get fetches url and fails the test unless it answers 200.
func get(t *testing.T, url string) string {
	t.Helper()
	body, err := fetch(url)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// fetch GETs url and returns its body, or an error unless it answers 200.
func fetch(url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var body bytes.Buffer
	if _, err := io.Copy(&body, res.Body); err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return body.String(), nil
}
