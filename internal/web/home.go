package web

import (
	"net/http"
	"time"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
	"github.com/hallpass/hallpass/web"
)

// homeView is the home page's content, worked out in Go so the template
// prints plain fields instead of calling functions by reflection.
type homeView struct {
	Username string
	// Initial is the avatar's letter.
	Initial string
	Admin   bool
	// SignedIn is when the session began; IdleExpiry when it ends if the
	// user stops now; AbsoluteExpiry when it ends at the latest.
	SignedIn, IdleExpiry, AbsoluteExpiry timeView
	// IdleTimeout is the idle timeout in words ("30 minutes").
	IdleTimeout string
	// SessionReplica is the replica that created the session.
	SessionReplica string
}

// handleHome handles "GET /": who is signed in, and how long for.
func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	d := s.newPageData(r, "Home")
	if d.User == nil { // requireUser lets nobody else through
		s.fail(w, r, account.ErrNotSignedIn)
		return
	}
	d.Data = s.homeView(*d.User, s.Now())
	s.render(w, r, http.StatusOK, "home", d)
}

func (s *Server) homeView(info session.Info, now time.Time) homeView {
	return homeView{
		Username:       info.Username,
		Initial:        initial(info.Username),
		Admin:          info.Role == string(user.RoleAdmin),
		SignedIn:       newTimeView(info.Created, now),
		IdleExpiry:     newTimeView(info.IdleExpiry, now),
		AbsoluteExpiry: newTimeView(info.AbsoluteExpiry, now),
		IdleTimeout:    s.idleTimeoutOf(info),
		SessionReplica: info.Replica,
	}
}

// idleTimeoutOf is info's idle timeout in words: the process's plain one,
// worked out once, or the session's own (an administrator's, a "keep me
// signed in" one) when its policy differs.
func (s *Server) idleTimeoutOf(info session.Info) string {
	if d := info.IdleExpiry.Sub(info.LastSeen); d != s.IdleTimeout {
		return web.Duration(d)
	}
	return s.idleTimeout
}
