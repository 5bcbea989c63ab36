// Package live tells a replica's open browser tabs, over Server-Sent
// Events, what happens to their session elsewhere: that it ended (signed
// out on another device, revoked, by an administrator, by the limit, a
// password change, disabling, the idle timeout or the lifetime), that the
// account has a new sign-in, and the session's new deadlines when activity
// in another tab refreshed it.
//
// A Hub holds the replica's open streams. It learns of changes from the
// replica's one subscription to Redis (the session cache's link: the
// invalidation of a session key, and the sign-in events every replica
// publishes), never from one subscription per tab; without Redis (a single
// process) each stream looks its session up every PollEvery instead.
package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hallpass/hallpass/internal/session"
)

// Limits of the hub.
const (
	// MaxStreamsPerSession caps the open streams (tabs) of one session on
	// one replica; more are refused.
	MaxStreamsPerSession = 8
	// Heartbeat is how often an idle stream gets a comment line, so
	// proxies (HAProxy's 30 s client and 35 s server timeouts) keep it
	// open, and a stream whose browser has gone is noticed. It is not
	// activity: the session is not refreshed by it.
	Heartbeat = 15 * time.Second
	// writeTimeout bounds each write to a stream; a browser that does not
	// read for that long loses its stream (it reconnects afresh).
	writeTimeout = 2 * time.Second
	// checkTimeout bounds one look-up of a session.
	checkTimeout = 2 * time.Second
)

// ErrTooManyStreams is returned by Open when the session already has
// MaxStreamsPerSession streams on this replica.
var ErrTooManyStreams = errors.New("too many open streams for this session")

// ErrClosed is returned by Open once the hub is shutting down.
var ErrClosed = errors.New("live hub closed")

// Event is one Server-Sent Event.
type Event struct {
	Name string
	Data string
}

// Sessions is what the hub needs of the session manager.
type Sessions interface {
	Lookup(ctx context.Context, key string) (session.Record, session.EndReason, error)
}

// SignIn describes a new session of a user, as the other tabs of that user
// are told of it.
type SignIn struct {
	UserID   int64     `json:"user"`
	PublicID string    `json:"id"`
	Device   string    `json:"device"`
	IP       string    `json:"ip"`
	At       time.Time `json:"at"`
}

// Options configures a Hub.
type Options struct {
	Sessions Sessions
	// Publish sends a sign-in event to every replica (the Redis link's
	// Publish); nil delivers it to this replica only.
	Publish func(ctx context.Context, payload []byte) error
	// PollEvery, when above zero, makes each stream look its session up
	// that often: the only way to learn of changes without Redis, and a
	// safety net with it.
	PollEvery time.Duration
	// Now is the clock deadlines are judged by (the session manager's);
	// nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Hub holds one replica's open streams.
//
// A waiting stream costs little: its handler hands the hijacked connection
// to the hub and returns, and the hub writes to it from whatever learns of a
// change (a look-up, a sign-in event) and from two timers of its own (the
// heartbeat, and a wake-up at the session's next end or poll). So an idle
// tab holds a socket, a small struct, two timers and one goroutine blocked
// in a one-byte read (to hear at once that the tab went away), not the HTTP
// server's handler stack and its read and write buffers
// (BenchmarkIdleEventStreamMemory).
type Hub struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	byKey    map[string]map[*Stream]struct{}
	byUser   map[int64]map[*Stream]struct{}
	checking map[string]bool // a look-up of the key is running
	again    map[string]bool // and another is due when it ends
	closed   bool
}

// New returns a hub.
func New(opts Options) *Hub {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{
		opts:     opts,
		log:      log,
		byKey:    make(map[string]map[*Stream]struct{}),
		byUser:   make(map[int64]map[*Stream]struct{}),
		checking: make(map[string]bool),
		again:    make(map[string]bool),
	}
}

// Stream is one open tab's event stream.
type Stream struct {
	hub      *Hub
	key      string
	userID   int64
	publicID string

	mu      sync.Mutex // serialises writes
	conn    net.Conn   // nil until Attach
	pending []byte     // events sent before Attach
	closed  bool
	beat    *time.Timer // the heartbeat
	wake    *time.Timer // the next end of the session, or the next poll
}

// Open reserves a stream for the session stored under key, belonging to
// userID and shown as publicID; Attach then gives it its connection.
// Events sent in between are kept and written first.
func (h *Hub) Open(key string, userID int64, publicID string) (*Stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if len(h.byKey[key]) >= MaxStreamsPerSession {
		return nil, ErrTooManyStreams
	}
	s := &Stream{hub: h, key: key, userID: userID, publicID: publicID}
	add(h.byKey, key, s)
	add(h.byUser, userID, s)
	return s, nil
}

// Attach gives s its connection, whose response head has been written:
// first the events sent since Open, then first (the session as it is now);
// then the hub writes to it until the session ends, the browser goes or the
// hub shuts down. If first ends the session, the stream ends after it.
func (s *Stream) Attach(conn net.Conn, first Event, ended bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.conn = conn
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(pending) > 0 && !s.write(pending) {
		return
	}
	s.Send(first)
	if ended {
		s.Close()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.beat = time.AfterFunc(Heartbeat, s.heartbeat)
	s.wake = time.AfterFunc(s.hub.wakeAfter(first), s.wakeUp)
	go s.watchClose(conn)
}

// watchClose ends the stream as soon as the browser closes its connection
// (the tab left the page): without it the stream would hold its place under
// MaxStreamsPerSession until the next write failed, up to a heartbeat
// later, and a user browsing from page to page would soon be refused. A
// goroutine blocked in a one-byte read is the cheapest way to hear of it
// (its stack stays at the minimum); a browser sends nothing on a stream,
// so anything it does send is ignored.
func (s *Stream) watchClose(conn net.Conn) {
	var b [1]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			s.Close()
			return
		}
	}
}

// Send writes ev to the stream (or keeps it until Attach); a write that
// fails ends the stream. It reports whether the stream is still open.
func (s *Stream) Send(ev Event) bool {
	b := fmt.Appendf(nil, "event: %s\ndata: %s\n\n", ev.Name, ev.Data)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if s.conn == nil {
		s.pending = append(s.pending, b...)
		s.mu.Unlock()
		return true
	}
	s.mu.Unlock()
	if !s.write(b) {
		return false
	}
	if ev.Name == "session" {
		s.mu.Lock()
		if s.wake != nil && !s.closed {
			s.wake.Reset(s.hub.wakeAfter(ev))
		}
		s.mu.Unlock()
	}
	return true
}

// write sends b within writeTimeout, ending the stream if it cannot.
func (s *Stream) write(b []byte) bool {
	s.mu.Lock()
	if s.closed || s.conn == nil {
		s.mu.Unlock()
		return false
	}
	s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := s.conn.Write(b)
	s.mu.Unlock()
	if err != nil {
		s.Close()
		return false
	}
	return true
}

func (s *Stream) heartbeat() {
	if s.write([]byte(": ping\n\n")) {
		s.mu.Lock()
		if !s.closed {
			s.beat.Reset(Heartbeat)
		}
		s.mu.Unlock()
	}
}

// wakeUp looks the session up at its next end (or poll) and says what it
// finds; a "session" event resets the wake-up.
func (s *Stream) wakeUp() {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	ev, ended, err := s.hub.State(ctx, s.key)
	if err != nil {
		s.mu.Lock()
		if !s.closed {
			s.wake.Reset(time.Second) // unknown for now: try again soon
		}
		s.mu.Unlock()
		return
	}
	if s.Send(ev) && ended {
		s.Close()
	}
}

// Close ends the stream: the connection is closed (the browser reconnects
// after the retry delay, unless it was told it is signed out) and the hub
// forgets it.
func (s *Stream) Close() {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	if s.beat != nil {
		s.beat.Stop()
	}
	if s.wake != nil {
		s.wake.Stop()
	}
	conn := s.conn
	s.mu.Unlock()
	if already {
		return
	}
	if conn != nil {
		conn.Close()
	}
	h := s.hub
	h.mu.Lock()
	remove(h.byKey, s.key, s)
	remove(h.byUser, s.userID, s)
	h.mu.Unlock()
}

// wakeAfter is when a stream that was just sent ev should look its session
// up again: at the sooner of its ends, or the next poll.
func (h *Hub) wakeAfter(ev Event) time.Duration {
	wait := time.Duration(1<<63 - 1)
	if h.opts.PollEvery > 0 {
		wait = h.opts.PollEvery
	}
	if ev.Name == "session" {
		var d Deadlines
		if json.Unmarshal([]byte(ev.Data), &d) == nil {
			end := min(d.Idle, d.Absolute)
			wait = min(wait, time.UnixMilli(end).Sub(h.opts.Now()))
		}
	}
	return max(wait, 10*time.Millisecond)
}

// PollEvery is how often each stream looks its session up itself
// (Options.PollEvery); zero for never.
func (h *Hub) PollEvery() time.Duration { return h.opts.PollEvery }

// Count returns how many streams are open.
func (h *Hub) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.byKey {
		n += len(set)
	}
	return n
}

// Shutdown ends every stream and refuses new ones: a draining replica's
// tabs reconnect to another replica.
func (h *Hub) Shutdown() {
	h.mu.Lock()
	h.closed = true
	var all []*Stream
	for _, set := range h.byKey {
		for s := range set {
			all = append(all, s)
		}
	}
	h.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
}

// Changed is told the store keys of sessions that changed (the session
// cache link's invalidations). Each one with open streams here is looked up
// once, off the caller's goroutine: ended → "signed-out" with the reason;
// still live → its deadlines ("session"), which another tab's activity or
// "Stay signed in" moved.
func (h *Hub) Changed(keys []string) {
	for _, k := range keys {
		h.check(k)
	}
}

// Resync looks up every session with open streams here: after the link
// was down, any change may have been missed.
func (h *Hub) Resync() {
	h.mu.Lock()
	keys := make([]string, 0, len(h.byKey))
	for k := range h.byKey {
		keys = append(keys, k)
	}
	h.mu.Unlock()
	h.Changed(keys)
}

// check looks the session under key up and tells its streams, if it has
// any here; look-ups of one key never overlap, and a change that arrives
// during one is looked up again after it.
func (h *Hub) check(key string) {
	h.mu.Lock()
	if len(h.byKey[key]) == 0 {
		h.mu.Unlock()
		return
	}
	if h.checking[key] {
		h.again[key] = true
		h.mu.Unlock()
		return
	}
	h.checking[key] = true
	h.mu.Unlock()
	go func() {
		for {
			h.lookup(key)
			h.mu.Lock()
			if !h.again[key] {
				delete(h.checking, key)
				h.mu.Unlock()
				return
			}
			delete(h.again, key)
			h.mu.Unlock()
		}
	}()
}

// lookup reads the session under key and sends its streams the outcome.
func (h *Hub) lookup(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	ev, ended, err := h.State(ctx, key)
	if err != nil {
		// Unknown: say nothing. The next change, wake-up or reconnect
		// tries again, and the tab's next click finds out for sure.
		h.log.Debug("live: session look-up failed", slog.Any("err", err))
		return
	}
	for _, s := range streams(h, h.byKey, key) {
		if s.Send(ev) && ended {
			s.Close()
		}
	}
}

// streams copies the streams under k, so they can be written to without
// holding the hub's lock.
func streams[K comparable](h *Hub, m map[K]map[*Stream]struct{}, k K) []*Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Stream, 0, len(m[k]))
	for s := range m[k] {
		out = append(out, s)
	}
	return out
}

// State looks up the session under key now, as a stream starting or
// waking at a deadline does: the event to send, and whether it ends the
// stream.
func (h *Hub) State(ctx context.Context, key string) (Event, bool, error) {
	rec, ended, err := h.opts.Sessions.Lookup(ctx, key)
	if err != nil {
		return Event{}, false, err
	}
	if ended != "" {
		return Event{Name: "signed-out", Data: string(ended)}, true, nil
	}
	return DeadlinesEvent(rec.IdleExpiry, rec.AbsoluteExpiry, rec.IdleExpiry.Sub(rec.LastSeen), h.opts.Now()), false, nil
}

// Deadlines is the payload of a "session" event: when the session ends if
// idle, when it ends whatever the activity, how long before either the tab
// warns, and the server's now (the tab counts from it, not its own clock).
type Deadlines struct {
	Idle       int64 `json:"idle"`     // Unix ms
	Absolute   int64 `json:"absolute"` // Unix ms
	WarnBefore int64 `json:"warn"`     // ms
	Now        int64 `json:"now"`      // Unix ms
}

// DeadlinesEvent is the "session" event for the given deadlines.
func DeadlinesEvent(idleEnd, absoluteEnd time.Time, idle time.Duration, now time.Time) Event {
	b, _ := json.Marshal(Deadlines{
		Idle:       idleEnd.UnixMilli(),
		Absolute:   absoluteEnd.UnixMilli(),
		WarnBefore: session.WarnBefore(idle).Milliseconds(),
		Now:        now.UnixMilli(),
	})
	return Event{Name: "session", Data: string(b)}
}

// SignedIn tells every replica that userID has a new session: their tabs
// of userID's other sessions show "New sign-in … Was this you?".
func (h *Hub) SignedIn(ctx context.Context, in SignIn) {
	payload, err := json.Marshal(in)
	if err != nil {
		return
	}
	if h.opts.Publish == nil {
		h.Delivered(payload)
		return
	}
	if err := h.opts.Publish(ctx, payload); err != nil {
		// Best effort: the sign-in itself succeeded, and the devices page
		// lists the new session either way.
		h.log.Warn("live: sign-in event not published", slog.Any("err", err))
	}
}

// Delivered is given each sign-in event published by any replica.
func (h *Hub) Delivered(payload []byte) {
	var in SignIn
	if err := json.Unmarshal(payload, &in); err != nil || in.UserID == 0 {
		return
	}
	b, _ := json.Marshal(struct {
		ID     string `json:"id"`
		Device string `json:"device"`
		IP     string `json:"ip"`
		At     int64  `json:"at"`
	}{in.PublicID, in.Device, in.IP, in.At.UnixMilli()})
	ev := Event{Name: "new-sign-in", Data: string(b)}
	for _, s := range streams(h, h.byUser, in.UserID) {
		if s.publicID != in.PublicID {
			s.Send(ev)
		}
	}
}

func add[K comparable](m map[K]map[*Stream]struct{}, k K, s *Stream) {
	set := m[k]
	if set == nil {
		set = make(map[*Stream]struct{})
		m[k] = set
	}
	set[s] = struct{}{}
}

func remove[K comparable](m map[K]map[*Stream]struct{}, k K, s *Stream) {
	if set := m[k]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}
