package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hallpass/hallpass/internal/live"
)

// Timing of an event stream.
const (
	// streamHeartbeat is how often an idle stream sends a comment line, so
	// proxies (HAProxy's 35 s server timeout) keep it open. It is not
	// activity: the session is not refreshed by it.
	streamHeartbeat = 15 * time.Second
	// streamRetry is how soon the browser reconnects after the stream
	// ends (a draining replica closes its streams).
	streamRetry = 2 * time.Second
)

// handleEvents streams the session's events to an open tab: "session"
// (its deadlines, at once and whenever they move), "signed-out" (the
// reason, then the stream ends), and "new-sign-in" (another session of the
// account). Without a session: 401 and no stream.
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
	defer s.Live.Close(stream)

	rc := http.NewResponseController(w)
	// The server's write timeout is for pages; a stream lives on.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(ev live.Event) bool {
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Name, ev.Data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", streamRetry.Milliseconds()); err != nil {
		return
	}
	idle := info.IdleExpiry.Sub(info.LastSeen)
	if !send(live.DeadlinesEvent(info.IdleExpiry, info.AbsoluteExpiry, idle, s.Now())) {
		return
	}

	// A timer wakes the stream at the session's next end, to say it ended
	// (idle or lifetime) even when no other request notices.
	deadline := time.NewTimer(s.untilEnd(info.IdleExpiry, info.AbsoluteExpiry))
	defer deadline.Stop()
	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	var poll <-chan time.Time
	if every := s.Live.PollEvery(); every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		poll = t.C
	}
	// check looks the session up and sends the outcome; false ends the
	// stream.
	check := func() bool {
		ev, ended, err := s.Live.State(ctx, key)
		if err != nil {
			return true // unknown for now: the next tick tries again
		}
		if !send(ev) || ended {
			return false
		}
		s.resetDeadline(deadline, ev)
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-stream.Done():
			// Ended by the hub: say what it queued (a signed-out reason),
			// then close, so the browser reconnects (elsewhere, if this
			// replica is draining).
			for {
				select {
				case ev := <-stream.Events():
					send(ev)
				default:
					return
				}
			}
		case ev := <-stream.Events():
			if !send(ev) || ev.Name == "signed-out" {
				return
			}
			s.resetDeadline(deadline, ev)
		case <-heartbeat.C:
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-deadline.C:
			if !check() {
				return
			}
		case <-poll:
			if !check() {
				return
			}
		}
	}
}

// untilEnd is how long until the sooner of the two ends, by the server's
// clock (at least a moment, so a stream past its end checks at once).
func (s *Server) untilEnd(idleEnd, absoluteEnd time.Time) time.Duration {
	end := idleEnd
	if absoluteEnd.Before(end) {
		end = absoluteEnd
	}
	return max(end.Sub(s.Now()), 10*time.Millisecond)
}

// resetDeadline moves the stream's wake-up to the ends a "session" event
// carries.
func (s *Server) resetDeadline(t *time.Timer, ev live.Event) {
	if ev.Name != "session" {
		return
	}
	var d live.Deadlines
	if json.Unmarshal([]byte(ev.Data), &d) != nil {
		return
	}
	t.Reset(s.untilEnd(time.UnixMilli(d.Idle), time.UnixMilli(d.Absolute)))
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
