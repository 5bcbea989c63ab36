package metrics_test

import (
	"runtime"
	"testing"

	"github.com/hallpass/hallpass/internal/metrics"
)

func TestBuildInfoNamesTheRunningBuild(t *testing.T) {
	m := metrics.New(nil)
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := metrics.ReadBuild()
	for _, f := range families {
		if f.GetName() != "hallpass_build_info" {
			continue
		}
		if len(f.GetMetric()) != 1 {
			t.Fatalf("hallpass_build_info has %d series, want 1", len(f.GetMetric()))
		}
		s := f.GetMetric()[0]
		if v := s.GetGauge().GetValue(); v != 1 {
			t.Errorf("hallpass_build_info = %v, want 1", v)
		}
		got := map[string]string{}
		for _, l := range s.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != 3 || got["version"] != want.Version || got["commit"] != want.Commit || got["goversion"] != want.GoVersion {
			t.Errorf("hallpass_build_info labels %v, want version=%q commit=%q goversion=%q", got, want.Version, want.Commit, want.GoVersion)
		}
		return
	}
	t.Fatal("the registry has no hallpass_build_info")
}

func TestReadBuildFillsEveryFieldWithoutLinkTimeValues(t *testing.T) {
	// go test links no -X values and stamps no VCS revision: the fallbacks
	// must still name something, never an empty label.
	b := metrics.ReadBuild()
	if b.Version == "" || b.Commit == "" {
		t.Errorf("ReadBuild() = %+v, want no empty field", b)
	}
	if b.GoVersion != runtime.Version() {
		t.Errorf("GoVersion %q, want %q", b.GoVersion, runtime.Version())
	}
}
