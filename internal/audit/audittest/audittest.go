// Package audittest is the contract every audit.Store implementation must
// meet, as a test suite each implementation's tests run.
package audittest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/audit"
)

// Run checks the store contract. newStore must return an empty store of its
// own each time it is called, cleaned up with t; subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) audit.Store) {
	tests := []struct {
		name string
		test func(t *testing.T, s audit.Store)
	}{
		{"RecordThenListRoundTrips", testRecordThenList},
		{"ZeroTimeIsStampedByTheStore", testZeroTimeIsStamped},
		{"ZeroUserIDsReadBackAsZero", testZeroUserIDs},
		{"ListIsNewestFirst", testListIsNewestFirst},
		{"SameInstantIsNewestRecordedFirst", testSameInstantOrder},
		{"ListPages", testListPages},
		{"ListAndCountFilterByUser", testFilterByUser},
		{"ListEmpty", testListEmpty},
		{"LongDetailRoundTrips", testLongDetail},
		{"TextThatIsNotUTF8IsReplaced", testBadText},
		{"RecordRejectsInvalidEvents", testRejectsInvalid},
		{"ConcurrentRecordsAllLand", testConcurrentRecords},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// base is an instant with a sub-microsecond part, in a zone other than UTC,
// so stores must normalise it.
var base = time.Date(2031, 3, 4, 5, 6, 7, 890_123_456, time.FixedZone("UTC+2", 2*3600))

func record(t *testing.T, s audit.Store, ev audit.Event) {
	t.Helper()
	if err := s.Record(ctx(t), ev); err != nil {
		t.Fatalf("Record(%+v): %v", ev, err)
	}
}

func list(t *testing.T, s audit.Store, opts audit.ListOptions) []audit.Event {
	t.Helper()
	events, err := s.List(ctx(t), opts)
	if err != nil {
		t.Fatalf("List(%+v): %v", opts, err)
	}
	return events
}

func count(t *testing.T, s audit.Store, opts audit.ListOptions) int {
	t.Helper()
	n, err := s.Count(ctx(t), opts)
	if err != nil {
		t.Fatalf("Count(%+v): %v", opts, err)
	}
	return n
}

// details returns the Detail of each event, which the tests use as a label.
func details(events []audit.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.Detail
	}
	return out
}

// checkTime checks a stored time is set, in UTC and to the microsecond.
func checkTime(t *testing.T, what string, got time.Time) {
	t.Helper()
	if got.IsZero() {
		t.Errorf("%s is zero", what)
	}
	if got.Location() != time.UTC {
		t.Errorf("%s = %v, want UTC", what, got)
	}
	if !got.Equal(got.Truncate(time.Microsecond)) {
		t.Errorf("%s = %v, want microsecond precision", what, got)
	}
}

func testRecordThenList(t *testing.T, s audit.Store) {
	in := audit.Event{
		ID:           999, // ignored: the store assigns IDs
		At:           base,
		ActorID:      7,
		ActorName:    "admin",
		Action:       audit.UserDisabled,
		TargetUserID: 42,
		TargetName:   "mallory",
		Detail:       "disabled after a report; ünïcödé ✓",
		IP:           "2001:db8::1",
		Replica:      "hallpass-2",
	}
	record(t, s, in)
	got := list(t, s, audit.ListOptions{})
	if len(got) != 1 {
		t.Fatalf("List returned %d events, want 1", len(got))
	}
	ev := got[0]
	if ev.ID <= 0 {
		t.Errorf("ID = %d, want a positive store-assigned ID", ev.ID)
	}
	checkTime(t, "At", ev.At)
	want := in
	want.ID = ev.ID
	want.At = base.UTC().Truncate(time.Microsecond)
	if ev != want {
		t.Errorf("List returned\n%+v\nwant\n%+v", ev, want)
	}
}

func testZeroTimeIsStamped(t *testing.T, s audit.Store) {
	record(t, s, audit.Event{Action: audit.Logout, ActorID: 1})
	got := list(t, s, audit.ListOptions{})
	if len(got) != 1 {
		t.Fatalf("List returned %d events, want 1", len(got))
	}
	checkTime(t, "At of an event recorded without one", got[0].At)
}

func testZeroUserIDs(t *testing.T, s audit.Store) {
	record(t, s, audit.Event{At: base, Action: audit.LoginFailed, TargetName: "nobody", IP: "192.0.2.1"})
	got := list(t, s, audit.ListOptions{})
	if len(got) != 1 {
		t.Fatalf("List returned %d events, want 1", len(got))
	}
	if got[0].ActorID != 0 || got[0].TargetUserID != 0 || got[0].ActorName != "" {
		t.Errorf("event without users read back with actor %d %q, target %d; want 0, \"\", 0",
			got[0].ActorID, got[0].ActorName, got[0].TargetUserID)
	}
	// No user's history holds an event that involves no user.
	for _, id := range []int64{1, 2} {
		if n := count(t, s, audit.ListOptions{UserID: id}); n != 0 {
			t.Errorf("Count(UserID %d) = %d, want 0", id, n)
		}
	}
}

func testListIsNewestFirst(t *testing.T, s audit.Store) {
	// Recorded out of order, with offsets that differ below the second and
	// land on whole seconds, which a text-stored time must still order.
	at := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, e := range []struct {
		label  string
		offset time.Duration
	}{
		{"+1s", time.Second},
		{"+0", 0},
		{"+1.5s", 1500 * time.Millisecond},
		{"+1.000001s", time.Second + time.Microsecond},
		{"+10s", 10 * time.Second},
		{"+2s", 2 * time.Second},
		{"-1d", -24 * time.Hour},
		{"+0.1s", 100 * time.Millisecond},
		{"+0.12s", 120 * time.Millisecond},
	} {
		record(t, s, audit.Event{At: at.Add(e.offset), Action: audit.LoginSucceeded, ActorID: 1, Detail: e.label})
	}
	got := details(list(t, s, audit.ListOptions{}))
	want := []string{"+10s", "+2s", "+1.5s", "+1.000001s", "+1s", "+0.12s", "+0.1s", "+0", "-1d"}
	if !slices.Equal(got, want) {
		t.Errorf("List order = %q, want %q", got, want)
	}
}

func testSameInstantOrder(t *testing.T, s audit.Store) {
	for i := range 3 {
		record(t, s, audit.Event{At: base, Action: audit.SessionRevoked, ActorID: 1, Detail: fmt.Sprint(i)})
	}
	got := list(t, s, audit.ListOptions{})
	if d := details(got); !slices.Equal(d, []string{"2", "1", "0"}) {
		t.Errorf("List order of events at one instant = %q, want most recently recorded first", d)
	}
	if !(got[0].ID > got[1].ID && got[1].ID > got[2].ID) {
		t.Errorf("IDs = %d, %d, %d; want them decreasing down the list", got[0].ID, got[1].ID, got[2].ID)
	}
}

func testListPages(t *testing.T, s audit.Store) {
	for i := range 7 {
		record(t, s, audit.Event{At: base.Add(time.Duration(i) * time.Minute), Action: audit.Logout, ActorID: 1, Detail: fmt.Sprint(i)})
	}
	for _, tc := range []struct {
		opts audit.ListOptions
		want []string
	}{
		{audit.ListOptions{}, []string{"6", "5", "4", "3", "2", "1", "0"}},
		{audit.ListOptions{Limit: 3}, []string{"6", "5", "4"}},
		{audit.ListOptions{Limit: 3, Offset: 3}, []string{"3", "2", "1"}},
		{audit.ListOptions{Limit: 3, Offset: 6}, []string{"0"}},
		{audit.ListOptions{Limit: 3, Offset: 7}, []string{}},
		{audit.ListOptions{Limit: 3, Offset: 100}, []string{}},
		{audit.ListOptions{Offset: 5}, []string{"1", "0"}},
		{audit.ListOptions{Limit: -1, Offset: -4}, []string{"6", "5", "4", "3", "2", "1", "0"}},
	} {
		if got := details(list(t, s, tc.opts)); !slices.Equal(got, tc.want) {
			t.Errorf("List(%+v) = %q, want %q", tc.opts, got, tc.want)
		}
		// Count ignores paging.
		if n := count(t, s, tc.opts); n != 7 {
			t.Errorf("Count(%+v) = %d, want 7", tc.opts, n)
		}
	}
}

func testFilterByUser(t *testing.T, s audit.Store) {
	for i, e := range []struct {
		label         string
		actor, target int64
	}{
		{"1 acts on 2", 1, 2},
		{"2 alone", 2, 0},
		{"3 acts on 1", 3, 1},
		{"anonymous on 1", 0, 1},
		{"3 alone", 3, 0},
		{"1 on self", 1, 1},
		{"system", 0, 0},
		{"10 alone", 10, 0}, // shares digits with 1: the filter compares IDs, not text
	} {
		record(t, s, audit.Event{
			At: base.Add(time.Duration(i) * time.Second), Action: audit.PasswordChanged,
			ActorID: e.actor, TargetUserID: e.target, Detail: e.label,
		})
	}
	for _, tc := range []struct {
		user int64
		want []string
	}{
		{0, []string{"10 alone", "system", "1 on self", "3 alone", "anonymous on 1", "3 acts on 1", "2 alone", "1 acts on 2"}},
		{1, []string{"1 on self", "anonymous on 1", "3 acts on 1", "1 acts on 2"}},
		{2, []string{"2 alone", "1 acts on 2"}},
		{3, []string{"3 alone", "3 acts on 1"}},
		{10, []string{"10 alone"}},
		{99, []string{}},
	} {
		opts := audit.ListOptions{UserID: tc.user}
		if got := details(list(t, s, opts)); !slices.Equal(got, tc.want) {
			t.Errorf("List(UserID %d) = %q, want %q", tc.user, got, tc.want)
		}
		if n := count(t, s, opts); n != len(tc.want) {
			t.Errorf("Count(UserID %d) = %d, want %d", tc.user, n, len(tc.want))
		}
	}
	// Paging applies after the filter.
	got := details(list(t, s, audit.ListOptions{UserID: 1, Limit: 2, Offset: 1}))
	if want := []string{"anonymous on 1", "3 acts on 1"}; !slices.Equal(got, want) {
		t.Errorf("List(UserID 1, Limit 2, Offset 1) = %q, want %q", got, want)
	}
}

func testListEmpty(t *testing.T, s audit.Store) {
	if got := list(t, s, audit.ListOptions{}); len(got) != 0 {
		t.Errorf("List of an empty store = %+v, want none", got)
	}
	if got := list(t, s, audit.ListOptions{UserID: 1, Limit: 10}); len(got) != 0 {
		t.Errorf("List(UserID 1) of an empty store = %+v, want none", got)
	}
	if n := count(t, s, audit.ListOptions{}); n != 0 {
		t.Errorf("Count of an empty store = %d, want 0", n)
	}
}

func testLongDetail(t *testing.T, s audit.Store) {
	// 256 KiB of mixed one- to four-byte characters: no column may be a
	// short VARCHAR, and multi-byte text must survive whole.
	detail := strings.Repeat("détail long ✓ 🔐 ", 256*1024/24)
	name := strings.Repeat("n", 1000)
	record(t, s, audit.Event{At: base, Action: audit.SessionsRevokedAll, ActorID: 5, ActorName: name, Detail: detail})
	got := list(t, s, audit.ListOptions{})
	if len(got) != 1 {
		t.Fatalf("List returned %d events, want 1", len(got))
	}
	if got[0].Detail != detail {
		t.Errorf("long Detail read back as %d bytes, want the %d written", len(got[0].Detail), len(detail))
	}
	if got[0].ActorName != name {
		t.Errorf("long ActorName read back as %d bytes, want %d", len(got[0].ActorName), len(name))
	}
}

func testBadText(t *testing.T, s audit.Store) {
	// A username typed at sign-in can hold anything; the event must still be
	// recorded, the same way on every store.
	record(t, s, audit.Event{At: base, Action: audit.LoginFailed, TargetName: "ev\xffil\x00name", Detail: "a\x00b", IP: "\xc3"})
	got := list(t, s, audit.ListOptions{})
	if len(got) != 1 {
		t.Fatalf("List returned %d events, want 1", len(got))
	}
	if want := "ev\uFFFDil\uFFFDname"; got[0].TargetName != want {
		t.Errorf("TargetName = %q, want %q", got[0].TargetName, want)
	}
	if want := "a\uFFFDb"; got[0].Detail != want {
		t.Errorf("Detail = %q, want %q", got[0].Detail, want)
	}
	if want := "\uFFFD"; got[0].IP != want {
		t.Errorf("IP = %q, want %q", got[0].IP, want)
	}
}

func testRejectsInvalid(t *testing.T, s audit.Store) {
	for _, ev := range []audit.Event{
		{At: base},
		{At: base, Action: audit.Logout, ActorID: -1},
		{At: base, Action: audit.Logout, TargetUserID: -5},
	} {
		if err := s.Record(ctx(t), ev); !errors.Is(err, audit.ErrInvalidEvent) {
			t.Errorf("Record(%+v) = %v, want ErrInvalidEvent", ev, err)
		}
	}
	if n := count(t, s, audit.ListOptions{}); n != 0 {
		t.Errorf("Count after rejected events = %d, want 0", n)
	}
}

func testConcurrentRecords(t *testing.T, s audit.Store) {
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	c := ctx(t)
	for i := range n {
		wg.Go(func() {
			errs <- s.Record(c, audit.Event{At: base, Action: audit.LoginSucceeded, ActorID: int64(i + 1)})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Record: %v", err)
		}
	}
	got := list(t, s, audit.ListOptions{})
	if len(got) != n {
		t.Fatalf("List after %d concurrent records returned %d events", n, len(got))
	}
	ids := make(map[int64]bool)
	for _, ev := range got {
		ids[ev.ID] = true
	}
	if len(ids) != n {
		t.Errorf("%d concurrent records got %d distinct IDs", n, len(ids))
	}
}
