// Package migrations holds Hallpass's database schema as goose SQL migrations,
// one directory per SQL dialect, embedded into the binary so a deployment
// never depends on files next to it.
//
// Both directories describe the same logical schema (same tables, columns and
// nullability); a test migrates both and compares them. Each new migration is
// therefore written twice, once per dialect, with the same version number.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Postgres returns the PostgreSQL migrations, rooted so that goose sees the
// .sql files at the top level.
func Postgres() (fs.FS, error) {
	return sub("postgres")
}

// SQLite returns the SQLite migrations, rooted so that goose sees the .sql
// files at the top level.
func SQLite() (fs.FS, error) {
	return sub("sqlite")
}

func sub(dir string) (fs.FS, error) {
	f, err := fs.Sub(files, dir)
	if err != nil {
		return nil, fmt.Errorf("open %s migrations: %w", dir, err)
	}
	return f, nil
}
