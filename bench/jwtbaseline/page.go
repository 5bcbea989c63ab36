package main

import (
	"bytes"
	"fmt"
	"html/template"
	"time"

	"github.com/hallpass/hallpass/web"
)

// pageUser has the fields of Hallpass's session.Info that the home page
// reads.
type pageUser struct {
	Username       string
	Role           string
	Created        time.Time
	Replica        string
	IdleExpiry     time.Time
	AbsoluteExpiry time.Time
}

// pageData has the fields of Hallpass's internal/web pageData, so its
// templates execute unchanged.
type pageData struct {
	Title       string
	User        *pageUser
	IsAdmin     bool
	Replica     string
	SignupOpen  bool
	IdleTimeout time.Duration
	Path        string
	Notice      string
	Form        any
	Data        any
	Status      int
	Heading     string
	Message     string
}

// homePage is Hallpass's home page template, parsed once.
type homePage struct{ t *template.Template }

// parseHome parses the layout, the partials and pages/home.html from the
// embedded web package, with the template functions the web package provides (as internal/web does).
func parseHome(now func() time.Time) (*homePage, error) {
	files, err := web.Templates()
	if err != nil {
		return nil, fmt.Errorf("open embedded templates: %w", err)
	}
	funcs := web.Funcs(now)
	t, err := template.New("").Funcs(funcs).ParseFS(files, "layout.html", "partials/*.html", "pages/home.html")
	if err != nil {
		return nil, fmt.Errorf("parse home page: %w", err)
	}
	return &homePage{t: t}, nil
}

func (p *homePage) render(buf *bytes.Buffer, data pageData) error {
	if err := p.t.ExecuteTemplate(buf, "layout", data); err != nil {
		return fmt.Errorf("render home: %w", err)
	}
	return nil
}
