package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/metrics"
	"github.com/hallpass/hallpass/internal/sessioncache"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// exportedSeries names every series a Hallpass replica exports: each
// metric family of internal/metrics (every call made once, since a vector
// appears only once it has a child, and the session cache's, which only a
// replica keeping one registers), histograms and summaries with their
// _bucket, _sum and _count series.
func exportedSeries(t *testing.T) (all map[string]bool, families []string) {
	t.Helper()
	m := metrics.New(func(context.Context) (int, error) { return 1, nil })
	now, failed := time.Now(), errors.New("failed")
	m.Login("succeeded")
	m.Revoked("admin", 1)
	m.Throttled("login")
	m.Store("find", now, failed)
	m.Database("user_by_id", now, failed)
	m.Request("/", "GET", 200, time.Millisecond)
	m.SessionCache(func() sessioncache.Stats { return sessioncache.Stats{} })
	gathered, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	all = map[string]bool{}
	for _, f := range gathered {
		name := f.GetName()
		all[name] = true
		if series := f.GetMetric(); len(series) > 0 {
			switch {
			case series[0].GetHistogram() != nil:
				all[name+"_bucket"], all[name+"_sum"], all[name+"_count"] = true, true, true
			case series[0].GetSummary() != nil:
				all[name+"_sum"], all[name+"_count"] = true, true
			}
		}
		// The Go runtime's and the process's own series are Prometheus's
		// standard ones; Hallpass's are what a dashboard must show.
		if !strings.HasPrefix(name, "hallpass_go_") && !strings.HasPrefix(name, "hallpass_process_") {
			families = append(families, name)
		}
	}
	sort.Strings(families)
	return all, families
}

// seriesName finds the names of Hallpass series in PromQL or in any text.
var seriesName = regexp.MustCompile(`\bhallpass_[a-zA-Z0-9_]+`)

// dashboardQueries returns every PromQL expression of the Grafana dashboard:
// its panels' targets (rows included) and its template variables.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("grafana", "hallpass.json"))
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr string `json:"expr"`
	}
	type panel struct {
		ID      int      `json:"id"`
		Title   string   `json:"title"`
		Type    string   `json:"type"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var dash struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana/hallpass.json is not valid JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("grafana/hallpass.json: uid %q, title %q, %d panels; want all three", dash.UID, dash.Title, len(dash.Panels))
	}
	var exprs []string
	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q queries nothing", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has a target without a query", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	return exprs
}

func TestDashboardQueriesOnlyExportedMetricsAndShowsEachOfThem(t *testing.T) {
	exported, families := exportedSeries(t)
	shown := map[string]bool{}
	for _, expr := range dashboardQueries(t) {
		for _, name := range seriesName.FindAllString(expr, -1) {
			if !exported[name] {
				t.Errorf("the dashboard queries %s, which Hallpass does not export: %s", name, expr)
			}
			shown[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")] = true
		}
	}
	for _, f := range families {
		if !shown[f] {
			t.Errorf("the dashboard shows no panel of %s", f)
		}
	}
}

func TestAlertRulesNameOnlyExportedMetrics(t *testing.T) {
	exported, _ := exportedSeries(t)
	for _, file := range []string{"alerts.yml", "alerts_test.yml"} {
		raw, err := os.ReadFile(filepath.Join("prometheus", file))
		if err != nil {
			t.Fatal(err)
		}
		names := seriesName.FindAllString(string(raw), -1)
		if len(names) == 0 {
			t.Errorf("prometheus/%s names no Hallpass metric", file)
		}
		for _, name := range names {
			if !exported[name] {
				t.Errorf("prometheus/%s names %s, which Hallpass does not export", file, name)
			}
		}
	}
}

// TestAlertRulesPassPromtool checks the rules and the scrape configuration
// and runs the rules' unit tests. Without promtool (Debian: prometheus) it
// skips on a quick run and fails where backends are required (make test).
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv(testsvc.RequireBackendsEnv) != "" {
			t.Fatalf("promtool is not installed (%s is set, so this fails; run `make test-deps`, which installs Debian's prometheus)", testsvc.RequireBackendsEnv)
		}
		t.Skipf("promtool is not installed (run `make test-deps`, or set %s to make this a failure)", testsvc.RequireBackendsEnv)
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
