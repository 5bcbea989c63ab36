package main

import (
	"os"
	"strings"
	"testing"
)

func TestPairedRatioComparesRunsOfTheSameRound(t *testing.T) {
	// As in a run on the busy machine: round by round the cached replica
	// did 1.19×, 0.86× and 1.10× the memory store; the ratio of the two
	// medians (10 900 / 12 700) would take them from different rounds and
	// say 0.86×.
	cached := &point{rounds: []float64{10700, 10900, 14630}}
	memory := &point{rounds: []float64{9000, 12700, 13300}}
	ratio, lo, hi, ok := pairedRatio(cached, memory)
	if !ok || ratio < 1.0999 || ratio > 1.1001 {
		t.Errorf("pairedRatio = %.4f, %v; want the median round's 1.10", ratio, ok)
	}
	if lo > 0.86 || hi < 1.18 {
		t.Errorf("spread %.2f–%.2f, want 0.86–1.19", lo, hi)
	}
	if _, _, _, ok := pairedRatio(cached, nil); ok {
		t.Error("pairedRatio with a missing point reported a ratio")
	}
}

// primariesOutput is BenchmarkPrimaries's output as `make bench` saves it
// (-count=3 over 20 000 operations, trimmed to what the parser reads and
// one line of each kind it skips).
const primariesOutput = `goos: linux
goarch: amd64
pkg: github.com/hallpass/hallpass/internal/session
cpu: AMD EPYC
BenchmarkPrimaries/primaries=1/op=pageview-2         	   20000	     25517 ns/op	        23.41 client-cpu-us/op	         1.000 cmds/op	     39189 ops/s	        15.50 redis-cpu-us/op
--- BENCH: BenchmarkPrimaries/primaries=1/op=pageview-2
    primaries_bench_test.go:64: per operation: get 1.000
BenchmarkPrimaries/primaries=1/op=pageview-2         	   20000	     24941 ns/op	        23.86 client-cpu-us/op	         1.000 cmds/op	     40094 ops/s	        15.09 redis-cpu-us/op
BenchmarkPrimaries/primaries=1/op=pageview-2         	   20000	     29006 ns/op	        27.04 client-cpu-us/op	         1.000 cmds/op	     34475 ops/s	        16.70 redis-cpu-us/op
BenchmarkPrimaries/primaries=1/op=signin-2           	   20000	     63009 ns/op	        34.74 client-cpu-us/op	        12.00 cmds/op	     15871 ops/s	        53.49 redis-cpu-us/op
BenchmarkPrimaries/primaries=3/op=pageview-2         	   20000	     51823 ns/op	        29.84 client-cpu-us/op	         1.000 cmds/op	     19297 ops/s	        19.37 redis-cpu-us/op
BenchmarkPrimaries/primaries=3/op=pageview-2         	   20000	     64714 ns/op	        39.00 client-cpu-us/op	         1.000 cmds/op	     15453 ops/s	        24.67 redis-cpu-us/op
BenchmarkPrimaries/primaries=3/op=pageview-2         	   20000	     44460 ns/op	        29.56 client-cpu-us/op	         1.000 cmds/op	     22492 ops/s	        19.42 redis-cpu-us/op
BenchmarkPrimaries/primaries=3/op=signin-2           	   20000	     56720 ns/op	        37.00 client-cpu-us/op	        12.00 cmds/op	     17631 ops/s	        65.06 redis-cpu-us/op
PASS
ok  	github.com/hallpass/hallpass/internal/session	26.472s
`

func TestPrimariesSectionPutsOneAndThreePrimariesSideBySide(t *testing.T) {
	r := &report{goBench: parseGoBench(primariesOutput), machine: machine{cores: 2}}
	md := r.markdown("docs/BENCHMARKS.md")
	_, section, ok := strings.Cut(md, "## Redis Cluster: 3 primaries vs 1\n")
	if !ok {
		t.Fatalf("no Redis Cluster section in:\n%s", md)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, want := range []string{
		// Medians of the three runs: 39 189 and 19 297 ops/s.
		"| Page view without the session cache (`FindCtx`: one `GET`) | 39189 | 19297 | 0.49× | 1.00 / 1.00 | 16 µs / 19 µs | 24 µs / 30 µs |",
		"| Sign-in, the store's part (`Create`, no password hash, no `WAIT`) | 15871 | 17631 | 1.11× | 12.00 / 12.00 |",
		// Measured in neither: shown as missing, not as zero.
		"| Last-seen refresh (`CommitCtx`, at most once a minute per session) | – | – | – | – | – | – |",
		"30\u202f000 operations per run, median of 3 runs",
		"share this machine's 2 cores",
		// (15.50 + 23.86) µs and (19.42 + 29.84) µs per page view on 2 cores.
		"caps it at about 50813 and 40601 per second on 2 cores",
		"execute no more commands per operation",
	} {
		if !strings.Contains(section, want) {
			t.Errorf("the section lacks %q:\n%s", want, section)
		}
	}

	if md := (&report{goBench: benchFigures{}}).markdown("docs/BENCHMARKS.md"); !strings.Contains(md, "## Redis Cluster: 3 primaries vs 1\n\nNot measured in this run.") {
		t.Error("without BenchmarkPrimaries's figures the section does not say it was not measured")
	}
}

// TestGoBenchmarksRunAsTheMakefileDoes checks that the command the driver
// runs for each saved output is the one `make bench` runs, so running the
// driver alone measures the same thing.
func TestGoBenchmarksRunAsTheMakefileDoes(t *testing.T) {
	makefile, err := os.ReadFile("../../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range goBenchmarks {
		args := make([]string, len(b.args))
		for i, a := range b.args {
			switch {
			case a == "^$":
				args[i] = "'^$$'"
			case i > 0 && b.args[i-1] == "-bench":
				args[i] = "'" + a + "'"
			default:
				args[i] = a
			}
		}
		line := "$(GO) " + strings.Join(args, " ") + " 2>&1 | tee bin/bench/" + b.file
		if !strings.Contains(string(makefile), line) {
			t.Errorf("the Makefile has no line\n\t%s", line)
		}
	}
}
