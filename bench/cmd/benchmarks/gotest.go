package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// goBenchmark is one of the Go benchmarks `make bench` runs before this
// driver, with the exact command the Makefile uses. The Makefile saves each
// one's output under -gotest-dir; the driver reads it from there, or runs
// the command itself when the file is missing (running the driver alone).
type goBenchmark struct {
	file string
	args []string
}

var goBenchmarks = []goBenchmark{
	{"memory.txt", []string{"test", "-run", "^$", "-bench", "BenchmarkRedisMemoryPerSession", "-benchtime=1x", "./internal/session/"}},
	{"logout.txt", []string{"test", "-run", "^$", "-bench", "BenchmarkForcedLogoutScale", "-benchtime=2000x", "-count=3", "-timeout", "20m", "./internal/session/"}},
	{"hash.txt", []string{"test", "-run", "^$", "-bench", "BenchmarkHashDefault", "./internal/password/"}},
	{"primaries.txt", []string{"test", "-run", "^$", "-bench", "BenchmarkPrimaries", "-benchtime=30000x", "-count=3", "./internal/session/"}},
}

// benchFigures maps a benchmark name (without the -GOMAXPROCS suffix) to
// its figures by unit: "BenchmarkForcedLogoutScale/others=10000" →
// {"ns/op": 131341}. With -count > 1, each figure is the median.
type benchFigures map[string]map[string]float64

// goBenchResults reads (or produces) every goBenchmark's output in dir.
func goBenchResults(ctx context.Context, repo, dir string, progress io.Writer) (benchFigures, error) {
	all := benchFigures{}
	for _, b := range goBenchmarks {
		path := filepath.Join(dir, b.file)
		out, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(progress, "running go %s\n", strings.Join(b.args, " "))
			out, err = runGoBenchmark(ctx, repo, b, progress)
			if err == nil {
				err = os.WriteFile(path, out, 0o644)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("go %s: %w", strings.Join(b.args, " "), err)
		}
		text := string(out)
		if strings.Contains(text, "\nFAIL") || strings.HasPrefix(text, "FAIL") || !strings.Contains(text, "\nok ") {
			return nil, fmt.Errorf("%s: the benchmark did not pass:\n%s", path, text)
		}
		for name, figs := range parseGoBench(text) {
			all[name] = figs
		}
	}
	return all, nil
}

func runGoBenchmark(ctx context.Context, repo string, b goBenchmark, progress io.Writer) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", b.args...)
	cmd.Dir = repo
	var out strings.Builder
	cmd.Stdout = io.MultiWriter(&out, progress)
	cmd.Stderr = cmd.Stdout
	err := cmd.Run()
	return []byte(out.String()), err
}

// parseGoBench reads `go test -bench` result lines, taking the median of
// repeated ones (-count):
//
//	BenchmarkForcedLogoutScale/others=10000-2   200   131341 ns/op
func parseGoBench(text string) benchFigures {
	all := map[string]map[string][]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		if all[name] == nil {
			all[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				all[name][f[i+1]] = append(all[name][f[i+1]], v)
			}
		}
	}
	figs := benchFigures{}
	for name, units := range all {
		figs[name] = map[string]float64{}
		for unit, v := range units {
			figs[name][unit] = median(v)
		}
	}
	return figs
}
