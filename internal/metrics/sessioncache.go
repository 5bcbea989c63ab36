package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallpass/hallpass/internal/sessioncache"
)

// SessionCache registers the metrics of this replica's session cache
// (hallpass_session_cache_*), read from stats once per scrape: the cache
// keeps its own counters, so nothing is counted twice or on the read path.
// Call it once, and only in the process that owns the cache and its link.
func (m *Metrics) SessionCache(stats func() sessioncache.Stats) {
	if m == nil {
		return
	}
	m.registry.MustRegister(newCacheCollector(stats))
}

// cacheCollector turns one sessioncache.Stats snapshot into the cache's
// series at each scrape.
type cacheCollector struct {
	stats func() sessioncache.Stats

	hits, misses, bypassed            *prometheus.Desc
	invalidations, flushes, evictions *prometheus.Desc
	entries, bytes                    *prometheus.Desc
	linkUp, trusted, leaseAge         *prometheus.Desc
	heartbeats, fences                *prometheus.Desc
}

func newCacheCollector(stats func() sessioncache.Stats) *cacheCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("hallpass_session_cache_"+name, help, labels, nil)
	}
	return &cacheCollector{
		stats: stats,
		hits:  desc("hits_total", "Session reads the cache answered, without a Redis round trip."),
		misses: desc("misses_total",
			"Session reads the cache could not answer while trusted, so Redis did."),
		bypassed: desc("bypassed_total",
			"Session reads sent to Redis because the cache was not trusted (link down or lease lapsed)."),
		invalidations: desc("invalidations_total",
			"Session keys invalidated, cached or not: Redis said they changed, or this replica wrote them."),
		flushes: desc("flushes_total",
			"Times the whole cache was dropped: the invalidation link was redialled or its lease lapsed."),
		evictions: desc("evictions_total",
			"Cached sessions dropped, least recently used first, to stay within HALLPASS_SESSION_CACHE_ENTRIES and _MIB."),
		entries: desc("entries", "Sessions in the cache now."),
		bytes:   desc("bytes", "Bytes the cached sessions take now."),
		linkUp: desc("link_up",
			"1 while the invalidation connection is subscribed to Redis's invalidations, else 0."),
		trusted: desc("trusted",
			fmt.Sprintf("1 while the cache answers reads (link up and a heartbeat heard back within the %v lease), else 0: reads go to Redis.", sessioncache.Lease)),
		leaseAge: desc("lease_age_seconds",
			fmt.Sprintf("Time since the heartbeat last heard back was sent; the cache is trusted only up to %g s. -1 when none has been heard since the last flush.", sessioncache.Lease.Seconds())),
		heartbeats: desc("heartbeats_total", "Heartbeats Redis accepted from this replica's link."),
		fences: desc("fences_total",
			"Revocations made here that waited for caching replicas to drop the ended sessions, by how the wait ended: "+
				fmt.Sprintf("confirmed (every caching replica confirmed, or none was caching) or lapsed (waited out the %v lease for one that did not confirm).", sessioncache.Lease),
			"result"),
	}
}

// Describe implements prometheus.Collector.
func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.hits, c.misses, c.bypassed, c.invalidations, c.flushes, c.evictions,
		c.entries, c.bytes, c.linkUp, c.trusted, c.leaseAge, c.heartbeats, c.fences,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one snapshot, so the series of
// a scrape agree with each other.
func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(c.hits, s.Hits)
	counter(c.misses, s.Misses)
	counter(c.bypassed, s.Bypassed)
	counter(c.invalidations, s.Invalidations)
	counter(c.flushes, s.Flushes)
	counter(c.evictions, s.Evictions)
	gauge(c.entries, float64(s.Entries))
	gauge(c.bytes, float64(s.Bytes))
	gauge(c.linkUp, boolValue(s.LinkUp))
	gauge(c.trusted, boolValue(s.Trusted))
	leaseAge := -1.0
	if s.LeaseAge >= 0 {
		leaseAge = s.LeaseAge.Seconds()
	}
	gauge(c.leaseAge, leaseAge)
	counter(c.heartbeats, s.Heartbeats)
	counter(c.fences, s.FencesConfirmed, "confirmed")
	counter(c.fences, s.FencesLapsed, "lapsed")
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
