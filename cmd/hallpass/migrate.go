package main

import (
	"context"
	"fmt"
	"io"

	"github.com/hallpass/hallpass/internal/database"
)

// migrate applies every pending migration to the configured database.
func migrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	url := databaseURL(getenv)
	db, err := database.Open(ctx, url)
	if err != nil {
		return fmt.Errorf("open database %s: %w", database.DescribeURL(url), err)
	}
	defer db.Close()
	if err := database.Migrate(ctx, db); err != nil {
		return fmt.Errorf("migrate %s: %w", database.DescribeURL(url), err)
	}
	fmt.Fprintf(stdout, "database %s is up to date\n", database.DescribeURL(url))
	return nil
}
