package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
	"github.com/hallpass/hallpass/web"
)

// pages is the template cache: each page parsed once, with the layout, at
// start-up. Pages are rendered into buffers from a pool: a fresh buffer was
// regrown through seven sizes for every home page.
type pages struct {
	byName  map[string]*template.Template
	buffers sync.Pool
}

// maxPooledBuffer is the largest render buffer kept for reuse, so one long
// admin page does not keep its memory pinned.
const maxPooledBuffer = 64 << 10

// buffer returns an empty buffer to render into; hand it back with release.
func (p *pages) buffer() *bytes.Buffer {
	if b, ok := p.buffers.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

// release returns buf to the pool once its content has been written out.
func (p *pages) release(buf *bytes.Buffer) {
	if buf.Cap() > maxPooledBuffer {
		return
	}
	buf.Reset()
	p.buffers.Put(buf)
}

// templateFuncs are the web package's template functions plus the
// session-row views of this package.
func templateFuncs(now func() time.Time) template.FuncMap {
	funcs := web.Funcs(now)
	funcs["ownRow"] = func(r session.Record) sessionRowView {
		return sessionRowView{Record: r, Method: account.MethodLabel(r.Method)}
	}
	funcs["adminRow"] = func(r session.Record) sessionRowView {
		return sessionRowView{Record: r, Admin: true, Method: account.MethodLabel(r.Method)}
	}
	return funcs
}

// sessionRowView is what the session-row partial shows: a session, on the
// user's own devices page or to an administrator.
type sessionRowView struct {
	Record session.Record
	Admin  bool
	// Method says how the session signed in, in words.
	Method string
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
	Title      string
	User       *session.Info
	IsAdmin    bool
	Replica    string
	SignupOpen bool
	// Path is the request path, for marking the current navigation link.
	Path string
	// FactorsOn: second factors are set up, so the header links to the
	// security page.
	FactorsOn bool
	Notice    string
	Form      any
	// Data is the page's own content.
	Data any
	// Error pages.
	Status  int
	Heading string
	Message string
	// RequestID is shown on a 5xx page, to match a report to the log.
	RequestID string
}

// Account is what the layout's header shows of the signed-in user, or nil
// when nobody is signed in. It is worked out here, once per page, so the
// layout prints plain fields: html/template makes every function call and
// comparison (eq, hasPrefix, slice) by reflection, and such calls took 41%
// of the home page's CPU (issue 12). A method rather than a field, because
// error pages build their pageData themselves.
func (d pageData) Account() *accountView {
	if d.User == nil {
		return nil
	}
	return &accountView{
		Username:   d.User.Username,
		Initial:    initial(d.User.Username),
		Admin:      d.IsAdmin,
		AtHome:     d.Path == "/",
		AtDevices:  d.Path == "/account/sessions",
		AtPassword: d.Path == "/account/password",
		Security:   d.FactorsOn,
		AtSecurity: d.Path == "/account/security" || strings.HasPrefix(d.Path, "/account/totp"),
		AtAdmin:    strings.HasPrefix(d.Path, "/admin"),
	}
}

// accountView is the header's account menu: who is signed in, and which
// navigation link is the current page.
type accountView struct {
	Username string
	// Initial is the avatar's letter.
	Initial string
	Admin   bool
	// Security: the security page exists (second factors are on).
	Security                                           bool
	AtHome, AtDevices, AtPassword, AtSecurity, AtAdmin bool
}

// initial is the first character of name, for an avatar.
func initial(name string) string {
	_, n := utf8.DecodeRuneInString(name)
	return name[:n]
}

// timeView is a moment as pages show it: for machines (a <time>'s
// datetime), in full, and relative to now ("5 minutes ago").
type timeView struct {
	ISO, Full, Ago string
}

func newTimeView(t, now time.Time) timeView {
	return timeView{ISO: web.ISOTime(t), Full: web.FullTime(t), Ago: web.RelativeTime(now, t)}
}

// newPageData fills in what every page shows about the request.
func (s *Server) newPageData(r *http.Request, title string) pageData {
	d := pageData{Title: title, Replica: s.ReplicaID, SignupOpen: s.SignupOpen, Path: r.URL.Path,
		FactorsOn: s.Account != nil && s.Account.FactorsEnabled()}
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
	buf := s.pages.buffer()
	defer s.pages.release(buf)
	if err := t.ExecuteTemplate(buf, "layout", data); err != nil {
		s.serverError(w, r, fmt.Errorf("render %s: %w", page, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
