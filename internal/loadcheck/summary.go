package loadcheck

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mark is a moment a scenario names, e.g. "cut" when the Redis primary was
// disconnected: the summary gives times relative to the first mark.
type Mark struct {
	At    time.Time
	Label string
}

// ReadMarks reads marks written one a line as "<unix seconds> <label>", e.g.
// by `echo "$(date +%s.%N) cut" >>marks`. A missing file is no marks.
func ReadMarks(path string) ([]Mark, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var marks []Mark
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		at, label, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if at == "" {
			continue
		}
		t, err := parseUnix(at)
		if err != nil {
			return nil, fmt.Errorf("marks %s: %q: %w", path, sc.Text(), err)
		}
		marks = append(marks, Mark{At: t, Label: label})
	}
	return marks, sc.Err()
}

// parseUnix parses "1700000000.25" (date +%s.%N) to the nanosecond.
func parseUnix(s string) (time.Time, error) {
	whole, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	var nanos int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if nanos, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(secs, nanos), nil
}

// Summary is what a history adds up to.
type Summary struct {
	// Counts by kind, then outcome (final checks apart, under "final").
	Counts map[string]map[string]int
	// Served counts page views by the replica that answered.
	Served map[string]int
	// Violations are the events that broke a promise.
	Violations []Event
	// Refusal: the first sign-in refused (503) and the first one
	// acknowledged after the last refusal; zero when none was refused.
	FirstRefused, LastRefused, AckAfter time.Time
	// Live, Revoked, Unknown: see History.Held.
	Live, Revoked, Unknown int
	// Start is the first mark, or the first event when there is no mark.
	Start time.Time
	Marks []Mark
}

// Summarize adds the history up; times are given relative to the first mark.
func (h *History) Summarize(marks []Mark) Summary {
	events := h.Events()
	s := Summary{Counts: map[string]map[string]int{}, Served: map[string]int{}, Marks: marks}
	s.Live, s.Revoked, s.Unknown = h.Held()
	if len(marks) > 0 {
		s.Start = marks[0].At
	} else if len(events) > 0 {
		s.Start = events[0].Start
	}
	for _, e := range events {
		kind := e.Kind
		if e.Final {
			kind = "final check"
		}
		if s.Counts[kind] == nil {
			s.Counts[kind] = map[string]int{}
		}
		s.Counts[kind][e.Outcome]++
		if e.Kind == PageView && e.ServedBy != "" && !e.Final {
			s.Served[e.ServedBy]++
		}
		if e.Violation != "" {
			s.Violations = append(s.Violations, e)
		}
		if e.Kind == SignIn && e.Outcome == Refused {
			if s.FirstRefused.IsZero() || e.Start.Before(s.FirstRefused) {
				s.FirstRefused = e.Start
			}
			if e.End.After(s.LastRefused) {
				s.LastRefused = e.End
			}
		}
	}
	if !s.LastRefused.IsZero() {
		for _, e := range events {
			if e.Kind == SignIn && e.Outcome == Acknowledged && e.Start.After(s.LastRefused) &&
				(s.AckAfter.IsZero() || e.End.Before(s.AckAfter)) {
				s.AckAfter = e.End
			}
		}
	}
	return s
}

// Failed counts requests that failed outright (a connection error, a 5xx
// other than 503, any unexpected answer), final checks included.
func (s Summary) Failed() int {
	n := 0
	for _, byOutcome := range s.Counts {
		n += byOutcome[Failed]
	}
	return n
}

// RefusedUntil is how long after the first mark sign-ins were refused: until
// the first acknowledged sign-in after the last refusal. Zero when none was
// refused; negative when no sign-in was acknowledged afterwards.
func (s Summary) RefusedUntil() time.Duration {
	if s.FirstRefused.IsZero() {
		return 0
	}
	if s.AckAfter.IsZero() {
		return -1
	}
	return s.AckAfter.Sub(s.Start)
}

func (s Summary) since(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return fmt.Sprintf("%.1f s", t.Sub(s.Start).Seconds())
}

// String is the summary as a few lines of text.
func (s Summary) String() string {
	var b strings.Builder
	if len(s.Marks) > 0 {
		b.WriteString("  marks:")
		for _, m := range s.Marks {
			fmt.Fprintf(&b, " %s at %s;", m.Label, s.since(m.At))
		}
		b.WriteString("\n")
	}
	for _, kind := range slices.Sorted(maps.Keys(s.Counts)) {
		fmt.Fprintf(&b, "  %-12s", kind+":")
		for _, outcome := range slices.Sorted(maps.Keys(s.Counts[kind])) {
			fmt.Fprintf(&b, " %s %d", outcome, s.Counts[kind][outcome])
		}
		b.WriteString("\n")
	}
	b.WriteString("  page views served by:")
	for _, r := range slices.Sorted(maps.Keys(s.Served)) {
		fmt.Fprintf(&b, " %s %d", r, s.Served[r])
	}
	b.WriteString("\n")
	if s.FirstRefused.IsZero() {
		b.WriteString("  sign-ins: none refused\n")
	} else {
		fmt.Fprintf(&b, "  sign-ins refused (503) from %s to %s; first acknowledged again at %s\n",
			s.since(s.FirstRefused), s.since(s.LastRefused), s.since(s.AckAfter))
	}
	fmt.Fprintf(&b, "  sessions at the end: %d held signed in, %d revoked with an acknowledgement, %d revocations unanswered (left out)\n",
		s.Live, s.Revoked, s.Unknown)
	fmt.Fprintf(&b, "  violations: %d\n", len(s.Violations))
	for i, e := range s.Violations {
		if i == 20 {
			fmt.Fprintf(&b, "    … and %d more\n", len(s.Violations)-i)
			break
		}
		fmt.Fprintf(&b, "    lane %d session %s at %s on %s: %s\n", e.Lane, e.Session, s.since(e.Start), e.ServedBy, e.Violation)
	}
	return b.String()
}
