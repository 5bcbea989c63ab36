package main

import (
	"context"
	"runtime"
	"syscall"
	"time"

	"github.com/hallpass/hallpass/internal/password"
)

// hashTimes times n argon2id hashes with Hallpass's default parameters in
// this process, one at a time, and returns each one's wall time and CPU
// time. Measured between the sign-in runs, so "the
// path beyond the hash" subtracts a hash timed under the same conditions.
// The driver does nothing else meanwhile, so the process's CPU time is the
// hash's (argon2 runs its lanes on goroutines of its own).
func hashTimes(ctx context.Context, n int) (walls, cpus []time.Duration, err error) {
	h := password.NewHasher(password.DefaultParams, 1)
	runtime.GC() // not during the timed hashes, as far as it can be helped
	for range n {
		c0 := processCPU()
		t0 := time.Now()
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			return nil, nil, err
		}
		walls = append(walls, time.Since(t0))
		cpus = append(cpus, processCPU()-c0)
	}
	return walls, cpus, nil
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
