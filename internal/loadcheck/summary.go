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
	// Counts by kind, then outcome: requests sent to a Direct address under
	// their kind and " direct" ("sign-in direct"), final checks apart under
	// "final check".
	Counts map[string]map[string]int
	// Served counts page views by the replica that answered (see where).
	Served map[string]int
	// Violations are the events that broke a promise.
	Violations []Event
	// Refusal is the window of refused sign-ins through the load
	// balancer; DirectRefusal that of sign-ins sent to Direct addresses.
	Refusal, DirectRefusal Refusal
	// Live, Revoked, Unknown: see History.Held.
	Live, Revoked, Unknown int
	// Start is the first mark, or the first event when there is no mark.
	Start time.Time
	Marks []Mark
}

// Refusal is a window of refused sign-ins: when the first refused (503) was
// sent, when the last came back, and when the first sign-in sent after it
// was acknowledged; all zero when none was refused.
type Refusal struct {
	First, Last, AckAfter time.Time
}

// add takes a sign-in's event into the window; acknowledgements are taken
// by ack, once every refusal is in.
func (r *Refusal) add(e Event) {
	if e.Outcome != Refused {
		return
	}
	if r.First.IsZero() || e.Start.Before(r.First) {
		r.First = e.Start
	}
	if e.End.After(r.Last) {
		r.Last = e.End
	}
}

func (r *Refusal) ack(e Event) {
	if !r.Last.IsZero() && e.Outcome == Acknowledged && e.Start.After(r.Last) &&
		(r.AckAfter.IsZero() || e.End.Before(r.AckAfter)) {
		r.AckAfter = e.End
	}
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
		if e.Via != "" {
			kind += " direct"
		}
		if e.Final {
			kind = "final check"
		}
		if s.Counts[kind] == nil {
			s.Counts[kind] = map[string]int{}
		}
		s.Counts[kind][e.Outcome]++
		if e.Kind == PageView && e.ServedBy != "" && !e.Final {
			s.Served[where(e)]++
		}
		if e.Violation != "" {
			s.Violations = append(s.Violations, e)
		}
		if e.Kind == SignIn {
			s.refusal(e).add(e)
		}
	}
	for _, e := range events {
		if e.Kind == SignIn {
			s.refusal(e).ack(e)
		}
	}
	return s
}

// refusal is the window e counts in.
func (s *Summary) refusal(e Event) *Refusal {
	if e.Via != "" {
		return &s.DirectRefusal
	}
	return &s.Refusal
}

// where names who answered e: the replica, and "direct" when the request
// went to it without the load balancer.
func where(e Event) string {
	w := e.ServedBy
	if w == "" {
		w = "no replica"
	}
	if e.Via != "" {
		w += " direct"
	}
	return w
}

// breaches groups the violations by the promise broken and where, with the
// first and last time each was seen.
type breach struct {
	promise, where string
	n              int
	first, last    time.Time
}

func (s Summary) breaches() []breach {
	var out []breach
	at := map[[2]string]int{}
	for _, e := range s.Violations {
		k := [2]string{e.Breach, where(e)}
		if e.Final {
			k[1] += " (final check)"
		}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, breach{promise: k[0], where: k[1], first: e.Start})
		}
		b := &out[i]
		b.n++
		if e.Start.Before(b.first) {
			b.first = e.Start
		}
		if e.Start.After(b.last) {
			b.last = e.Start
		}
	}
	slices.SortFunc(out, func(a, b breach) int { return strings.Compare(a.promise+a.where, b.promise+b.where) })
	return out
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

// RefusedUntil is how long after the first mark sign-ins through the load
// balancer were refused: until the first acknowledged sign-in after the last
// refusal. Zero when none was refused; negative when no sign-in was
// acknowledged afterwards.
func (s Summary) RefusedUntil() time.Duration {
	if s.Refusal.First.IsZero() {
		return 0
	}
	if s.Refusal.AckAfter.IsZero() {
		return -1
	}
	return s.Refusal.AckAfter.Sub(s.Start)
}

func (s Summary) refusalLine(r Refusal) string {
	if r.First.IsZero() {
		return ": none refused\n"
	}
	return fmt.Sprintf(" refused (503) from %s to %s; first acknowledged again at %s\n",
		s.since(r.First), s.since(r.Last), s.since(r.AckAfter))
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
	b.WriteString("  sign-ins" + s.refusalLine(s.Refusal))
	if len(s.Counts[SignIn+" direct"]) > 0 {
		b.WriteString("  sign-ins sent directly to a replica" + s.refusalLine(s.DirectRefusal))
	}
	fmt.Fprintf(&b, "  sessions at the end: %d held signed in, %d revoked with an acknowledgement, %d revocations unanswered (left out)\n",
		s.Live, s.Revoked, s.Unknown)
	fmt.Fprintf(&b, "  violations: %d\n", len(s.Violations))
	for _, br := range s.breaches() {
		fmt.Fprintf(&b, "    %d × %s, on %s, from %s to %s\n", br.n, br.promise, br.where, s.since(br.first), s.since(br.last))
	}
	for i, e := range s.Violations {
		if i == 20 {
			fmt.Fprintf(&b, "    … and %d more\n", len(s.Violations)-i)
			break
		}
		fmt.Fprintf(&b, "    lane %d session %s at %s on %s: %s\n", e.Lane, e.Session, s.since(e.Start), where(e), e.Violation)
	}
	return b.String()
}
