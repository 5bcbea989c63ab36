package browsertest

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/testsvc"
)

// Time limits of the hallpass processes.
const (
	serverReadyWithin = 30 * time.Second
	serverStopWithin  = 20 * time.Second
	cliWithin         = 60 * time.Second
)

// site is a Hallpass as a person meets it: URL is what the address bar
// shows, and addUser creates accounts as an operator does, with the hallpass
// CLI against the site's database. One `hallpass serve` fills it today; a
// loopback cluster fits the same shape — URL is the load balancer's, env
// names the shared database and Redis — so the scenarios run against either.
type site struct {
	// URL is the origin the browser opens, without a trailing slash.
	URL string
	// ReplicaID is what pages of this site say served them; a cluster
	// would list several.
	ReplicaID string

	bin string
	env map[string]string // HALLPASS_* settings, shared by serve and the CLI
	// add, when set, creates accounts instead of the CLI on env (a
	// cluster's own way to reach its database).
	add func(t *testing.T, name, password string, admin bool)
}

// serveDefaults are the settings of every test server; a scenario's own
// settings override them.
func serveDefaults(t *testing.T) map[string]string {
	return map[string]string{
		"HALLPASS_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "hallpass.db"),
		"HALLPASS_REPLICA_ID":   "browser-1",
		"HALLPASS_DRAIN_DELAY":  "0s",
		"HALLPASS_LOG_LEVEL":    "warn",
		// A test-only key (32 bytes): second factors are on by default.
		"HALLPASS_SECRET_KEY": "dGVzdC1vbmx5LXNlY3JldC1rZXktMzItYnl0ZXMhISE=",
	}
}

// startHallpass runs `hallpass serve` — SQLite and in-process sessions,
// the embedded default — with settings over serveDefaults, until t ends.
// It listens on 127.0.0.1 and is browsed as http://localhost: a secure
// origin to Chromium, where the Secure __Host- cookie is kept as over HTTPS.
func startHallpass(t *testing.T, settings map[string]string) *site {
	t.Helper()
	env := serveDefaults(t)
	maps.Copy(env, settings)
	s := &site{ReplicaID: env["HALLPASS_REPLICA_ID"], bin: shared.hallpassBinary(t), env: env}

	// A port free a moment ago may be taken by the time serve binds it.
	var lastErr error
	for range 3 {
		port := testsvc.FreePort(t)
		env["HALLPASS_ADDR"] = "127.0.0.1:" + strconv.Itoa(port)
		if _, set := settings["HALLPASS_WEBAUTHN_ORIGINS"]; !set {
			// Passkeys are bound to the origin the browser sees (the RP ID
			// is localhost by default).
			env["HALLPASS_WEBAUTHN_ORIGINS"] = "http://localhost:" + strconv.Itoa(port)
		}
		if lastErr = s.serve(t, port); lastErr == nil {
			s.URL = "http://localhost:" + strconv.Itoa(port)
			return s
		}
	}
	t.Fatalf("start hallpass serve: %v", lastErr)
	return nil
}

// serve starts the server process on port and waits until /healthz
// answers. The process is stopped, gracefully, when t ends; its log is
// printed if t failed.
func (s *site) serve(t *testing.T, port int) error {
	logPath := filepath.Join(t.TempDir(), "hallpass-serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(s.bin, "serve")
	cmd.Env = s.environ()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s serve: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the log says why it ended
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(serverStopWithin):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("hallpass serve ignored SIGTERM for %s and was killed", serverStopWithin)
		}
	}

	health := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(serverReadyWithin)
	for {
		select {
		case <-exited:
			return fmt.Errorf("hallpass serve exited at start-up:\n%s", readLog(logPath))
		default:
		}
		if res, err := client.Get(health); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("hallpass serve not healthy within %s:\n%s", serverReadyWithin, readLog(logPath))
		}
		time.Sleep(25 * time.Millisecond) // polling interval
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("hallpass serve log:\n%s", readLog(logPath))
		}
	})
	return nil
}

// addUser creates an account with the hallpass CLI, the password on
// standard input, as the README tells an operator to.
func (s *site) addUser(t *testing.T, name, password string, admin bool) {
	t.Helper()
	if s.add != nil {
		s.add(t, name, password, admin)
		return
	}
	args := []string{"user", "add", name}
	if admin {
		args = append(args, "--admin")
	}
	ctx, cancel := context.WithTimeout(context.Background(), cliWithin)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = s.environ()
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hallpass %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// environ is the process environment of hallpass commands: this process's,
// minus any HALLPASS_* the developer's shell carries, plus the site's.
func (s *site) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HALLPASS_") {
			env = append(env, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.env)) {
		env = append(env, k+"="+s.env[k])
	}
	return env
}

// readLog returns the end of a log file for a failure message.
func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const max = 8000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return strings.TrimSpace(string(b))
}
