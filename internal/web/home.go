package web

import "net/http"

// handleHome handles "GET /": who is signed in, and how long for.
func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "home", s.newPageData(r, "Home"))
}
