package main

import "testing"

func TestPairedRatioComparesRunsOfTheSameRound(t *testing.T) {
	// As in a run on the busy machine: round by round the cached replica
	// did 1.19×, 0.86× and 1.10× the memory store; the ratio of the two
	// medians (10 900 / 12 700) would take them from different rounds and
	// say 0.86×.
	cached := &point{rounds: []float64{10700, 10900, 14630}}
	memory := &point{rounds: []float64{9000, 12700, 13300}}
	ratio, lo, hi, ok := pairedRatio(cached, memory)
	if !ok || ratio < 1.0999 || ratio > 1.1001 {
		t.Errorf("pairedRatio = %.4f, %v; want the median round's 1.10", ratio, ok)
	}
	if lo > 0.86 || hi < 1.18 {
		t.Errorf("spread %.2f–%.2f, want 0.86–1.19", lo, hi)
	}
	if _, _, _, ok := pairedRatio(cached, nil); ok {
		t.Error("pairedRatio with a missing point reported a ratio")
	}
}
