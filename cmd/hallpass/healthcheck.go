package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/config"
)

// healthcheck runs `hallpass healthcheck [--ready] [--addr HOST:PORT]`: it
// asks the server on this machine for /healthz (alive) or, with --ready,
// /readyz (the session store and the database answer), and fails unless it
// gets 200. It is the container image's HEALTHCHECK, because the image
// carries no HTTP client (and need not carry a shell).
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ready := fs.Bool("ready", false, "ask /readyz (store and database answer) instead of /healthz (the process is alive)")
	addr := fs.String("addr", "", "the server's listen address (default: HALLPASS_ADDR, as serve reads it)")
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: healthcheck takes no arguments, got %q", errUsage, fs.Args())
	}
	if *addr == "" {
		// The same settings serve reads, so the check follows HALLPASS_ADDR.
		cfg, err := config.Load(nil, getenv, hostname())
		if err != nil {
			return err
		}
		*addr = cfg.Addr
	}
	target, err := localURL(*addr)
	if err != nil {
		return err
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target+path, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer res.Body.Close()
	// /readyz names what is down on its first line.
	line, _ := bufio.NewReader(io.LimitReader(res.Body, 512)).ReadString('\n')
	line = strings.TrimSpace(line)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s%s: %s: %s", target, path, res.Status, line)
	}
	fmt.Fprintf(stdout, "GET %s%s: %s\n", target, path, res.Status)
	return nil
}

// localURL is the base URL that reaches a server listening on addr from the
// same machine: a wildcard host (":8080", "0.0.0.0:8080", "[::]:8080") is
// reached on 127.0.0.1.
func localURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%w: address %q: use host:port", errUsage, addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}
