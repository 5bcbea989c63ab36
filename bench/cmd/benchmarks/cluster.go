package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/cluster"
)

// clusterRig is what scenario 1 needs of the three-replica loopback cluster:
// HAProxy (round robin, deploy/haproxy/haproxy.cfg) in front of three
// `hallpass serve`, sessions in Redis found through Sentinel.
type clusterRig struct {
	// URL is HAProxy's hallpass frontend, e.g. http://127.0.0.1:41234.
	URL string
	// StatsURL is HAProxy's stats frontend; its /healthz is answered by
	// HAProxy itself, which makes it the static-response limit.
	StatsURL string
	// RedisPrimary is the current Redis primary's host:port, for INFO
	// commandstats and redis-benchmark.
	RedisPrimary string
	// PIDs are the processes whose CPU time a page view costs: the
	// replicas, HAProxy and the Redis primary.
	PIDs []int
	// HAProxyPID is HAProxy's process, for the static response's CPU.
	HAProxyPID int
	// Replicas are the replicas' own URLs, bypassing HAProxy.
	Replicas []string
	// AddUser creates a user in the cluster's database.
	AddUser func(ctx context.Context, name, password string) error
	// Close stops the cluster.
	Close func()
}

// errNoCluster says the cluster cannot run here; the report then measures a
// stand-in and says so.
var errNoCluster = errors.New("the loopback cluster (internal/cluster) could not start")

// startCluster starts internal/cluster's topology with the hallpass binary
// at bin, as production runs it (Sentinel, WAIT 1, PostgreSQL), under dir,
// with the configuration files of the repository at repo (this command runs
// in the bench module, whose directory has no deploy/).
func startCluster(ctx context.Context, bin, repo, dir string, log io.Writer) (*clusterRig, error) {
	c, err := cluster.Start(ctx, cluster.Options{
		Hallpass:  bin,
		Dir:       filepath.Join(dir, "cluster"),
		DeployDir: filepath.Join(repo, "deploy"),
		Log:       log,
		// Nothing is in flight when the benchmark stops it.
		DrainDelay: time.Millisecond,
	})
	if errors.Is(err, cluster.ErrNotInstalled) {
		return nil, fmt.Errorf("%w: %v", errNoCluster, err)
	}
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	rig := &clusterRig{
		URL:      strings.TrimSuffix(c.URL(), "/"),
		StatsURL: strings.TrimSuffix(c.StatsURL(), "/"),
		AddUser: func(ctx context.Context, name, password string) error {
			return c.AddUser(ctx, name, password, false)
		},
		Close: func() { _ = c.Stop() },
	}
	if rig.RedisPrimary, err = c.RedisPrimary(); err != nil {
		rig.Close()
		return nil, fmt.Errorf("cluster: Redis primary: %w", err)
	}
	primaryPID, err := redisPID(rig.RedisPrimary)
	if err != nil {
		rig.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	rig.PIDs = append(rig.PIDs, primaryPID)
	for i := range cluster.Replicas {
		rig.Replicas = append(rig.Replicas, strings.TrimSuffix(c.ReplicaURL(i), "/"))
	}
	for _, p := range c.Processes() {
		switch {
		case strings.HasPrefix(p.Name, "app"):
			rig.PIDs = append(rig.PIDs, p.PID)
		case p.Name == "haproxy":
			rig.PIDs = append(rig.PIDs, p.PID)
			rig.HAProxyPID = p.PID
		}
	}
	return rig, nil
}
