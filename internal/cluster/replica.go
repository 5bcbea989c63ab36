package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// Time limits for a replica: start-up pings Redis and the database; a stop
// takes the drain delay plus up to 15 s for in-flight requests.
const (
	replicaReadyWithin = 30 * time.Second
	replicaStopGrace   = 20 * time.Second
)

// replica is one `hallpass serve`.
type replica struct {
	id   string // HALLPASS_REPLICA_ID and HAProxy's server name
	addr string
	proc *process
}

// newReplica prepares replica id on addr, run from the cluster's link to the
// binary (so its command line names the cluster's directory) with env.
// testSecretKey is the replicas' HALLPASS_SECRET_KEY (32 bytes, test only).
const testSecretKey = "dGVzdC1vbmx5LXNlY3JldC1rZXktMzItYnl0ZXMhISE="

func newReplica(dir, bin, id, addr string, env []string) *replica {
	r := &replica{id: id, addr: addr}
	r.proc = &process{
		name:    id,
		log:     filepath.Join(dir, id+".log"),
		pattern: regexp.QuoteMeta(bin) + " serve --replica-id " + id + `( |$)`,
		command: func() *exec.Cmd {
			// The replica ID is also on the command line, so `ps` tells the
			// replicas apart.
			cmd := exec.Command(bin, "serve", "--replica-id", id)
			cmd.Dir = dir
			// Second factors are on by default and need a secret key: a
			// test-only one, which the scenario's env may replace.
			cmd.Env = append(minimalEnv(append([]string{"HALLPASS_SECRET_KEY=" + testSecretKey}, env...)...), "HALLPASS_ADDR="+addr)
			return cmd
		},
	}
	return r
}

// url is the replica's own address, bypassing the load balancer.
func (r *replica) url() string { return "http://" + r.addr }

// start runs the replica and waits until it answers /readyz.
func (r *replica) start(ctx context.Context, client *http.Client) error {
	if err := r.proc.start(); err != nil {
		return err
	}
	return r.proc.waitReady(ctx, replicaReadyWithin, func() error {
		res, err := client.Get(r.url() + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("%s /readyz: %s", r.id, res.Status)
		}
		return nil
	})
}

// terminate sends SIGTERM and waits while the replica drains and exits.
func (r *replica) terminate(drain time.Duration) error {
	return r.proc.stop(syscall.SIGTERM, drain+replicaStopGrace)
}
