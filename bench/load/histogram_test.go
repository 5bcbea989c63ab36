package load

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 1000, 123_456, 1 << 40, 1<<63 - 1} {
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d = [%d, %d]", v, i, lo, hi)
		}
		if v >= 256 && float64(hi-lo) > float64(lo)/100 {
			t.Errorf("bucket %d = [%d, %d] wider than 1%%", i, lo, hi)
		}
		if i > 0 {
			if _, prevHi := bucketRange(i - 1); prevHi+1 != lo {
				t.Errorf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
			}
		}
	}
}

func TestQuantilesMatchSortedSamplesWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var a, b Histogram
	var all []time.Duration
	for i := range 100_000 {
		// Log-normal-ish: most around 100 µs, a tail up to tens of ms.
		d := time.Duration(50_000 + rng.ExpFloat64()*80_000)
		if i%100 == 0 {
			d *= 50
		}
		all = append(all, d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	slices.Sort(all)
	if a.Count() != uint64(len(all)) || a.Max() != all[len(all)-1] {
		t.Fatalf("count %d max %s, want %d and %s", a.Count(), a.Max(), len(all), all[len(all)-1])
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := all[int(q*float64(len(all)))-1]
		got := a.Quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.01 || diff < -0.01 {
			t.Errorf("p%g = %s, want %s ± 1%%", q*100, got, want)
		}
	}
}

func TestEmptyHistogramQuantileIsZero(t *testing.T) {
	var h Histogram
	if q := h.Quantile(0.99); q != 0 {
		t.Errorf("Quantile of empty histogram = %s, want 0", q)
	}
}
