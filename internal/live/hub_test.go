package live

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/session"
)

// sessions is a session table the test edits.
type sessions struct {
	mu    sync.Mutex
	ended map[string]session.EndReason
	now   time.Time
}

func (s *sessions) Lookup(_ context.Context, key string) (session.Record, session.EndReason, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.ended[key]; r != "" {
		return session.Record{}, r, nil
	}
	return session.Record{LastSeen: s.now, IdleExpiry: s.now.Add(30 * time.Minute), AbsoluteExpiry: s.now.Add(12 * time.Hour)}, "", nil
}

func (s *sessions) end(key string, r session.EndReason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended[key] = r
}

func newHub(t *testing.T) (*Hub, *sessions) {
	t.Helper()
	ss := &sessions{ended: map[string]session.EndReason{}, now: time.Now()}
	h := New(Options{Sessions: ss, Now: func() time.Time { return ss.now }})
	t.Cleanup(h.Shutdown)
	return h, ss
}

// tab is the browser's end of a stream, reading events as they come.
type tab struct {
	lines chan string
	conn  net.Conn
}

func attach(t *testing.T, h *Hub, key string, userID int64, publicID string) (*Stream, *tab) {
	t.Helper()
	s, err := h.Open(key, userID, publicID)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	server, client := net.Pipe()
	tb := &tab{lines: make(chan string, 64), conn: client}
	go func() {
		defer close(tb.lines)
		r := bufio.NewReader(client)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "event: ") || strings.HasPrefix(line, "data: ") {
				tb.lines <- strings.TrimSpace(line)
			}
		}
	}()
	first, ended, err := h.State(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	s.Attach(server, first, ended)
	return s, tb
}

// expect waits for the event line "event: name" and returns its data.
func (tb *tab) expect(t *testing.T, name string) string {
	t.Helper()
	deadline := time.After(2 * time.Second)
	for {
		select {
		case line, ok := <-tb.lines:
			if !ok {
				t.Fatalf("stream closed before event %q", name)
			}
			if line == "event: "+name {
				return strings.TrimPrefix(<-tb.lines, "data: ")
			}
		case <-deadline:
			t.Fatalf("no event %q", name)
		}
	}
}

func TestAChangedSessionThatEndedTellsEveryTabAndClosesThem(t *testing.T) {
	h, ss := newHub(t)
	_, a := attach(t, h, "k1", 1, "1.a")
	_, b := attach(t, h, "k1", 1, "1.a")
	_, other := attach(t, h, "k2", 1, "1.b")
	for _, tb := range []*tab{a, b, other} {
		tb.expect(t, "session")
	}
	ss.end("k1", session.EndedByAdmin)
	h.Changed([]string{"k1", "unknown-key"})
	for _, tb := range []*tab{a, b} {
		if got := tb.expect(t, "signed-out"); got != "admin" {
			t.Errorf("signed-out data %q, want admin", got)
		}
		if _, open := <-tb.lines; open {
			t.Error("the stream stayed open after signed-out")
		}
	}
	if n := h.Count(); n != 1 {
		t.Errorf("%d streams open, want only the other session's", n)
	}
}

func TestASignInIsDeliveredToTheUsersOtherSessionsOnly(t *testing.T) {
	h, _ := newHub(t)
	_, mine := attach(t, h, "k1", 1, "1.a")
	_, newOne := attach(t, h, "k2", 1, "1.b")
	_, bobs := attach(t, h, "k3", 2, "2.a")
	for _, tb := range []*tab{mine, newOne, bobs} {
		tb.expect(t, "session")
	}
	h.SignedIn(context.Background(), SignIn{UserID: 1, PublicID: "1.b", Device: "Firefox on Linux", IP: "192.0.2.1", At: time.Now()})
	if got := mine.expect(t, "new-sign-in"); !strings.Contains(got, `"id":"1.b"`) || !strings.Contains(got, "Firefox on Linux") {
		t.Errorf("new-sign-in data %s", got)
	}
	for name, tb := range map[string]*tab{"the new session itself": newOne, "another user": bobs} {
		select {
		case line := <-tb.lines:
			t.Errorf("%s was told %q", name, line)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// A browser that stops reading cannot hold the hub up: its stream ends
// after the write timeout, and the other tabs are still served.
func TestATabThatStopsReadingLosesItsStream(t *testing.T) {
	h, _ := newHub(t)
	s, err := h.Open("k1", 1, "1.a")
	if err != nil {
		t.Fatal(err)
	}
	server, client := net.Pipe() // synchronous: a write waits for a read
	defer client.Close()
	go s.Attach(server, Event{Name: "session", Data: "{}"}, false)
	start := time.Now()
	deadline := time.Now().Add(5 * time.Second)
	for h.Count() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stream of a tab that does not read is still open after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(start); took < writeTimeout-100*time.Millisecond {
		t.Errorf("closed after %v, before the write timeout", took)
	}
}

func TestShutdownEndsEveryStreamAndRefusesNewOnes(t *testing.T) {
	h, _ := newHub(t)
	_, a := attach(t, h, "k1", 1, "1.a")
	a.expect(t, "session")
	h.Shutdown()
	if _, open := <-a.lines; open {
		t.Error("a stream stayed open after Shutdown")
	}
	if _, err := h.Open("k1", 1, "1.a"); err != ErrClosed {
		t.Errorf("Open after Shutdown = %v, want ErrClosed", err)
	}
}

// Many tabs of one session opening at once (a reload storm, or a script)
// get exactly the cap between them, however the opens interleave.
func TestConcurrentOpensNeverPassTheCap(t *testing.T) {
	h, _ := newHub(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	opened, refused := 0, 0
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.Open("k1", 1, "1.a")
			mu.Lock()
			defer mu.Unlock()
			switch err {
			case nil:
				opened++
			case ErrTooManyStreams:
				refused++
			default:
				t.Errorf("Open: %v", err)
			}
		}()
	}
	wg.Wait()
	if opened != MaxStreamsPerSession || refused != 100-MaxStreamsPerSession || h.Count() != MaxStreamsPerSession {
		t.Errorf("100 opens at once: %d opened, %d refused, %d open; want %d, %d, %d",
			opened, refused, h.Count(), MaxStreamsPerSession, 100-MaxStreamsPerSession, MaxStreamsPerSession)
	}
}
