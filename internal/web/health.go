package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// readyTimeout bounds each dependency check of /readyz.
const readyTimeout = time.Second

// handleHealthz handles "GET /healthz": the process is alive.
func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

// handleReadyz handles "GET /readyz": the session store and the database
// answer. A 503 names what is unreachable.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	var problems []string
	if s.draining() {
		problems = append(problems, "shutting down")
	}
	for _, dep := range []struct {
		name string
		p    Pinger
	}{{"session store", s.sessionStore}, {"database", s.users}} {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		if err := dep.p.Ping(ctx); err != nil {
			problems = append(problems, dep.name+": "+err.Error())
		}
		cancel()
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: "+strings.Join(problems, "; "))
		return
	}
	fmt.Fprintln(w, "ready")
}
