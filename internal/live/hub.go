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
	"log/slog"
	"sync"
	"time"

	"github.com/hallpass/hallpass/internal/session"
)

// Limits of the hub.
const (
	// MaxStreamsPerSession caps the open streams (tabs) of one session on
	// one replica; more are refused.
	MaxStreamsPerSession = 8
	// streamBuffer is how many events may wait for a slow stream; beyond
	// it the stream is closed (the browser reconnects and starts afresh).
	streamBuffer = 8
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
	key      string
	userID   int64
	publicID string
	events   chan Event
	done     chan struct{}
	once     sync.Once
}

// Events delivers the stream's events; Done is closed when the hub ends
// the stream (its session ended, it fell behind, or the hub shut down).
func (s *Stream) Events() <-chan Event { return s.events }

// Done is closed when the hub ends the stream.
func (s *Stream) Done() <-chan struct{} { return s.done }

func (s *Stream) end() { s.once.Do(func() { close(s.done) }) }

// Open registers a stream for the session stored under key, belonging to
// userID and shown as publicID.
func (h *Hub) Open(key string, userID int64, publicID string) (*Stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if len(h.byKey[key]) >= MaxStreamsPerSession {
		return nil, ErrTooManyStreams
	}
	s := &Stream{key: key, userID: userID, publicID: publicID,
		events: make(chan Event, streamBuffer), done: make(chan struct{})}
	add(h.byKey, key, s)
	add(h.byUser, userID, s)
	return s, nil
}

// Close unregisters s (its handler returned).
func (h *Hub) Close(s *Stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	remove(h.byKey, s.key, s)
	remove(h.byUser, s.userID, s)
	s.end()
}

// PollEvery is how often each stream should look its session up itself
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
	defer h.mu.Unlock()
	h.closed = true
	for _, set := range h.byKey {
		for s := range set {
			s.end()
		}
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
	rec, ended, err := h.opts.Sessions.Lookup(ctx, key)
	if err != nil {
		// Unknown: say nothing. The next change, poll or reconnect tries
		// again, and the tab's next click finds out for sure.
		h.log.Debug("live: session look-up failed", slog.Any("err", err))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.byKey[key] {
		if ended != "" {
			h.sendLocked(s, Event{Name: "signed-out", Data: string(ended)})
			s.end()
			continue
		}
		h.sendLocked(s, DeadlinesEvent(rec.IdleExpiry, rec.AbsoluteExpiry, rec.IdleExpiry.Sub(rec.LastSeen), h.opts.Now()))
	}
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
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.byUser[in.UserID] {
		if s.publicID != in.PublicID {
			h.sendLocked(s, ev)
		}
	}
}

// sendLocked queues ev for s, or ends s if it has fallen behind.
func (h *Hub) sendLocked(s *Stream, ev Event) {
	select {
	case <-s.done:
	case s.events <- ev:
	default:
		s.end()
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
