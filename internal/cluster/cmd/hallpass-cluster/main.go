// Command hallpass-cluster starts (up) and stops (down) Hallpass's loopback
// cluster for `make cluster` and `make cluster-down`. See package cluster.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hallpass/hallpass/internal/cluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cluster.Command(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hallpass-cluster:", err)
		os.Exit(1)
	}
}
