package web

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hallpass/hallpass/internal/live"
)

// streamRetry is how soon the browser reconnects after a stream ends (a
// draining replica closes its streams).
const streamRetry = 2 * time.Second

// handleEvents starts an open tab's event stream: "session" (the session's
// deadlines, at once and whenever they move), "signed-out" (the reason,
// then the stream ends) and "new-sign-in" (another session of the
// account). Without a session: 401 and no stream.
//
// The connection is taken over (hijacked) and handed to the hub, and the
// handler returns: a waiting stream then holds no goroutine and none of the
// HTTP server's buffers (see live.Hub). The response is HTTP/1.1 without a
// length, ended by closing the connection. Hallpass serves HTTP/1.1 (the
// load balancer speaks it to the replicas), so taking over always works;
// if it ever does not, the stream is refused with 500 and logged.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info, signedIn := s.Sessions.Current(ctx)
	key, _ := s.Sessions.CurrentKey(ctx)
	publicID, _ := s.Sessions.CurrentPublicID(ctx)
	if !signedIn || key == "" {
		http.Error(w, "not signed in", http.StatusUnauthorized)
		return
	}
	stream, err := s.Live.Open(key, info.UserID, publicID)
	switch {
	case errors.Is(err, live.ErrTooManyStreams):
		http.Error(w, "too many open tabs for this session", http.StatusTooManyRequests)
		return
	case err != nil:
		w.Header().Set("Retry-After", "2")
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	// The headers the middleware set (security headers, request ID,
	// served-by, no-store) go out with the stream's own.
	head := w.Header().Clone()
	head.Set("Content-Type", "text/event-stream")
	head.Set("Connection", "close")
	head.Set("X-Accel-Buffering", "no")
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		stream.Close()
		s.fail(w, r, fmt.Errorf("event stream: take over the connection: %w", err))
		return
	}
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	head.Write(&b)
	fmt.Fprintf(&b, "\r\nretry: %d\n\n", streamRetry.Milliseconds())
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write(b.Bytes()); err != nil {
		stream.Close()
		conn.Close()
		return
	}
	// The session as it is now, looked up after the stream was registered,
	// so nothing that happened in between is missed.
	first, ended, err := s.Live.State(ctx, key)
	if err != nil {
		idle := info.IdleExpiry.Sub(info.LastSeen)
		first, ended = live.DeadlinesEvent(info.IdleExpiry, info.AbsoluteExpiry, idle, s.Now()), false
	}
	conn.SetDeadline(time.Time{})
	stream.Attach(conn, first, ended)
}

// handleKeepAlive is "Stay signed in": the session counts as active now.
// The tab's script posts it with js=1 and gets 204; without the script the
// form redirects back to the page it came from.
func (s *Server) handleKeepAlive(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	if err := s.Sessions.Refresh(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	if r.PostForm.Get("js") == "1" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}
