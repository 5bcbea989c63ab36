package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/session"
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

// requireAdmin answers 403 to anyone but an administrator.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := s.sessions.Current(r.Context()); !ok || info.Role != string(user.RoleAdmin) {
			s.clientError(w, r, http.StatusForbidden, "Administrators only", "This page is for administrators. Your account cannot open it.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type adminHomeData struct {
	Users    int
	Sessions int
	Recent   []session.Record
	Events   []audit.Event
}

// handleAdminHome handles "GET /admin".
func (s *Server) handleAdminHome(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var data adminHomeData
	var err error
	if data.Users, err = s.users.Count(ctx); err != nil {
		s.unavailable(w, r, err)
		return
	}
	if data.Sessions, err = s.sessions.Count(ctx); err != nil {
		s.unavailable(w, r, err)
		return
	}
	if data.Recent, err = s.sessions.Recent(ctx, 0, adminRecentSessions); err != nil {
		s.unavailable(w, r, err)
		return
	}
	if data.Events, err = s.audit.List(ctx, audit.ListOptions{Limit: adminRecentAuditRows}); err != nil {
		s.unavailable(w, r, err)
		return
	}
	d := s.newPageData(r, "Administration")
	d.Data = data
	s.render(w, r, http.StatusOK, "admin_home", d)
}

type adminUserRow struct {
	user.User
	Sessions int
}

type adminUsersData struct {
	Query string
	Rows  []adminUserRow
	Pager pager
}

// handleAdminUsers handles "GET /admin/users": search by name, with each
// user's live-session count (one index read per listed user).
func (s *Server) handleAdminUsers(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > user.MaxUsernameLength {
		q = q[:user.MaxUsernameLength]
	}
	page := pageNumber(r)
	users, err := s.users.List(r.Context(), user.ListOptions{Search: q, Limit: adminUsersPerPage + 1, Offset: (page - 1) * adminUsersPerPage})
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	data := adminUsersData{Query: q, Pager: newPager(r, page, len(users) > adminUsersPerPage)}
	if len(users) > adminUsersPerPage {
		users = users[:adminUsersPerPage]
	}
	for _, u := range users {
		recs, err := s.sessions.ListUser(r.Context(), u.ID)
		if err != nil {
			s.unavailable(w, r, err)
			return
		}
		data.Rows = append(data.Rows, adminUserRow{User: u, Sessions: len(recs)})
	}
	d := s.newPageData(r, "Users")
	d.Data = data
	s.render(w, r, http.StatusOK, "admin_users", d)
}

type adminUserData struct {
	Target   user.User
	Self     bool
	Sessions []session.Record
	Events   []audit.Event
}

// handleAdminUser handles "GET /admin/users/{id}".
func (s *Server) handleAdminUser(w http.ResponseWriter, r *http.Request) {
	u, ok := s.targetUser(w, r)
	if !ok {
		return
	}
	recs, err := s.sessions.ListUser(r.Context(), u.ID)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	events, err := s.audit.List(r.Context(), audit.ListOptions{UserID: u.ID, Limit: adminRecentAuditRows})
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	info, _ := s.sessions.Current(r.Context())
	d := s.newPageData(r, u.Username)
	d.Notice = adminNotices[r.URL.Query().Get("done")]
	d.Data = adminUserData{Target: u, Self: info.UserID == u.ID, Sessions: recs, Events: events}
	s.render(w, r, http.StatusOK, "admin_user", d)
}

// targetUser loads the user named by the {id} path value, answering 404
// itself when there is none.
func (s *Server) targetUser(w http.ResponseWriter, r *http.Request) (user.User, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.notFound(w, r)
		return user.User{}, false
	}
	u, err := s.users.ByID(r.Context(), id)
	switch {
	case errors.Is(err, user.ErrNotFound):
		s.notFound(w, r)
		return user.User{}, false
	case err != nil:
		s.unavailable(w, r, err)
		return user.User{}, false
	}
	return u, true
}

// handleAdminSessionRevoke handles "POST /admin/sessions/{id}/revoke".
func (s *Server) handleAdminSessionRevoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	uid, ok := session.UserOfPublicID(id)
	if !ok {
		s.notFound(w, r)
		return
	}
	u, err := s.users.ByID(r.Context(), uid)
	switch {
	case errors.Is(err, user.ErrNotFound):
		s.notFound(w, r)
		return
	case err != nil:
		s.unavailable(w, r, err)
		return
	}
	revoked, err := s.sessions.Revoke(r.Context(), uid, id, session.EndedByAdmin)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	done := "gone"
	if revoked {
		done = "revoked"
		s.record(r, audit.Event{Action: audit.SessionRevoked, TargetUserID: u.ID, TargetName: u.Username, Detail: "session " + id + " by an administrator"})
	}
	http.Redirect(w, r, "/admin/users/"+strconv.FormatInt(uid, 10)+"?done="+done, http.StatusSeeOther)
}

// handleAdminRevokeAll handles "POST /admin/users/{id}/revoke-all".
func (s *Server) handleAdminRevokeAll(w http.ResponseWriter, r *http.Request) {
	u, ok := s.targetUser(w, r)
	if !ok {
		return
	}
	if !s.endUserSessions(w, r, u, session.EndedByAdmin, s.isSelf(r, u)) {
		return
	}
	s.record(r, audit.Event{Action: audit.SessionsRevokedAll, TargetUserID: u.ID, TargetName: u.Username, Detail: "signed out everywhere by an administrator"})
	if s.isSelf(r, u) {
		// The administrator's own session survives, on a fresh token.
		s.signIn(w, r, u, "/admin/users/"+strconv.FormatInt(u.ID, 10)+"?done=revoked-all")
		return
	}
	http.Redirect(w, r, "/admin/users/"+strconv.FormatInt(u.ID, 10)+"?done=revoked-all", http.StatusSeeOther)
}

// handleAdminDisable handles "POST /admin/users/{id}/disable".
func (s *Server) handleAdminDisable(w http.ResponseWriter, r *http.Request) {
	u, ok := s.targetUser(w, r)
	if !ok {
		return
	}
	if s.isSelf(r, u) {
		s.clientError(w, r, http.StatusConflict, "Not allowed", "You cannot disable your own account: ask another administrator.")
		return
	}
	if err := s.users.SetDisabled(r.Context(), u.ID, true); err != nil {
		s.unavailable(w, r, err)
		return
	}
	if !s.endUserSessions(w, r, u, session.EndedDisabled, false) {
		return
	}
	s.record(r, audit.Event{Action: audit.UserDisabled, TargetUserID: u.ID, TargetName: u.Username})
	http.Redirect(w, r, "/admin/users/"+strconv.FormatInt(u.ID, 10)+"?done=disabled", http.StatusSeeOther)
}

// handleAdminEnable handles "POST /admin/users/{id}/enable".
func (s *Server) handleAdminEnable(w http.ResponseWriter, r *http.Request) {
	u, ok := s.targetUser(w, r)
	if !ok {
		return
	}
	if err := s.users.SetDisabled(r.Context(), u.ID, false); err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.record(r, audit.Event{Action: audit.UserEnabled, TargetUserID: u.ID, TargetName: u.Username})
	http.Redirect(w, r, "/admin/users/"+strconv.FormatInt(u.ID, 10)+"?done=enabled", http.StatusSeeOther)
}

// isSelf reports whether u is the signed-in administrator.
func (s *Server) isSelf(r *http.Request, u user.User) bool {
	info, ok := s.sessions.Current(r.Context())
	return ok && info.UserID == u.ID
}

type adminAuditData struct {
	Events []audit.Event
	Total  int
	Pager  pager
}

// handleAdminAudit handles "GET /admin/audit".
func (s *Server) handleAdminAudit(w http.ResponseWriter, r *http.Request) {
	page := pageNumber(r)
	events, err := s.audit.List(r.Context(), audit.ListOptions{Limit: adminAuditPerPage + 1, Offset: (page - 1) * adminAuditPerPage})
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	total, err := s.audit.Count(r.Context(), audit.ListOptions{})
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	data := adminAuditData{Total: total, Pager: newPager(r, page, len(events) > adminAuditPerPage)}
	if len(events) > adminAuditPerPage {
		events = events[:adminAuditPerPage]
	}
	data.Events = events
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
