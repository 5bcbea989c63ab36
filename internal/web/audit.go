package web

import (
	"log/slog"
	"net/http"

	"github.com/hallpass/hallpass/internal/audit"
)

// record writes a security event to the audit log with the request's client
// address and this replica, and the signed-in user as the actor unless the
// event names one. A failed write is logged, never shown: the action it
// describes has already happened.
func (s *Server) record(r *http.Request, ev audit.Event) {
	ev.IP = s.clientIP.ClientIP(r)
	ev.Replica = s.replicaID
	if ev.ActorID == 0 && ev.ActorName == "" {
		if info, ok := s.sessions.Current(r.Context()); ok {
			ev.ActorID, ev.ActorName = info.UserID, info.Username
		}
	}
	if err := s.audit.Record(r.Context(), ev); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "audit record failed",
			slog.String("action", string(ev.Action)), slog.Any("error", err))
	}
}
