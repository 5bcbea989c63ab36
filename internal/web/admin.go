package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/user"
)

// Page sizes of the admin lists.
const (
	adminUsersPerPage    = 50
	adminAuditPerPage    = 50
	adminRecentSessions  = 20
	adminRecentAuditRows = 10
)

// adminNotices confirm what an admin action did, after its redirect.
var adminNotices = map[string]string{
	"revoked":     "The session was signed out.",
	"revoked-all": "The user was signed out everywhere.",
	"disabled":    "The user was disabled and signed out everywhere.",
	"enabled":     "The user was enabled.",
	"gone":        "That session had already ended.",
}

// requireAdmin answers 403 to anyone but an administrator. The account
// service checks again in every admin use case; this keeps the pages
// themselves from answering anyone else.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.actor(r).IsAdmin() {
			s.clientError(w, r, http.StatusForbidden, "Administrators only", "This page is for administrators. Your account cannot open it.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleAdminHome handles "GET /admin".
func (s *Server) handleAdminHome(w http.ResponseWriter, r *http.Request) {
	o, err := s.Account.Overview(r.Context(), s.actor(r), adminRecentSessions, adminRecentAuditRows)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := s.newPageData(r, "Administration")
	d.Notice = everyoneNotice(r)
	d.Data = o
	s.render(w, r, http.StatusOK, "admin_home", d)
}

type adminUsersData struct {
	Query string
	Rows  []account.UserRow
	Pager pager
}

// handleAdminUsers handles "GET /admin/users": search by name, with each
// user's live-session count.
func (s *Server) handleAdminUsers(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > user.MaxUsernameLength {
		q = q[:user.MaxUsernameLength]
	}
	page := pageNumber(r)
	rows, err := s.Account.Users(r.Context(), s.actor(r), user.ListOptions{Search: q, Limit: adminUsersPerPage + 1, Offset: (page - 1) * adminUsersPerPage})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data := adminUsersData{Query: q, Pager: newPager(r, page, len(rows) > adminUsersPerPage)}
	data.Rows = rows[:min(len(rows), adminUsersPerPage)]
	d := s.newPageData(r, "Users")
	d.Data = data
	s.render(w, r, http.StatusOK, "admin_users", d)
}

type adminUserData struct {
	account.UserDetail
	Target user.User
	Self   bool
}

// handleAdminUser handles "GET /admin/users/{id}".
func (s *Server) handleAdminUser(w http.ResponseWriter, r *http.Request) {
	id, ok := userIDParam(r)
	if !ok {
		s.notFound(w, r)
		return
	}
	a := s.actor(r)
	detail, err := s.Account.UserDetail(r.Context(), a, id, adminRecentAuditRows)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := s.newPageData(r, detail.User.Username)
	d.Notice = adminNotices[r.URL.Query().Get("done")]
	d.Data = adminUserData{UserDetail: detail, Target: detail.User, Self: a.UserID == detail.User.ID}
	s.render(w, r, http.StatusOK, "admin_user", d)
}

// userIDParam reads the {id} path value as a user ID.
func userIDParam(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

// adminUserPage is the admin page of a user, with a notice.
func adminUserPage(id int64, done string) string {
	return "/admin/users/" + strconv.FormatInt(id, 10) + "?done=" + done
}

// handleAdminSessionRevoke handles "POST /admin/sessions/{id}/revoke".
func (s *Server) handleAdminSessionRevoke(w http.ResponseWriter, r *http.Request) {
	u, err := s.Account.EndUserSession(r.Context(), s.actor(r), r.PathValue("id"))
	switch {
	case errors.Is(err, account.ErrNotFound) && u.ID != 0:
		http.Redirect(w, r, adminUserPage(u.ID, "gone"), http.StatusSeeOther)
	case err != nil:
		s.fail(w, r, err)
	default:
		http.Redirect(w, r, adminUserPage(u.ID, "revoked"), http.StatusSeeOther)
	}
}

// handleAdminRevokeAll handles "POST /admin/users/{id}/revoke-all".
func (s *Server) handleAdminRevokeAll(w http.ResponseWriter, r *http.Request) {
	id, ok := userIDParam(r)
	if !ok {
		s.notFound(w, r)
		return
	}
	if _, err := s.Account.EndAllSessions(r.Context(), s.actor(r), id); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, adminUserPage(id, "revoked-all"), http.StatusSeeOther)
}

// handleAdminDisable handles "POST /admin/users/{id}/disable".
func (s *Server) handleAdminDisable(w http.ResponseWriter, r *http.Request) {
	s.setDisabled(w, r, true, "disabled")
}

// handleAdminEnable handles "POST /admin/users/{id}/enable".
func (s *Server) handleAdminEnable(w http.ResponseWriter, r *http.Request) {
	s.setDisabled(w, r, false, "enabled")
}

func (s *Server) setDisabled(w http.ResponseWriter, r *http.Request, disabled bool, done string) {
	id, ok := userIDParam(r)
	if !ok {
		s.notFound(w, r)
		return
	}
	if _, _, err := s.Account.SetDisabled(r.Context(), s.actor(r), id, disabled); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, adminUserPage(id, done), http.StatusSeeOther)
}

type adminAuditData struct {
	Events []audit.Event
	Total  int
	Pager  pager
}

// handleAdminAudit handles "GET /admin/audit".
func (s *Server) handleAdminAudit(w http.ResponseWriter, r *http.Request) {
	page := pageNumber(r)
	events, total, err := s.Account.AuditEvents(r.Context(), s.actor(r), (page-1)*adminAuditPerPage, adminAuditPerPage+1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data := adminAuditData{Total: total, Pager: newPager(r, page, len(events) > adminAuditPerPage)}
	data.Events = events[:min(len(events), adminAuditPerPage)]
	d := s.newPageData(r, "Audit log")
	d.Data = data
	s.render(w, r, http.StatusOK, "admin_audit", d)
}

// pager links to the neighbouring pages of a list.
type pager struct {
	Page int
	Prev string
	Next string
}

// pageNumber reads ?page=N (1 when absent or invalid).
func pageNumber(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 || n > 1_000_000 {
		return 1
	}
	return n
}

func newPager(r *http.Request, page int, hasNext bool) pager {
	link := func(n int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(n))
		return r.URL.Path + "?" + q.Encode()
	}
	p := pager{Page: page}
	if page > 1 {
		p.Prev = link(page - 1)
	}
	if hasNext {
		p.Next = link(page + 1)
	}
	return p
}
