package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// chart is one PNG the report embeds.
type chart struct {
	file, caption string
}

// pageKeys are the scenarios that serve the signed-in home page.
var pageKeys = map[string]bool{"cluster": true, "haproxy-1": true, "replica-redis": true, "replica-redis-nocache": true, "replica-memory": true, "jwt": true}

// drawCharts writes the report's charts into dir.
func drawCharts(rep *report, dir string) ([]chart, error) {
	var pages []series
	for _, s := range rep.reads {
		if pageKeys[s.key] {
			pages = append(pages, s)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	charts := []struct {
		file, title, ylabel, caption string
		series                       []series
		y                            func(point) float64
		logY                         bool
	}{
		{"throughput.png", "Signed-in home page: throughput", "requests per second", "Throughput of the signed-in home page by concurrency (median of the runs).",
			pages, func(p point) float64 { return p.throughput }, false},
		{"p50.png", "Signed-in home page: median latency", "p50 latency (ms)", "Median latency by concurrency.",
			pages, func(p point) float64 { return ms(p.p50) }, false},
		{"p99.png", "Signed-in home page: 99th percentile latency", "p99 latency (ms, log scale)", "99th percentile latency by concurrency (log scale).",
			pages, func(p point) float64 { return ms(p.p99) }, true},
		{"limits.png", "Against the limits", "requests per second (log scale)", "The page scenarios against what the pieces can do alone: redis-benchmark GET and a response HAProxy answers itself (log scale).",
			append(append([]series{}, rep.reads...), redisBenchSeries(rep.redisBench)...), func(p point) float64 { return p.throughput }, true},
	}
	var out []chart
	for _, c := range charts {
		if err := drawChart(filepath.Join(dir, c.file), c.title, c.ylabel, c.series, c.y, c.logY, rep.opts.concurrency); err != nil {
			return nil, fmt.Errorf("chart %s: %w", c.file, err)
		}
		out = append(out, chart{file: c.file, caption: c.caption})
	}
	return out, nil
}

// redisBenchSeries makes one series per Redis benchmarked.
func redisBenchSeries(runs []redisBenchResult) []series {
	var out []series
	for _, r := range runs {
		if len(out) == 0 || out[len(out)-1].label != "redis-benchmark GET: "+r.target {
			out = append(out, series{key: "redis-benchmark", label: "redis-benchmark GET: " + r.target})
		}
		s := &out[len(out)-1]
		s.points = append(s.points, point{concurrency: r.concurrency, throughput: r.rps, p50: r.p50, p99: r.p99})
	}
	return out
}

func drawChart(path, title, ylabel string, all []series, y func(point) float64, logY bool, conc []int) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "concurrent clients (keep-alive connections)"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, c := range conc {
		ticks = append(ticks, plot.Tick{Value: float64(c), Label: strconv.Itoa(c)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	} else {
		p.Y.Min = 0
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	var args []any
	for _, s := range all {
		var xys plotter.XYs
		for _, pt := range s.points {
			if v := y(pt); v > 0 {
				xys = append(xys, plotter.XY{X: float64(pt.concurrency), Y: v})
			}
		}
		if len(xys) > 0 {
			args = append(args, s.label, xys)
		}
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return err
	}
	// Room at the top for the legend.
	if !logY {
		p.Y.Max *= 1.35
	} else {
		p.Y.Max *= 10
	}
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}
