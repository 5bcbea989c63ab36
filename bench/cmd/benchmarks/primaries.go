package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// primariesOps are BenchmarkPrimaries's operations, in the order the
// section shows them.
var primariesOps = []struct{ key, label string }{
	{"pageview", "Page view without the session cache (`FindCtx`: one `GET`)"},
	{"refresh", "Last-seen refresh (`CommitCtx`, at most once a minute per session)"},
	{"signin", "Sign-in, the store's part (`Create`, no password hash, no `WAIT`)"},
}

// primariesFigure is one of BenchmarkPrimaries's figures: op's unit with
// n primaries, and whether the run had it.
func (r *report) primariesFigure(n int, op, unit string) (float64, bool) {
	v, ok := r.goBench[fmt.Sprintf("BenchmarkPrimaries/primaries=%d/op=%s", n, op)][unit]
	return v, ok
}

// primariesSection writes the side-by-side of one Redis and a Redis
// Cluster of three primaries (BenchmarkPrimaries).
func (r *report) primariesSection(w func(string, ...any)) {
	w("## Redis Cluster: 3 primaries vs 1\n\n")
	if _, ok := r.primariesFigure(1, "pageview", "ops/s"); !ok {
		w("Not measured in this run.\n\n")
		return
	}
	w("The session store's own operations, without HTTP, against one Redis (`session.NewRedisStore`) and against a Redis\n")
	w("Cluster of three primaries without replicas (`session.NewRedisClusterStore` over `internal/rediscluster`, pooled as\n")
	w("`hallpass serve` pools it), with 32 requests in flight and 10 000 signed-in users of distinct shard tags to pick\n")
	w("from at random (`BenchmarkPrimaries`, %s operations per run, median of %s runs). Redis commands are those the\n", thousands(goBenchArg("primaries.txt", "-benchtime=", "x")), goBenchArg("primaries.txt", "-count=", ""))
	w("primaries executed (`INFO commandstats` deltas summed over them), a script's own commands included; CPU is Redis's\n")
	w("(`used_cpu_user` + `used_cpu_sys`, summed over the primaries) and the benchmark process's (the store, redigo and,\n")
	w("for the cluster, the routing layer), per operation.\n\n")
	w("| Operation | 1 primary, ops/s | 3 primaries, ops/s | 3 ÷ 1 | Redis commands/op (1 / 3) | Redis CPU/op (1 / 3) | Client CPU/op (1 / 3) |\n")
	w("|---|---:|---:|---:|---:|---:|---:|\n")
	for _, op := range primariesOps {
		one, ok1 := r.primariesFigure(1, op.key, "ops/s")
		three, ok3 := r.primariesFigure(3, op.key, "ops/s")
		ratio := "–"
		if ok1 && ok3 && one > 0 {
			ratio = fmt.Sprintf("%.2f×", three/one)
		}
		w("| %s | %s | %s | %s | %s | %s | %s |\n", op.label, r.primariesCell(1, op.key), r.primariesCell(3, op.key), ratio,
			r.primariesPair(op.key, "cmds/op", func(v float64) string { return fmt.Sprintf("%.2f", v) }),
			r.primariesPair(op.key, "redis-cpu-us/op", micros),
			r.primariesPair(op.key, "client-cpu-us/op", micros))
	}
	w("\n")
	// What bounds the figures: every process here shares the same cores.
	oneCPU := r.primariesCPU(1, "pageview")
	threeCPU := r.primariesCPU(3, "pageview")
	w("The benchmark process and every Redis server share this machine's %d cores, so three primaries cannot do three\n", r.machine.cores)
	w("times one primary's work here: the operations are bound by the CPU they cost on both sides together")
	if oneCPU > 0 && threeCPU > 0 && r.machine.cores > 0 {
		w(" (a page view\n")
		w("costs %s over one Redis and %s over the cluster, which caps it at about %.0f and %.0f per second on %d cores)",
			fmtDur(oneCPU), fmtDur(threeCPU),
			float64(r.machine.cores)/oneCPU.Seconds(), float64(r.machine.cores)/threeCPU.Seconds(), r.machine.cores)
	}
	w(",\nnot by any one Redis. What the side-by-side does show is the routing layer's price per operation (client CPU)\n")
	w("and %s; on machines of their own, each primary would bring\n", r.primariesExtraCommands())
	w("its own cores. Throughput swings from run to run on this shared machine; CPU per operation is the steadier figure.\n\n")
}

// primariesExtraCommands says whether the cluster made Redis execute more
// commands per operation than one Redis did.
func (r *report) primariesExtraCommands() string {
	worst, known := 0.0, false
	for _, op := range primariesOps {
		one, ok1 := r.primariesFigure(1, op.key, "cmds/op")
		three, ok3 := r.primariesFigure(3, op.key, "cmds/op")
		if ok1 && ok3 {
			worst, known = max(worst, three-one), true
		}
	}
	switch {
	case !known:
		return "the commands each operation needs"
	case worst < 0.01:
		return "that the cluster makes Redis execute no more commands per operation"
	default:
		return fmt.Sprintf("that the cluster makes Redis execute up to %.2f more commands per operation", math.Round(worst*100)/100)
	}
}

// primariesCell is op's ops/s with n primaries.
func (r *report) primariesCell(n int, op string) string {
	if v, ok := r.primariesFigure(n, op, "ops/s"); ok {
		return fmt.Sprintf("%.0f", v)
	}
	return "–"
}

// primariesPair shows op's unit with 1 and 3 primaries: "12.0 / 12.0".
func (r *report) primariesPair(op, unit string, format func(float64) string) string {
	one, ok1 := r.primariesFigure(1, op, unit)
	three, ok3 := r.primariesFigure(3, op, unit)
	if !ok1 && !ok3 {
		return "–"
	}
	cell := func(v float64, ok bool) string {
		if !ok {
			return "–"
		}
		return format(v)
	}
	return cell(one, ok1) + " / " + cell(three, ok3)
}

// primariesCPU is the CPU an operation costs Redis and the benchmark
// process together, or 0 if the run lacks either figure.
func (r *report) primariesCPU(n int, op string) time.Duration {
	redis, okR := r.primariesFigure(n, op, "redis-cpu-us/op")
	client, okC := r.primariesFigure(n, op, "client-cpu-us/op")
	if !okR || !okC {
		return 0
	}
	return time.Duration((redis + client) * float64(time.Microsecond))
}

func micros(v float64) string {
	return fmtDur(time.Duration(v * float64(time.Microsecond)))
}

// goBenchArg is the value of the argument of goBenchmarks' file that
// starts with prefix, without suffix: goBenchArg("primaries.txt",
// "-count=", "") is "3". It is "?" if there is none.
func goBenchArg(file, prefix, suffix string) string {
	for _, b := range goBenchmarks {
		if b.file != file {
			continue
		}
		for _, a := range b.args {
			if v, ok := strings.CutPrefix(a, prefix); ok {
				return strings.TrimSuffix(v, suffix)
			}
		}
	}
	return "?"
}
