package main

import (
	"bytes"
	"fmt"
	"html/template"
	"time"

	"github.com/hallpass/hallpass/web"
)

// The page data below mirror internal/web's: the home page's view is worked
// out in Go, as Hallpass does, so both servers do the same work per page.

// accountView is what the layout's header shows of the signed-in user.
type accountView struct {
	Username string
	Initial  string
	Admin    bool
	// Security: the Security link, shown as Hallpass shows it with second
	// factors on (its default).
	Security                                           bool
	AtHome, AtDevices, AtPassword, AtSecurity, AtAdmin bool
}

// timeView is a moment as pages show it.
type timeView struct {
	ISO, Full, Ago string
}

func newTimeView(t, now time.Time) timeView {
	return timeView{ISO: web.ISOTime(t), Full: web.FullTime(t), Ago: web.RelativeTime(now, t)}
}

// homeView is the home page's content.
type homeView struct {
	Username, Initial                    string
	Admin                                bool
	SignedIn, IdleExpiry, AbsoluteExpiry timeView
	IdleTimeout                          string
	SessionReplica                       string
}

// pageData has the fields of Hallpass's internal/web pageData that its
// templates read, so they execute unchanged.
type pageData struct {
	Title      string
	Account    *accountView
	Replica    string
	SignupOpen bool
	Path       string
	Notice     string
	Form       any
	Data       any
	Status     int
	Heading    string
	Message    string
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
