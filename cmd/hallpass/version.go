package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/hallpass/hallpass/internal/metrics"
)

// versionCommand runs `hallpass version`: the release, the commit and the Go
// toolchain of this binary, the same values /metrics reports as
// hallpass_build_info.
func versionCommand(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: version takes no arguments, got %q", errUsage, args)
	}
	b := metrics.ReadBuild()
	fmt.Fprintf(stdout, "hallpass %s\ncommit   %s\ngo       %s %s/%s\n", b.Version, b.Commit, b.GoVersion, runtime.GOOS, runtime.GOARCH)
	return nil
}
