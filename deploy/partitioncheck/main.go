// Command partitioncheck keeps people signing in, loading pages and signing
// devices out through Hallpass's load balancer while deploy/compose-test.sh
// breaks the cluster (kills the Redis primary, or cuts it off together with
// an app replica), and afterwards checks the history: no acknowledged sign-in
// lost, no page served with a session after its sign-out was acknowledged,
// every session right on every replica once the cluster healed.
//
//	partitioncheck -url http://127.0.0.1:8080 -ready FILE -marks FILE [-max-refusal 5s]
//	    [-direct http://172.28.0.5:8080]… [-check http://172.28.0.5:8080]…
//
// -direct sends the load to that replica too, without the load balancer
// (the replica on the cut-off side of a partition, which the load balancer
// no longer reaches); -check asks every session on that replica directly in
// the final checks, besides three rounds through the load balancer.
//
// It signs its accounts up, writes -ready, and runs until SIGTERM or SIGINT;
// then it checks every session it holds or revoked, prints a summary (times
// relative to the first line of -marks, "<unix seconds> <label>" lines the
// script writes as it breaks and heals things) and exits 1 on any violation.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hallpass/hallpass/internal/loadcheck"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "partitioncheck:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("partitioncheck", flag.ContinueOnError)
	fl.SetOutput(stderr)
	base := fl.String("url", "", "Hallpass's address through the load balancer (required)")
	lanes := fl.Int("lanes", 6, "people using it at once, each with their own account and address")
	prefix := fl.String("prefix", "part", "start of the accounts' names")
	ready := fl.String("ready", "", "file written once the load runs")
	marksFile := fl.String("marks", "", `the scenario's marks, "<unix seconds> <label>" a line`)
	historyFile := fl.String("history", "", "write every request and answer here, one JSON object a line")
	maxRefusal := fl.Duration("max-refusal", 0, "fail if sign-ins were refused longer than this after the first mark (0: no bound)")
	servePages := fl.Bool("serve-pages", false, "fail if a signed-in page view through the load balancer was refused (503): reads must survive the scenario")
	verifyWithin := fl.Duration("verify-within", 90*time.Second, "how long the final checks may wait for 503s to end")
	var direct, check []string
	fl.Func("direct", "a replica's own URL the load also goes to, bypassing the load balancer (repeatable)",
		func(v string) error { direct = append(direct, v); return nil })
	fl.Func("check", "a replica's own URL the final checks ask every session on (repeatable)",
		func(v string) error { check = append(check, v); return nil })
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *base == "" {
		return errors.New("-url is required")
	}

	loadCtx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	load, err := loadcheck.Start(loadCtx, loadcheck.Options{URL: *base, Direct: direct, Lanes: *lanes, Prefix: *prefix})
	if err != nil {
		return err
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
			return err
		}
	}
	<-loadCtx.Done()
	load.Wait()
	stop()

	h := load.History
	h.Verify(ctx, 3, *verifyWithin, check...)
	marks, err := loadcheck.ReadMarks(*marksFile)
	if err != nil {
		return err
	}
	if *historyFile != "" {
		if err := writeHistory(*historyFile, h.Events()); err != nil {
			return err
		}
	}
	sum := h.Summarize(marks)
	fmt.Fprint(stdout, sum)

	var problems []error
	if n := len(sum.Violations); n > 0 {
		problems = append(problems, fmt.Errorf("%d violations", n))
	}
	if sum.Live+sum.Revoked == 0 {
		problems = append(problems, errors.New("no session was acknowledged: nothing was checked"))
	}
	if final := sum.Counts["final check"]; final[loadcheck.Refused]+final[loadcheck.Failed] > 0 {
		problems = append(problems, fmt.Errorf("the cluster did not heal within %s: final checks still answered 503 %d times, failed %d",
			*verifyWithin, final[loadcheck.Refused], final[loadcheck.Failed]))
	}
	if n := sum.Counts[loadcheck.PageView][loadcheck.Refused]; *servePages && n > 0 {
		problems = append(problems, fmt.Errorf("%d page views through the load balancer were refused (503); want every one served", n))
	}
	if *maxRefusal > 0 {
		switch d := sum.RefusedUntil(); {
		case d < 0:
			problems = append(problems, errors.New("no sign-in was acknowledged after the last refusal"))
		case d > *maxRefusal:
			since := "the first request"
			if len(marks) > 0 {
				since = marks[0].Label
			}
			problems = append(problems, fmt.Errorf("sign-ins refused until %.1f s after %s, over the %s bound", d.Seconds(), since, *maxRefusal))
		}
	}
	return errors.Join(problems...)
}

// writeHistory writes the events as JSON lines.
func writeHistory(path string, events []loadcheck.Event) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
