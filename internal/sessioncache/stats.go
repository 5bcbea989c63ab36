package sessioncache

import "time"

// Stats is a snapshot of a cache and its link, for metrics.
type Stats struct {
	// Hits are reads the cache answered; Misses, reads it could not while
	// trusted; Bypassed, reads that went to the store because the link was
	// not trusted.
	Hits, Misses, Bypassed uint64
	// Invalidations counts keys dropped on Redis's word (or this
	// replica's own writes); Flushes, times the whole cache was dropped;
	// Evictions, entries dropped to stay within the bounds.
	Invalidations, Flushes, Evictions uint64
	// Entries and Bytes are the cache's size now.
	Entries int
	Bytes   int64
	// LinkUp reports that the invalidation connection (on a cluster,
	// every primary's) is subscribed; Trusted, that the cache answers
	// reads now.
	LinkUp, Trusted bool
	// LeaseAge is how long ago the heartbeat last heard back was sent (on
	// a cluster, the oldest of the primaries' last ones); negative when
	// none has been heard since the last flush.
	LeaseAge time.Duration
	// Heartbeats counts heartbeats Redis accepted.
	Heartbeats uint64
	// FencesConfirmed counts revocations every caching replica confirmed;
	// FencesLapsed, revocations that waited out the lease for some.
	FencesConfirmed, FencesLapsed uint64
}

// Stats returns a snapshot of s's cache and link; without a cache, only
// the fence counts are set.
func (s *Store) Stats() Stats {
	st := Stats{
		FencesConfirmed: s.fence.confirmed.Load(),
		FencesLapsed:    s.fence.lapsed.Load(),
		LeaseAge:        -1,
	}
	if s.link == nil {
		return st
	}
	c := s.link.cache
	st.Hits, st.Misses, st.Bypassed = c.hits.Load(), c.misses.Load(), s.bypassed.Load()
	st.Invalidations, st.Flushes, st.Evictions = c.invalidations.Load(), c.flushes.Load(), c.evictions.Load()
	st.Entries, st.Bytes = c.size()
	st.LinkUp, st.Trusted = s.link.up(), s.link.Trusted()
	st.LeaseAge = s.link.leaseAge()
	st.Heartbeats = s.link.heartbeatsOK.Load()
	return st
}
