package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/config"
)

// runConfigCheck runs `hallpass config check` with env and the given serve
// flags, and returns what it wrote to each stream.
func runConfigCheck(t *testing.T, env map[string]string, flags ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(t.Context(), append([]string{"config", "check"}, flags...), getenvFrom(env), strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// line returns the line of out that reports env, split into its columns.
func line(t *testing.T, out, env string) []string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == env {
			return f
		}
	}
	t.Fatalf("no line for %s in\n%s", env, out)
	return nil
}

func TestConfigCheckPrintsTheDefaultsAndPasses(t *testing.T) {
	out, errOut, err := runConfigCheck(t, nil)
	if err != nil {
		t.Fatalf("config check: %v\n%s%s", err, out, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(config.Settings())+1 || lines[len(lines)-1] != "config check: ok" {
		t.Fatalf("printed\n%s\nwant one line per setting, then config check: ok", out)
	}
	for _, s := range config.Settings() {
		if f := line(t, out, s.Env); f[len(f)-1] != "(default)" {
			t.Errorf("%s line %q, want it to end with (default)", s.Env, f)
		}
	}
	if f := line(t, out, "HALLPASS_ADDR"); f[1] != ":8080" {
		t.Errorf("HALLPASS_ADDR shown as %q, want the default :8080", f[1])
	}
	// An empty value is quoted, so the columns still line up.
	if f := line(t, out, "HALLPASS_REDIS_URL"); f[1] != `""` {
		t.Errorf("empty HALLPASS_REDIS_URL shown as %q", f[1])
	}
	if errOut != "" {
		t.Errorf("stderr: %s", errOut)
	}
}

func TestConfigCheckSaysAFlagWinsOverTheEnvironment(t *testing.T) {
	out, _, err := runConfigCheck(t, map[string]string{"HALLPASS_ADDR": ":7000", "HALLPASS_SIGNUP": "closed"}, "--addr", "127.0.0.1:9000")
	if err != nil {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	if f := line(t, out, "HALLPASS_ADDR"); strings.Join(f[1:], " ") != "127.0.0.1:9000 (flag --addr)" {
		t.Errorf("HALLPASS_ADDR line %q, want the flag's value and source", f)
	}
	if f := line(t, out, "HALLPASS_SIGNUP"); strings.Join(f[1:], " ") != "closed (env)" {
		t.Errorf("HALLPASS_SIGNUP line %q, want the environment's value and source", f)
	}
}

func TestConfigCheckNeverPrintsASecret(t *testing.T) {
	env := map[string]string{
		"HALLPASS_REDIS_PASSWORD": "sentinel-pw",
		"HALLPASS_REDIS_URL":      "redis://u:s3cret@h:6379",
		"HALLPASS_DATABASE_URL":   "postgres://app:hunter2@db/hp",
	}
	out, errOut, err := runConfigCheck(t, env)
	if err != nil {
		t.Fatalf("config check: %v\n%s%s", err, out, errOut)
	}
	for _, secret := range []string{"sentinel-pw", "s3cret", "hunter2"} {
		if strings.Contains(out+errOut, secret) {
			t.Errorf("config check printed %q:\n%s%s", secret, out, errOut)
		}
	}
	for env, want := range map[string]string{
		"HALLPASS_REDIS_PASSWORD": "****",
		"HALLPASS_REDIS_URL":      "redis://u:****@h:6379",
		"HALLPASS_DATABASE_URL":   "postgres://app:****@db/hp",
	} {
		if f := line(t, out, env); f[1] != want {
			t.Errorf("%s shown as %q, want %q", env, f[1], want)
		}
	}

	// A problem elsewhere must not bring the secrets out either.
	env["HALLPASS_DATABASE_URL"] = "mysql://app:hunter2@db/hp"
	out, errOut, err = runConfigCheck(t, env, "--redis-url", "rediss://u:s3cret@h:6380")
	if err == nil {
		t.Fatalf("config check accepted mysql:// and rediss://:\n%s", out)
	}
	for _, secret := range []string{"sentinel-pw", "s3cret", "hunter2"} {
		if strings.Contains(out+errOut+err.Error(), secret) {
			t.Errorf("config check printed %q:\n%s%s%v", secret, out, errOut, err)
		}
	}
}

func TestConfigCheckReportsEveryProblemAndFails(t *testing.T) {
	out, errOut, err := runConfigCheck(t, map[string]string{"HALLPASS_SESSION_LIFETIME": "forever", "HALLPASS_ADDR": "nope"})
	if err == nil {
		t.Fatalf("config check passed invalid values:\n%s", out)
	}
	if err.Error() != "config check: 2 problem(s)" {
		t.Errorf("error %q, want config check: 2 problem(s)", err)
	}
	for _, want := range []string{`HALLPASS_ADDR: "nope" is not valid`, `HALLPASS_SESSION_LIFETIME: "forever" is not valid`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(out+errOut, "config check: ok") {
		t.Errorf("config check said ok:\n%s%s", out, errOut)
	}
	// The table still shows what was read, so the operator sees it beside the problems.
	if f := line(t, out, "HALLPASS_SESSION_LIFETIME"); strings.Join(f[1:], " ") != "forever (env)" {
		t.Errorf("HALLPASS_SESSION_LIFETIME line %q", f)
	}
}

func TestConfigWithoutCheckIsAUsageError(t *testing.T) {
	for _, args := range [][]string{{"config"}, {"config", "show"}, {"config", "check", "--no-such-flag"}, {"config", "check", "extra"}} {
		if out, err := runCLI(t, nil, "", args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error\n%s", args, err, out)
		}
	}
}
