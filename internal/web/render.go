package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"time"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
	"github.com/hallpass/hallpass/web"
)

// pages is the template cache: each page parsed once, with the layout, at
// start-up.
type pages struct {
	byName map[string]*template.Template
}

// templateFuncs are the web package's template functions plus the
// session-row views of this package.
func templateFuncs(now func() time.Time) template.FuncMap {
	funcs := web.Funcs(now)
	funcs["ownRow"] = func(r session.Record) sessionRowView { return sessionRowView{Record: r} }
	funcs["adminRow"] = func(r session.Record) sessionRowView { return sessionRowView{Record: r, Admin: true} }
	return funcs
}

// sessionRowView is what the session-row partial shows: a session, on the
// user's own devices page or to an administrator.
type sessionRowView struct {
	Record session.Record
	Admin  bool
}

func parsePages(files fs.FS, now func() time.Time) (*pages, error) {
	names, err := fs.Glob(files, "pages/*.html")
	if err != nil {
		return nil, fmt.Errorf("list page templates: %w", err)
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range names {
		t, err := template.New("").Funcs(templateFuncs(now)).ParseFS(files, "layout.html", "partials/*.html", name)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		p.byName[path.Base(name)[:len(path.Base(name))-len(".html")]] = t
	}
	return p, nil
}

// pageData is what every page template sees.
type pageData struct {
	Title       string
	User        *session.Info
	IsAdmin     bool
	Replica     string
	SignupOpen  bool
	IdleTimeout time.Duration
	// Path is the request path, for marking the current navigation link.
	Path   string
	Notice string
	Form   any
	// Data is the page's own content.
	Data any
	// Error pages.
	Status  int
	Heading string
	Message string
	// RequestID is shown on a 5xx page, to match a report to the log.
	RequestID string
}

// newPageData fills in what every page shows about the request.
func (s *Server) newPageData(r *http.Request, title string) pageData {
	d := pageData{Title: title, Replica: s.ReplicaID, SignupOpen: s.SignupOpen, IdleTimeout: s.IdleTimeout, Path: r.URL.Path}
	if info, ok := s.Sessions.Current(r.Context()); ok {
		d.User = &info
		d.IsAdmin = info.Role == string(user.RoleAdmin)
	}
	return d
}

// render executes a page into a buffer first, so a template error becomes a
// clean 500 page instead of half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data pageData) {
	t, ok := s.pages.byName[page]
	if !ok {
		s.serverError(w, r, fmt.Errorf("no page template %q", page))
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		s.serverError(w, r, fmt.Errorf("render %s: %w", page, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}
