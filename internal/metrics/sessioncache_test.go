package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/metrics"
	"github.com/hallpass/hallpass/internal/sessioncache"
)

// scrape returns what a Prometheus scrape of m's handler reads.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d\n%s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestSessionCacheMetricsReportTheCachesStats(t *testing.T) {
	types := []string{
		"# TYPE hallpass_session_cache_hits_total counter",
		"# TYPE hallpass_session_cache_misses_total counter",
		"# TYPE hallpass_session_cache_bypassed_total counter",
		"# TYPE hallpass_session_cache_invalidations_total counter",
		"# TYPE hallpass_session_cache_flushes_total counter",
		"# TYPE hallpass_session_cache_evictions_total counter",
		"# TYPE hallpass_session_cache_entries gauge",
		"# TYPE hallpass_session_cache_bytes gauge",
		"# TYPE hallpass_session_cache_link_up gauge",
		"# TYPE hallpass_session_cache_trusted gauge",
		"# TYPE hallpass_session_cache_lease_age_seconds gauge",
		"# TYPE hallpass_session_cache_heartbeats_total counter",
		"# TYPE hallpass_session_cache_fences_total counter",
	}
	for _, tc := range []struct {
		name  string
		stats sessioncache.Stats
		want  []string
	}{
		{
			name: "trusted",
			stats: sessioncache.Stats{
				Hits: 900, Misses: 80, Bypassed: 20,
				Invalidations: 30, Flushes: 2, Evictions: 5,
				Entries: 75, Bytes: 38400,
				LinkUp: true, Trusted: true, LeaseAge: 40 * time.Millisecond,
				Heartbeats: 1200, FencesConfirmed: 11, FencesLapsed: 3,
			},
			want: []string{
				"hallpass_session_cache_hits_total 900",
				"hallpass_session_cache_misses_total 80",
				"hallpass_session_cache_bypassed_total 20",
				"hallpass_session_cache_invalidations_total 30",
				"hallpass_session_cache_flushes_total 2",
				"hallpass_session_cache_evictions_total 5",
				"hallpass_session_cache_entries 75",
				"hallpass_session_cache_bytes 38400",
				"hallpass_session_cache_link_up 1",
				"hallpass_session_cache_trusted 1",
				"hallpass_session_cache_lease_age_seconds 0.04",
				"hallpass_session_cache_heartbeats_total 1200",
				`hallpass_session_cache_fences_total{result="confirmed"} 11`,
				`hallpass_session_cache_fences_total{result="lapsed"} 3`,
			},
		},
		{
			// The link went down and the cache was flushed: no lease to age.
			name:  "link down",
			stats: sessioncache.Stats{Bypassed: 4, Flushes: 1, LeaseAge: -1},
			want: []string{
				"hallpass_session_cache_bypassed_total 4",
				"hallpass_session_cache_entries 0",
				"hallpass_session_cache_link_up 0",
				"hallpass_session_cache_trusted 0",
				"hallpass_session_cache_lease_age_seconds -1",
				`hallpass_session_cache_fences_total{result="confirmed"} 0`,
				`hallpass_session_cache_fences_total{result="lapsed"} 0`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New(nil)
			calls := 0
			m.SessionCache(func() sessioncache.Stats { calls++; return tc.stats })
			body := scrape(t, m)
			if calls != 1 {
				t.Errorf("one scrape read the stats %d times, want once (one snapshot per scrape)", calls)
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(body, "\n") {
				lines[l] = true
			}
			for _, want := range append(types, tc.want...) {
				if !lines[want] {
					t.Errorf("the scrape lacks %q", want)
				}
			}
			for l := range lines {
				if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "hallpass_") {
					t.Errorf("series %q does not start with hallpass_", l)
				}
			}
		})
	}
}
