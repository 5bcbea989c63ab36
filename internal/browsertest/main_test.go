package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// Time limits: generous for two busy cores, but finite, so a wedged browser
// or server fails a test instead of hanging CI.
const (
	buildWithin         = 5 * time.Minute
	browserStartsWithin = 60 * time.Second
)

// shared is what every scenario of this test binary shares; TestMain sets
// it up and tears it down.
var shared *suite

// suite holds the hallpass binary, built on first use, and one Chromium,
// started on first use, so that a quick run without Chromium builds nothing
// and starts nothing.
type suite struct {
	dir string // temporary: the binary, the browser profile

	buildOnce sync.Once
	bin       string
	buildErr  error

	browserOnce sync.Once
	browserCtx  context.Context // owns the browser process; tabs are its children
	browserErr  error
	stopBrowser func()
	browserLog  testkit.LogBuffer // Chromium's stdout and stderr
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hallpass-browsertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "browsertest:", err)
		os.Exit(1)
	}
	shared = &suite{dir: dir}
	code := m.Run()
	if shared.stopBrowser != nil {
		shared.stopBrowser()
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "browsertest: remove temp dir:", err)
	}
	os.Exit(code)
}

// hallpassBinary returns the path of cmd/hallpass, built once for the test
// binary. The scenarios run the real program, as an operator would, rather
// than its pieces wired by hand.
func (s *suite) hallpassBinary(t testing.TB) string {
	t.Helper()
	s.buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		ctx, cancel := context.WithTimeout(context.Background(), buildWithin)
		defer cancel()
		bin := filepath.Join(s.dir, "hallpass")
		out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, "github.com/hallpass/hallpass/cmd/hallpass").CombinedOutput()
		if err != nil {
			s.buildErr = fmt.Errorf("go build ./cmd/hallpass: %w\n%s", err, out)
			return
		}
		s.bin = bin
	})
	if s.buildErr != nil {
		t.Fatal(s.buildErr)
	}
	return s.bin
}

// browser returns the context of the shared Chromium, starting it on first
// use. Without Chromium the test skips, or fails when backends are required.
func (s *suite) browser(t testing.TB) context.Context {
	t.Helper()
	path := testsvc.Chromium(t)
	s.browserOnce.Do(func() { s.browserErr = s.startBrowser(path) })
	if s.browserErr != nil {
		t.Fatalf("start Chromium: %v\n%s", s.browserErr, s.browserLog.String())
	}
	return s.browserCtx
}

// startBrowser starts headless Chromium with a fresh profile and every
// feature that would reach for the network switched off: this machine, and
// CI, have no internet, and a browser waiting on one is a slow, flaky one.
func (s *suite) startBrowser(path string) error {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(filepath.Join(s.dir, "chromium-profile")),
		chromedp.NoSandbox, // root in containers and CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater"),
		chromedp.Flag("lang", "en-GB"),
		chromedp.WindowSize(desktopWidth, desktopHeight),
		chromedp.CombinedOutput(&s.browserLog),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	s.stopBrowser = func() {
		cancelBrowser()
		cancelAlloc()
	}
	// The first Do starts the browser and binds it to browserCtx, which
	// must therefore carry no deadline; the start itself is bounded here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(browserCtx) }()
	select {
	case err := <-started:
		if err != nil {
			s.stopBrowser()
			return err
		}
	case <-time.After(browserStartsWithin):
		s.stopBrowser()
		return errors.New("Chromium did not start within " + browserStartsWithin.String())
	}
	s.browserCtx = browserCtx
	return nil
}
