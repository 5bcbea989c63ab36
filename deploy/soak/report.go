package main

import (
	"fmt"
	"io"
	"time"

	"github.com/hallpass/hallpass/internal/cluster"
)

// report prints the samples as a table and the slope of each series. A
// replica's series restart with each process (a rolling restart gives it a
// new one), so its slopes are taken over its longest run of one process
// after its first sample.
func report(w io.Writer, samples []sample) {
	fmt.Fprintf(w, "  samples (RSS MiB / goroutines / open files per replica; Redis primary used_memory and RSS, MiB):\n")
	fmt.Fprintf(w, "    %7s", "time")
	for i := range cluster.Replicas {
		fmt.Fprintf(w, " | %-22s", fmt.Sprintf("app%d", i+1))
	}
	fmt.Fprintf(w, " | redis\n")
	for _, s := range samples {
		fmt.Fprintf(w, "    %7s", s.at.Round(time.Second))
		for _, r := range s.replicas {
			if r.err != nil {
				fmt.Fprintf(w, " | %-22s", "("+shorten(r.err.Error(), 20)+")")
				continue
			}
			fmt.Fprintf(w, " | %-22s", fmt.Sprintf("%.1f / %.0f / %.0f", r.rssKiB/1024, r.goroutines, r.fds))
		}
		if s.redisErr != nil {
			fmt.Fprintf(w, " | (%s)\n", shorten(s.redisErr.Error(), 30))
		} else {
			fmt.Fprintf(w, " | %.2f / %.1f\n", s.redis["used_memory"]/(1<<20), s.redis["used_memory_rss"]/(1<<20))
		}
	}

	fmt.Fprintf(w, "  slopes (least squares, per minute):\n")
	for i := range cluster.Replicas {
		pts := longestRun(samples, i)
		if len(pts) < 3 {
			fmt.Fprintf(w, "    app%d: fewer than 3 samples of one process\n", i+1)
			continue
		}
		span := pts[len(pts)-1].at - pts[0].at
		fmt.Fprintf(w, "    app%d (pid %d, %s, %d samples): RSS %+.2f MiB/min, goroutines %+.1f/min, open files %+.1f/min\n",
			i+1, pts[0].replicas[i].pid, span.Round(time.Second), len(pts),
			slope(pts, func(s sample) float64 { return s.replicas[i].rssKiB / 1024 }),
			slope(pts, func(s sample) float64 { return s.replicas[i].goroutines }),
			slope(pts, func(s sample) float64 { return s.replicas[i].fds }))
	}
	var redisPts []sample
	for _, s := range samples {
		if s.redisErr == nil {
			redisPts = append(redisPts, s)
		}
	}
	if len(redisPts) >= 3 {
		fmt.Fprintf(w, "    redis primary (%d samples): used_memory %+.3f MiB/min, RSS %+.3f MiB/min\n", len(redisPts),
			slope(redisPts, func(s sample) float64 { return s.redis["used_memory"] / (1 << 20) }),
			slope(redisPts, func(s sample) float64 { return s.redis["used_memory_rss"] / (1 << 20) }))
	}
}

// longestRun returns the longest run of samples in which replica i was one
// process, read without error, less the process's first sample: a replica
// just started is still warming up (its RSS grows for the first seconds of
// load), which would read as a leak.
func longestRun(samples []sample, i int) []sample {
	var best, cur []sample
	pid, seen := 0, 0
	for _, s := range samples {
		r := s.replicas[i]
		if r.pid != pid {
			pid, seen, cur = r.pid, 0, nil
		}
		if r.err != nil {
			cur = nil
			continue
		}
		if seen++; seen == 1 {
			continue
		}
		cur = append(cur, s)
		if len(cur) > len(best) {
			best = cur
		}
	}
	return best
}

// slope is the least-squares slope of f over the samples, per minute.
func slope(pts []sample, f func(sample) float64) float64 {
	var n, sx, sy, sxx, sxy float64
	for _, p := range pts {
		x, y := p.at.Minutes(), f(p)
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
