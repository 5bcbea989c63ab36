// Package metrics exposes Hallpass's Prometheus metrics: sign-ins by result,
// live sessions, revocations by reason, throttled attempts, session store and
// database latency and errors, HTTP requests by route pattern, the session
// cache of a replica that keeps one (hallpass_session_cache_*: reads it
// answered, its size, its link to Redis and the fences of revocations), and
// the running build (hallpass_build_info, which `hallpass version` also
// prints).
// Every name starts with hallpass_. The metrics are served on their own
// listener (HALLPASS_METRICS_ADDR), never on the public one.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors of one process, in a registry of its own
// (no global default registry).
type Metrics struct {
	registry     *prometheus.Registry
	logins       *prometheus.CounterVec
	revocations  *prometheus.CounterVec
	throttled    *prometheus.CounterVec
	storeLatency *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
	dbLatency    *prometheus.HistogramVec
	dbErrors     *prometheus.CounterVec
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

// latencyBuckets suit calls that take tens of microseconds to a few
// seconds (the 2 s store timeout).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// New returns the metrics of a process. activeSessions is called at each
// scrape to report the live-session count.
func New(activeSessions func(ctx context.Context) (int, error)) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallpass_logins_total", Help: "Sign-in attempts by result.",
		}, []string{"result"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallpass_session_revocations_total", Help: "Sessions ended before their time, by reason.",
		}, []string{"reason"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallpass_throttled_attempts_total", Help: "Attempts refused by throttling, by kind.",
		}, []string{"kind"}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hallpass_session_store_duration_seconds", Help: "Session store call latency by operation.", Buckets: latencyBuckets,
		}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallpass_session_store_errors_total", Help: "Failed session store calls by operation.",
		}, []string{"op"}),
		dbLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hallpass_database_duration_seconds", Help: "Database call latency by operation.", Buckets: latencyBuckets,
		}, []string{"op"}),
		dbErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallpass_database_errors_total", Help: "Failed database calls by operation.",
		}, []string{"op"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallpass_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hallpass_http_request_duration_seconds", Help: "HTTP request latency by route pattern.", Buckets: latencyBuckets,
		}, []string{"route"}),
	}
	m.registry.MustRegister(m.logins, m.revocations, m.throttled, m.storeLatency, m.storeErrors,
		m.dbLatency, m.dbErrors, m.httpRequests, m.httpDuration, buildInfo(ReadBuild()),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "hallpass"}))
	// The Go runtime's metrics too carry the hallpass_ prefix, so every
	// series of this process is found under one name space.
	prometheus.WrapRegistererWithPrefix("hallpass_", m.registry).MustRegister(collectors.NewGoCollector())
	if activeSessions != nil {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hallpass_active_sessions", Help: "Signed-in sessions that are live now (-1 if the store cannot be read).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := activeSessions(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Registry is the registry the metrics live in, for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Login counts a sign-in attempt with its result (succeeded, failed,
// disabled, throttled, limited, unavailable).
func (m *Metrics) Login(result string) {
	if m == nil {
		return
	}
	m.logins.WithLabelValues(result).Inc()
}

// Revoked counts n sessions ended for reason.
func (m *Metrics) Revoked(reason string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.revocations.WithLabelValues(reason).Add(float64(n))
}

// Throttled counts an attempt refused by throttling.
func (m *Metrics) Throttled(kind string) {
	if m == nil {
		return
	}
	m.throttled.WithLabelValues(kind).Inc()
}

// observe records one call's latency and, if it failed, an error.
func observe(lat *prometheus.HistogramVec, errs *prometheus.CounterVec, op string, start time.Time, err error) {
	lat.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		errs.WithLabelValues(op).Inc()
	}
}

// Store records a session store call.
func (m *Metrics) Store(op string, start time.Time, err error) {
	if m == nil {
		return
	}
	observe(m.storeLatency, m.storeErrors, op, start, err)
}

// Database records a database call.
func (m *Metrics) Database(op string, start time.Time, err error) {
	if m == nil {
		return
	}
	observe(m.dbLatency, m.dbErrors, op, start, err)
}

// Request records one finished HTTP request under its route pattern (never
// its raw path, which would give every session ID its own series).
func (m *Metrics) Request(route, method string, status int, took time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(took.Seconds())
}
