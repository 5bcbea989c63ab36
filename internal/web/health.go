package web

import (
	"context"
	"fmt"
	"log/slog"
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
// answer. The session store counts as answering while sessions can be read
// (from a Redis replica when the primary is down): signed-in pages are then
// served, and only writes answer 503. A 503 names what is down ("session store unreachable"); why is
// logged, never sent, since error text can carry addresses and internals.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	var problems []string
	if s.Draining() {
		problems = append(problems, "shutting down")
	}
	for _, c := range s.Ready {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		if err := c.Ping(ctx); err != nil {
			problems = append(problems, c.Name+" unreachable")
			s.Logger.LogAttrs(r.Context(), slog.LevelWarn, "readiness check failed", slog.String("dependency", c.Name), slog.Any("error", err))
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
