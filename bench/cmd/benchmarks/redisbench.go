package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// redisBenchResult is redis-benchmark's GET summary.
type redisBenchResult struct {
	target      string // which Redis
	concurrency int
	rps         float64
	p50, p99    time.Duration
}

// redisBenchmarkGET runs redis-benchmark's GET test against addr with c
// clients and n requests. The key it reads is set first to a value the size
// of a stored session, so every GET returns data, as a session read does.
func redisBenchmarkGET(ctx context.Context, addr string, c, n int) (redisBenchResult, error) {
	host, port, _ := strings.Cut(addr, ":")
	conn, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		return redisBenchResult{}, err
	}
	_, err = conn.Do("SET", "key:__rand_int__", strings.Repeat("x", sessionValueBytes))
	conn.Close()
	if err != nil {
		return redisBenchResult{}, err
	}
	out, err := exec.CommandContext(ctx, "redis-benchmark", "-h", host, "-p", port,
		"-c", strconv.Itoa(c), "-n", strconv.Itoa(n), "-t", "get", "--csv").Output()
	if err != nil {
		return redisBenchResult{}, fmt.Errorf("redis-benchmark: %w", err)
	}
	return parseRedisBenchCSV(string(out), c)
}

// sessionValueBytes is about what a stored session weighs (docs/SESSIONS.md).
const sessionValueBytes = 80

// parseRedisBenchCSV reads redis-benchmark --csv output:
//
//	"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
//	"GET","46403.71","0.114","0.016","0.111","0.167","0.239","2.895"
func parseRedisBenchCSV(out string, c int) (redisBenchResult, error) {
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		return redisBenchResult{}, fmt.Errorf("redis-benchmark output: %w", err)
	}
	if len(rows) < 2 {
		return redisBenchResult{}, fmt.Errorf("redis-benchmark output: %q", out)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, row := range rows[1:] {
		if row[0] != "GET" {
			continue
		}
		num := func(name string) (float64, error) {
			i, ok := col[name]
			if !ok || i >= len(row) {
				return 0, fmt.Errorf("redis-benchmark output has no %s column", name)
			}
			return strconv.ParseFloat(row[i], 64)
		}
		rps, err1 := num("rps")
		p50, err2 := num("p50_latency_ms")
		p99, err3 := num("p99_latency_ms")
		for _, err := range []error{err1, err2, err3} {
			if err != nil {
				return redisBenchResult{}, err
			}
		}
		ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
		return redisBenchResult{concurrency: c, rps: rps, p50: ms(p50), p99: ms(p99)}, nil
	}
	return redisBenchResult{}, fmt.Errorf("redis-benchmark output has no GET row: %q", out)
}
