package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/hallpass/hallpass/internal/localsvc"
)

// Files the command keeps in the cluster's directory.
const (
	stateFile      = "state.json"  // written once the cluster is up
	supervisorLog  = "cluster.log" // the supervisor's own output
	upWithin       = 3 * time.Minute
	downWithin     = time.Minute
	defaultAddr    = "127.0.0.1:8090"
	defaultBinPath = "bin/hallpass"
)

// State is what `hallpass-cluster up` leaves in the cluster's directory for
// `down` (and for people): where the cluster is and which processes are its.
type State struct {
	URL           string    `json:"url"`
	StatsURL      string    `json:"stats_url"`
	Dir           string    `json:"dir"`
	DatabaseURL   string    `json:"database_url"`
	Env           []string  `json:"env"`
	SupervisorPID int       `json:"supervisor_pid"`
	Processes     []Process `json:"processes"`
	Started       time.Time `json:"started"`
}

// usage is printed for a missing or unknown subcommand.
const usage = `usage: hallpass-cluster up|down [flags]
  up     start the loopback cluster in the background and print its URL
  down   stop the cluster that up started
flags (up):   -dir DIR -addr HOST:PORT -db postgres|sqlite -hallpass PATH
flags (down): -dir DIR`

// Command runs hallpass-cluster with args (without the program name): the
// whole of cmd/hallpass-cluster, so main stays a few lines.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fl := flag.NewFlagSet("hallpass-cluster "+args[0], flag.ContinueOnError)
	fl.SetOutput(stderr)
	dir := fl.String("dir", defaultDir(), "the cluster's working directory (data, logs, state.json)")
	addr := fl.String("addr", defaultAddr, "HAProxy's listen address: the cluster's URL")
	db := fl.String("db", Postgres, "user database: postgres or sqlite")
	bin := fl.String("hallpass", defaultBinPath, "the hallpass binary the replicas run (make build)")
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	switch args[0] {
	case "up":
		return up(ctx, abs, args[1:], stdout, *bin)
	case "run":
		return supervise(ctx, Options{Hallpass: *bin, Dir: filepath.Join(abs, "run"), Addr: *addr, Database: *db, Log: stderr}, abs)
	case "down":
		return down(abs, stdout)
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
}

// defaultDir is $XDG_RUNTIME_DIR/hallpass-cluster, or under /tmp.
func defaultDir() string {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = os.TempDir()
	}
	return filepath.Join(base, "hallpass-cluster")
}

// up starts a supervisor (this program's `run`) in its own session, so it
// outlives the terminal and make, and waits until it has written the state
// file or died.
func up(ctx context.Context, dir string, flags []string, stdout io.Writer, bin string) error {
	if st, err := readState(dir); err == nil && alive(st.SupervisorPID) {
		return fmt.Errorf("a cluster is already running on %s (supervisor pid %d); stop it with `make cluster-down`", st.URL, st.SupervisorPID)
	}
	if err := clearDir(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(dir, supervisorLog))
	if err != nil {
		return err
	}
	defer log.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, append([]string{"run"}, flags...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the supervisor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	fmt.Fprintf(stdout, "Starting the loopback cluster (logs in %s)…\n", dir)
	deadline := time.NewTimer(upWithin)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if st, err := readState(dir); err == nil {
			fmt.Fprintf(stdout, `Hallpass is up on %s (3 replicas behind HAProxy; stats on %s).
Create the first administrator with:
  HALLPASS_DATABASE_URL='%s' %s user add admin --admin
Stop it with: make cluster-down
`, st.URL, st.StatsURL, st.DatabaseURL, bin)
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the cluster did not start (%v):\n%s", err, localsvc.LogTail(log.Name()))
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return ctx.Err()
		case <-deadline.C:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("the cluster did not start within %s:\n%s", upWithin, localsvc.LogTail(log.Name()))
		case <-tick.C:
		}
	}
}

// supervise starts the cluster, records it in the state file, and stops it
// when ctx ends (SIGTERM from `down`).
func supervise(ctx context.Context, opts Options, dir string) error {
	c, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	st := State{
		URL:           c.URL(),
		StatsURL:      c.StatsURL(),
		Dir:           c.Dir(),
		Env:           c.Env(),
		SupervisorPID: os.Getpid(),
		Processes:     c.Processes(),
		Started:       time.Now().UTC(),
	}
	for _, kv := range st.Env {
		if v, ok := strings.CutPrefix(kv, "HALLPASS_DATABASE_URL="); ok {
			st.DatabaseURL = v
		}
	}
	if err := writeState(dir, st); err != nil {
		return errors.Join(err, c.Stop())
	}
	fmt.Fprintf(opts.Log, "cluster: up on %s\n", c.URL())
	<-ctx.Done()
	fmt.Fprintln(opts.Log, "cluster: stopping")
	err = c.Stop()
	if rmErr := os.Remove(filepath.Join(dir, stateFile)); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
		err = errors.Join(err, rmErr)
	}
	fmt.Fprintf(opts.Log, "cluster: stopped (%v)\n", err)
	return err
}

// down asks the supervisor to stop the cluster, waits for it, and kills any
// process of the cluster that outlived it. The directory, with the logs,
// stays until the next `up`.
func down(dir string, stdout io.Writer) error {
	st, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "No cluster is running (no %s).\n", filepath.Join(dir, stateFile))
		return nil
	}
	if err != nil {
		return err
	}
	if alive(st.SupervisorPID) {
		if err := syscall.Kill(st.SupervisorPID, syscall.SIGTERM); err != nil {
			return fmt.Errorf("stop the supervisor (pid %d): %w", st.SupervisorPID, err)
		}
		deadline := time.Now().Add(downWithin)
		for alive(st.SupervisorPID) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond) // polling interval
		}
	}
	var killed []string
	for _, p := range st.Processes {
		if alive(p.PID) && cmdlineMatches(p.PID, p.Pattern) {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
			killed = append(killed, fmt.Sprintf("%s (pid %d)", p.Name, p.PID))
		}
	}
	if err := os.Remove(filepath.Join(dir, stateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(killed) > 0 {
		return fmt.Errorf("the supervisor left processes running, killed: %s (see %s)", strings.Join(killed, ", "), filepath.Join(dir, supervisorLog))
	}
	fmt.Fprintf(stdout, "Cluster on %s stopped; its logs stay in %s until the next make cluster.\n", st.URL, dir)
	return nil
}

// clearDir removes what an earlier cluster left in dir. It refuses a
// directory that does not look like one of ours.
func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || len(entries) == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, supervisorLog)); err != nil {
		return fmt.Errorf("%s is not empty and holds no %s: not removing it; choose another -dir", dir, supervisorLog)
	}
	return os.RemoveAll(dir)
}

func readState(dir string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	return st, nil
}

// writeState writes the state file atomically: `up` polls for it.
func writeState(dir string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}

// cmdlineMatches reports whether process pid's command line matches
// pattern, so that a recycled PID is never killed.
func cmdlineMatches(pid int, pattern string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return false
	}
	return re.MatchString(strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")))
}
