// Command load runs bench/load against one URL from the command line, for
// poking at a server by hand the way `make bench` does:
//
//	go -C bench run ./cmd/load -c 8 -d 5s -H 'Cookie: __Host-hallpass=…' -expect 'Hello,' http://127.0.0.1:8080/
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/hallpass/hallpass/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// headers collects repeated -H flags.
type headers http.Header

func (h headers) String() string { return "" }

func (h headers) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok {
		return errors.New(`want "Name: value"`)
	}
	http.Header(h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	h := headers{}
	fs.Var(h, "H", "request header `Name: value` (repeatable), e.g. a Cookie or Authorization")
	c := fs.Int("c", 8, "concurrent clients, each with one keep-alive connection")
	d := fs.Duration("d", 5*time.Second, "measured duration")
	warm := fs.Duration("warmup", time.Second, "warm-up before measuring")
	method := fs.String("X", http.MethodGet, "method")
	body := fs.String("body", "", "request body (with -X POST)")
	status := fs.Int("status", http.StatusOK, "status that counts as success")
	expect := fs.String("expect", "", "text every successful body must contain")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one URL")
	}
	cfg := load.Config{
		URL: fs.Arg(0), Method: *method, Header: http.Header(h), Concurrency: *c,
		Warmup: *warm, Duration: *d, ExpectStatus: *status,
	}
	if *body != "" {
		cfg.Bodies = [][]byte{[]byte(*body)}
	}
	if *expect != "" {
		cfg.ExpectBody = []byte(*expect)
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res)
	return nil
}
