package main

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
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
// embedded web package, with the same functions internal/web registers.
func parseHome(now func() time.Time) (*homePage, error) {
	files, err := web.Templates()
	if err != nil {
		return nil, fmt.Errorf("open embedded templates: %w", err)
	}
	funcs := template.FuncMap{
		"isoTime":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"fullTime":  func(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04:05 UTC") },
		"ago":       func(t time.Time) string { return relativeTime(now(), t) },
		"hasPrefix": strings.HasPrefix,
	}
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

// relativeTime is internal/web's: "5 minutes ago", "in 2 hours".
func relativeTime(now, t time.Time) string {
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var amount string
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		amount = plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		amount = plural(int(d/time.Hour), "hour")
	default:
		amount = plural(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + amount
	}
	return amount + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
