package redisx

import (
	"errors"
	"testing"
)

// ReplicaConnLifetime is replicaConnLifetime, for the tests outside the
// package.
const ReplicaConnLifetime = replicaConnLifetime

// The INFO replication fields of a replica, as Redis 7.0 reports them, in
// the states that decide whether it may serve reads.
func TestSyncedReplica(t *testing.T) {
	for _, tc := range []struct {
		name string
		info string
		ok   bool
	}{
		{"linked", "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nmaster_last_io_seconds_ago:0\r\nmaster_sync_in_progress:0\r\n", true},
		{"primary lost after a sync", "# Replication\r\nrole:slave\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\nmaster_sync_in_progress:0\r\nslave_repl_offset:50\r\nmaster_link_down_since_seconds:1\r\n", true},
		{"never synced since it started", "# Replication\r\nrole:slave\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\nmaster_sync_in_progress:0\r\nslave_repl_offset:1\r\nmaster_link_down_since_seconds:-1\r\n", false},
		{"first full sync under way", "# Replication\r\nrole:slave\r\nmaster_link_status:down\r\nmaster_sync_in_progress:1\r\nmaster_link_down_since_seconds:-1\r\n", false},
		{"fields missing", "# Replication\r\nrole:slave\r\n", false},
		{"just promoted", "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid2:6f63c625f472494f91db887c7ef764c4262956f1\r\nsecond_repl_offset:51\r\n", true},
		{"a primary that was never a replica", "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nsecond_repl_offset:-1\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := syncedReplica(parseInfo(tc.info))
			if tc.ok && err != nil {
				t.Fatalf("syncedReplica = %v, want usable", err)
			}
			if !tc.ok && !errors.Is(err, errNotReplica) {
				t.Fatalf("syncedReplica = %v, want errNotReplica", err)
			}
		})
	}
}

// How far along the replication stream a server is, as INFO replication
// says: what a replica has applied, or a promoted replica's own stream.
func TestReplicationOffset(t *testing.T) {
	for _, tc := range []struct {
		name string
		info string
		want int64 // -1: errNotReplica
	}{
		{"replica", "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nslave_read_repl_offset:9000\r\nslave_repl_offset:8979\r\nmaster_repl_offset:8979\r\n", 8979},
		{"replica that lost its primary", "# Replication\r\nrole:slave\r\nmaster_link_status:down\r\nslave_repl_offset:50\r\nmaster_link_down_since_seconds:1\r\nmaster_repl_offset:50\r\n", 50},
		{"just promoted", "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_repl_offset:9021\r\nsecond_repl_offset:8980\r\n", 9021},
		{"replica without its offset", "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nmaster_repl_offset:8979\r\n", -1},
		{"offset not a number", "# Replication\r\nrole:slave\r\nslave_repl_offset:many\r\n", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := replicationOffset(parseInfo(tc.info))
			if tc.want < 0 {
				if !errors.Is(err, errNotReplica) {
					t.Fatalf("replicationOffset = %d, %v; want errNotReplica", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("replicationOffset = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
