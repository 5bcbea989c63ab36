// Package web holds Hallpass's HTML templates, the functions they call and its static files, embedded in
// the binary so a single file serves the whole site.
package web

import (
	"embed"
	"io/fs"
)

//go:embed templates static
var files embed.FS

// Templates returns the template tree: layout.html and pages/*.html.
func Templates() (fs.FS, error) { return fs.Sub(files, "templates") }

// Static returns the files served under /static/.
func Static() (fs.FS, error) { return fs.Sub(files, "static") }
