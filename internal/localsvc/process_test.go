package localsvc_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/localsvc"
	"github.com/hallpass/hallpass/internal/testkit"
)

func TestStopKillsAProcessThatIgnoresTheSignal(t *testing.T) {
	// The shell ignores SIGTERM, and so does the sleep it turns into.
	p, err := localsvc.Start(exec.Command("sh", "-c", `trap "" TERM; exec sleep 30`), filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	// Once it is sleep, the trap is in place.
	testkit.Eventually(t, 10*time.Second, "the shell to turn into sleep", func() error {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid()))
		if err != nil || string(comm) != "sleep\n" {
			return fmt.Errorf("not sleeping yet: %q, %v", comm, err)
		}
		return nil
	})
	if err := p.Stop(syscall.SIGTERM, 200*time.Millisecond); err == nil {
		t.Fatal("Stop = nil, want an error saying the process had to be killed")
	}
	if p.Running() {
		t.Fatal("process still running after Stop")
	}
}

func TestWaitReadyGivesUpWhenTheProcessExits(t *testing.T) {
	p, err := localsvc.Start(exec.Command("sh", "-c", "echo broken config; exit 1"), filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(t.Context(), time.Minute, 10*time.Millisecond, func() error { return errors.New("not ready") })
	if !errors.Is(err, localsvc.ErrExited) {
		t.Fatalf("WaitReady = %v, want an error wrapping ErrExited", err)
	}
	if !strings.Contains(err.Error(), "broken config") {
		t.Errorf("WaitReady error %q does not quote the log", err)
	}
}
