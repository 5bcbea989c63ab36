package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/hallpass/hallpass/internal/config"
)

// configCommand runs `hallpass config check [flags]`.
func configCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: config needs a subcommand: check", errUsage)
	}
	if args[0] != "check" {
		return fmt.Errorf("%w: unknown config subcommand %q; the only one is check", errUsage, args[0])
	}
	return configCheck(args[1:], getenv, stdout, stderr)
}

// configCheck prints the configuration `hallpass serve` would run with,
// given the same flags and environment, one setting a line with the place
// its value came from, and fails on any problem, so an operator can check a
// deployment before starting it. Secrets are masked: the output is meant to
// be pasted into tickets and CI logs.
func configCheck(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	values, _, err := config.Resolve(args, getenv, hostname())
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(stderr)
		return nil
	}
	if values == nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, v := range values {
		fmt.Fprintf(tw, "%s\t%s\t(%s)\n", v.Setting.Env, cell(v.Shown()), v.Source)
	}
	if werr := tw.Flush(); werr != nil {
		return fmt.Errorf("config check: %w", werr)
	}
	if err != nil {
		problems := []error{err}
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			problems = joined.Unwrap()
		}
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		// main prints this once, as the last line, and exits non-zero.
		return fmt.Errorf("config check: %d problem(s)", len(problems))
	}
	fmt.Fprintln(stdout, "config check: ok")
	return nil
}

// cell returns v for the table, quoted when it is empty or when spaces at its
// ends, a tab or a newline would make it read as something else.
func cell(v string) string {
	if v == "" || v != strings.TrimSpace(v) || strings.ContainsFunc(v, unicode.IsControl) {
		return strconv.Quote(v)
	}
	return v
}
