package load

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits buckets per power of two,
// so a recorded latency is off by less than 1/128 (0.8 %) of its value.
const (
	subBits  = 7
	subCount = 1 << subBits
)

// Histogram counts latencies in log-linear buckets, as HdrHistogram does:
// exact below 256 ns, then 128 buckets per power of two. It holds every
// duration up to 2^63 ns in about 7 500 counters, never allocates while
// recording, and two of them merge by adding counts, so each client keeps
// its own without locking.
//
// The zero value is ready to use.
type Histogram struct {
	counts []uint64
	total  uint64
	max    time.Duration
}

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v uint64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(v) - (subBits + 1) // v>>shift is in [128, 255]
	return 2*subCount + (shift-1)*subCount + int(v>>shift) - subCount
}

// bucketRange returns the smallest and largest value bucket i holds.
func bucketRange(i int) (lo, hi uint64) {
	if i < 2*subCount {
		return uint64(i), uint64(i)
	}
	j := i - 2*subCount
	shift := j/subCount + 1
	lo = uint64(j%subCount+subCount) << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds one latency. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	i := bucketOf(v)
	if i >= len(h.counts) {
		grown := make([]uint64, i+1+subCount)
		copy(grown, h.counts)
		h.counts = grown
	}
	h.counts[i]++
	h.total++
	h.max = max(h.max, d)
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if len(o.counts) > len(h.counts) {
		grown := make([]uint64, len(o.counts))
		copy(grown, h.counts)
		h.counts = grown
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// Count returns how many latencies were recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Max returns the largest latency recorded.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the latency below which a fraction q (0 < q ≤ 1) of the
// recorded ones fall: the midpoint of the bucket holding that rank, never
// more than the largest value recorded. It returns 0 when nothing was
// recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			return min(time.Duration(lo+(hi-lo)/2), h.max)
		}
	}
	return h.max
}
