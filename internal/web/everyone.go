package web

import (
	"net/http"
	"strconv"

	"github.com/hallpass/hallpass/web"
)

// confirmEveryone is the value of the confirm field of the "Sign out
// everyone" form: its checkbox, which must be ticked.
const confirmEveryone = "yes"

// handleAdminSignOutEveryone handles "POST /admin/sign-out-everyone": every
// session of every user ends, on every replica, but the administrator's
// own. The form must carry confirm=yes (its checkbox), so a stray or
// replayed POST of the bare button does nothing.
func (s *Server) handleAdminSignOutEveryone(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	if r.PostForm.Get("confirm") != confirmEveryone {
		s.clientError(w, r, http.StatusBadRequest, "Nobody was signed out",
			`Signing out everyone needs confirming: tick "Yes, sign out every user" on the administration page, then press the button again.`)
		return
	}
	ended, err := s.Account.SignOutEveryone(r.Context(), s.actor(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/admin?done=everyone&n="+strconv.Itoa(ended.Sessions), http.StatusSeeOther)
}

// everyoneNotice is the notice of the administration page after signing
// out everyone, with the number of sessions that ended; "" otherwise.
func everyoneNotice(r *http.Request) string {
	q := r.URL.Query()
	n, err := strconv.Atoi(q.Get("n"))
	if q.Get("done") != "everyone" || err != nil || n < 0 {
		return ""
	}
	return "Signed out " + web.Plural(n, "session") + "."
}
