package cluster

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/hallpass/hallpass/internal/localsvc"
)

// backendName is the HAProxy backend of the replicas (deploy/haproxy/haproxy.cfg).
const backendName = "hallpass"

// haproxy is the load balancer in front of the replicas, run with the shared
// deploy/haproxy/haproxy.cfg and its addresses from the environment.
type haproxy struct {
	addr, statsAddr string
	proc            *process
	http            *http.Client
}

// newHAProxy prepares HAProxy on addr (its stats page on statsAddr) in front
// of the replicas at apps.
func newHAProxy(dir, deployDir, addr, statsAddr string, apps []string) (*haproxy, error) {
	bin, err := lookBinary("haproxy", "haproxy")
	if err != nil {
		return nil, err
	}
	pidFile := filepath.Join(dir, "haproxy.pid")
	env := minimalEnv("HAPROXY_BIND="+addr, "HAPROXY_STATS_BIND="+statsAddr)
	for i, a := range apps {
		env = append(env, fmt.Sprintf("HALLPASS_APP%d=%s", i+1, a))
	}
	h := &haproxy{addr: addr, statsAddr: statsAddr, http: &http.Client{Timeout: 2 * time.Second}}
	h.proc = &process{
		name:    "haproxy",
		log:     filepath.Join(dir, "haproxy.log"),
		pattern: regexp.QuoteMeta(pidFile),
		command: func() *exec.Cmd {
			// -db: stay in the foreground, so the cluster sees it exit; the
			// pid file puts the cluster's directory on its command line.
			cmd := exec.Command(bin, "-db", "-f", filepath.Join(deployDir, "haproxy", "haproxy.cfg"), "-p", pidFile)
			cmd.Dir = dir
			cmd.Env = env
			return cmd
		},
	}
	return h, nil
}

// start runs HAProxy and waits until its own health endpoint answers.
func (h *haproxy) start(ctx context.Context) error {
	if err := h.proc.start(); err != nil {
		return err
	}
	return h.proc.waitReady(ctx, 15*time.Second, func() error {
		res, err := h.http.Get("http://" + h.statsAddr + "/healthz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("haproxy /healthz: %s", res.Status)
		}
		return nil
	})
}

// stop ends HAProxy (SIGTERM: a hard stop, which is all a test cluster needs).
func (h *haproxy) stop() error {
	return h.proc.stop(syscall.SIGTERM, 10*time.Second)
}

// serverStatus returns the status HAProxy gives each replica ("UP", "DOWN",
// "UP 1/2" while going down, …), by server name, from its stats page.
func (h *haproxy) serverStatus() (map[string]string, error) {
	res, err := h.http.Get("http://" + h.statsAddr + "/;csv")
	if err != nil {
		return nil, fmt.Errorf("haproxy stats: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("haproxy stats: %s", res.Status)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("haproxy stats: %w", err)
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(body), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("haproxy stats: parse CSV: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	px, sv, st := col["pxname"], col["svname"], col["status"]
	status := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) > st && row[px] == backendName && row[sv] != "BACKEND" {
			status[row[sv]] = row[st]
		}
	}
	return status, nil
}

// waitStatus waits until HAProxy reports want for the named replica.
func (h *haproxy) waitStatus(ctx context.Context, name, want string, within time.Duration) error {
	return localsvc.Poll(ctx, within, pollEvery, func() error {
		st, err := h.serverStatus()
		if err != nil {
			return err
		}
		if st[name] != want {
			return fmt.Errorf("haproxy reports %s as %q, want %q", name, st[name], want)
		}
		return nil
	})
}
