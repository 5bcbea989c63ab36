package rediscluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/gomodule/redigo/redis"
)

// slotMap says which primary owns each slot. It is never changed once
// published: a change is a new map swapped in (Cluster.slots), so every
// command reads it without a lock.
type slotMap struct {
	owner     [SlotCount]uint16 // index into addrs; 0, "", while no owner is known
	addrs     []string
	primaries []string        // the addresses owning a slot, sorted
	nodes     map[string]bool // every node listed and not failed, replicas too
}

// primaryOf returns the address owning slot, or "".
func (m *slotMap) primaryOf(slot int) string { return m.addrs[m.owner[slot]] }

// with returns a copy of m in which addr owns slot.
func (m *slotMap) with(slot int, addr string) *slotMap {
	n := &slotMap{owner: m.owner, nodes: m.nodes}
	i := slices.Index(m.addrs, addr)
	n.addrs = m.addrs
	if i < 0 {
		i = len(m.addrs)
		n.addrs = append(slices.Clip(m.addrs), addr)
	}
	n.owner[slot] = uint16(i)
	n.primaries = m.primaries
	if !slices.Contains(m.primaries, addr) {
		n.primaries = slices.Sorted(slices.Values(append(slices.Clip(m.primaries), addr)))
	}
	return n
}

// mapBuilder assembles a slotMap from a CLUSTER SHARDS or SLOTS reply.
type mapBuilder struct {
	m     slotMap
	index map[string]uint16
}

func newMapBuilder() *mapBuilder {
	return &mapBuilder{m: slotMap{addrs: []string{""}, nodes: map[string]bool{}}, index: map[string]uint16{}}
}

func (b *mapBuilder) assign(from, to int64, addr string) error {
	if from < 0 || to >= SlotCount || from > to {
		return fmt.Errorf("bad slot range %d-%d", from, to)
	}
	i, ok := b.index[addr]
	if !ok {
		i = uint16(len(b.m.addrs))
		b.index[addr] = i
		b.m.addrs = append(b.m.addrs, addr)
		b.m.primaries = append(b.m.primaries, addr)
	}
	for s := from; s <= to; s++ {
		b.m.owner[s] = i
	}
	return nil
}

func (b *mapBuilder) done() (*slotMap, error) {
	if len(b.m.primaries) == 0 {
		return nil, errors.New("no slot is assigned")
	}
	slices.Sort(b.m.primaries)
	return &b.m, nil
}

// loadSlotMap asks the node at addr, on conn, for the slot map: CLUSTER
// SHARDS, or CLUSTER SLOTS from a server older than Redis 7.
func loadSlotMap(ctx context.Context, conn redis.Conn, addr string) (*slotMap, error) {
	host, _, _ := net.SplitHostPort(addr)
	shards, err := redis.Values(redis.DoContext(conn, ctx, "CLUSTER", "SHARDS"))
	if err == nil {
		return parseShards(shards, host)
	}
	if e, ok := err.(redis.Error); !ok || !strings.Contains(strings.ToLower(string(e)), "unknown subcommand") {
		return nil, fmt.Errorf("CLUSTER SHARDS: %w", err)
	}
	slots, err := redis.Values(redis.DoContext(conn, ctx, "CLUSTER", "SLOTS"))
	if err != nil {
		return nil, fmt.Errorf("CLUSTER SLOTS: %w", err)
	}
	return parseSlots(slots, host)
}

// parseShards reads CLUSTER SHARDS: per shard, "slots" (flat start, end
// pairs) and "nodes" (field, value lists). A shard's slots belong to its
// master; a master the cluster has marked failed keeps them until a replica
// takes over, and a failed master no longer owning slots (replaced, not yet
// back) is its own shard without slots.
func parseShards(shards []any, host string) (*slotMap, error) {
	b := newMapBuilder()
	for _, s := range shards {
		shard, err := fields(s)
		if err != nil {
			return nil, fmt.Errorf("CLUSTER SHARDS: %w", err)
		}
		ranges, _ := redis.Int64s(shard["slots"], nil)
		nodes, _ := redis.Values(shard["nodes"], nil)
		var primary string
		var primaryFailed bool
		for _, n := range nodes {
			node, err := fields(n)
			if err != nil {
				return nil, fmt.Errorf("CLUSTER SHARDS: node: %w", err)
			}
			addr, err := shardNodeAddr(node, host)
			if err != nil {
				return nil, fmt.Errorf("CLUSTER SHARDS: %w", err)
			}
			health, _ := redis.String(node["health"], nil)
			failed := health == "fail" || health == "failed" // 7.0 says fail, the documentation failed
			if !failed {
				b.m.nodes[addr] = true
			}
			if role, _ := redis.String(node["role"], nil); role == "master" && (primary == "" || primaryFailed && !failed) {
				primary, primaryFailed = addr, failed
			}
		}
		if primary == "" || len(ranges)%2 != 0 {
			continue
		}
		for i := 0; i < len(ranges); i += 2 {
			if err := b.assign(ranges[i], ranges[i+1], primary); err != nil {
				return nil, fmt.Errorf("CLUSTER SHARDS: %w", err)
			}
		}
	}
	return b.done()
}

// shardNodeAddr returns the address a CLUSTER SHARDS node is reached at: its
// preferred endpoint, else its IP; host (the one asked) when the node does
// not know its own.
func shardNodeAddr(node map[string]any, host string) (string, error) {
	port, err := redis.Int(node["port"], nil)
	if err != nil {
		return "", fmt.Errorf("node without a port: %w", err)
	}
	ep, _ := redis.String(node["endpoint"], nil)
	if ep == "" || ep == "?" {
		ep, _ = redis.String(node["ip"], nil)
	}
	if ep == "" || ep == "?" {
		ep = host
	}
	return net.JoinHostPort(ep, strconv.Itoa(port)), nil
}

// parseSlots reads CLUSTER SLOTS: start, end, the primary's [host, port,
// id, …], then its replicas.
func parseSlots(entries []any, host string) (*slotMap, error) {
	b := newMapBuilder()
	for _, e := range entries {
		entry, err := redis.Values(e, nil)
		if err != nil || len(entry) < 3 {
			return nil, fmt.Errorf("CLUSTER SLOTS: bad entry %v", e)
		}
		from, err1 := redis.Int64(entry[0], nil)
		to, err2 := redis.Int64(entry[1], nil)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("CLUSTER SLOTS: %w", err)
		}
		var primary string
		for i, n := range entry[2:] {
			node, err := redis.Values(n, nil)
			if err != nil || len(node) < 2 {
				return nil, fmt.Errorf("CLUSTER SLOTS: bad node %v", n)
			}
			h, _ := redis.String(node[0], nil)
			port, err := redis.Int(node[1], nil)
			if err != nil {
				return nil, fmt.Errorf("CLUSTER SLOTS: port: %w", err)
			}
			if h == "" || h == "?" {
				h = host
			}
			addr := net.JoinHostPort(h, strconv.Itoa(port))
			b.m.nodes[addr] = true
			if i == 0 {
				primary = addr
			}
		}
		if err := b.assign(from, to, primary); err != nil {
			return nil, fmt.Errorf("CLUSTER SLOTS: %w", err)
		}
	}
	return b.done()
}

// fields reads a RESP2 list of alternating names and values.
func fields(v any) (map[string]any, error) {
	list, err := redis.Values(v, nil)
	if err != nil {
		return nil, err
	}
	if len(list)%2 != 0 {
		return nil, fmt.Errorf("odd field list of %d", len(list))
	}
	m := make(map[string]any, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		name, err := redis.String(list[i], nil)
		if err != nil {
			return nil, fmt.Errorf("field name: %w", err)
		}
		m[name] = list[i+1]
	}
	return m, nil
}
