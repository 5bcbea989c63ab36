package account

import "testing"

func TestRefusalsWorthRecordingAreFewAndCarryTheCount(t *testing.T) {
	var recorded []int
	for n := 1; n <= 100_000; n++ {
		if worthRecording(n) {
			recorded = append(recorded, n)
		}
	}
	want := []int{1, 10, 100, 1000, 10_000, 100_000}
	if len(recorded) != len(want) {
		t.Fatalf("recorded refusals %v, want %v", recorded, want)
	}
	for i := range want {
		if recorded[i] != want[i] {
			t.Fatalf("recorded refusals %v, want %v", recorded, want)
		}
	}
}
