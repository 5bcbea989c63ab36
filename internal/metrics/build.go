package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// version and commit are set when the binary is linked, by the Makefile
// (git describe --tags --always --dirty, git rev-parse HEAD) and by the
// Dockerfile (its VERSION and COMMIT build arguments):
//
//	go build -ldflags "-X github.com/hallpass/hallpass/internal/metrics.version=v1.4.0
//	                   -X github.com/hallpass/hallpass/internal/metrics.commit=4279e9a…" ./cmd/hallpass
//
// They live here, next to hallpass_build_info, so that series and
// `hallpass version` cannot disagree: both read ReadBuild. The pattern is
// Prometheus's own (its version package is set the same way).
var (
	version string
	commit  string
)

// Build identifies the running binary.
type Build struct {
	// Version is the release, as git describe names it; without a link-time
	// value, the module version the go command stamped, else "devel".
	Version string
	// Commit is the full commit hash; without a link-time value, the VCS
	// revision the go command stamped, else "unknown".
	Commit string
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
}

// ReadBuild returns the running binary's identity: the values set at link
// time, completed from what the go command recorded in the binary
// (runtime/debug.ReadBuildInfo).
func ReadBuild() Build {
	b := Build{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.GoVersion != "" {
			b.GoVersion = info.GoVersion
		}
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			if b.Commit == "" && s.Key == "vcs.revision" {
				b.Commit = s.Value
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// buildInfo is the constant series hallpass_build_info{version, commit,
// goversion} 1, so dashboards can tell which build each replica runs and
// see a rollout progress.
func buildInfo(b Build) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hallpass_build_info",
		Help: "Always 1; the labels name the running build (version, commit, Go version).",
		ConstLabels: prometheus.Labels{
			"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion,
		},
	}, func() float64 { return 1 })
}
