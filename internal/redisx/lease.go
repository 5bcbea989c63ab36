package redisx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// The primary lease: how long a reply from the primary may be trusted to be
// the primary's, without hearing from anyone else. The argument is in
// leaseKeeper's comment and in docs/SESSIONS.md, "A primary cut off from the
// Sentinels".
const (
	// leaseProbeEvery is how often each Sentinel is asked about the
	// primary. Sentinels PING the primary about once a second, so the
	// lease a Sentinel grants runs from down-after minus up to a second
	// (with the production 1.5 s, at least 0.4 s, less the clock margin);
	// asking every 100 ms keeps the lease renewed with some 0.25 s to spare
	// at its tightest (see TestPrimaryLeaseNeverLapsesInNormalOperation).
	leaseProbeEvery = 100 * time.Millisecond
	// leaseRateNum/leaseRateDen discount every duration a Sentinel reports
	// by 10 %: this host's clock and the Sentinel's may run at different
	// rates (in practice by parts per million) and the Sentinel measures
	// with the wall clock, which NTP may slew.
	leaseRateNum, leaseRateDen = 9, 10
	// leaseHistory is how long a Sentinel's record of answers must reach
	// back before a unanimous confirmation for its answers to extend the
	// lease without the other Sentinels': a Sentinel leading a failover may
	// count another's "down" report for SENTINEL_INFO_VALIDITY (5 s) after
	// receiving it, and for a whole TILT period (30 s) if it went into TILT
	// meanwhile. 40 s covers both with room for a slow timer.
	leaseHistory = 40 * time.Second
)

// sentinelView is what one Sentinel says about the primary it follows
// (SENTINEL MASTER <name>).
type sentinelView struct {
	addr string // the primary it names, host:port
	// flags are Sentinel's flags for the primary ("master", "s_down",
	// "o_down", "failover_in_progress", "disconnected"…).
	flags        []string
	roleReported string // what the primary last said it was (INFO role)
	// lastOK is how long ago the primary last gave a valid reply to the
	// Sentinel's PING; downAfter is its down-after-milliseconds.
	lastOK, downAfter time.Duration
	quorum            int
	otherSentinels    int
}

// verdict is what one answer does to the lease.
type verdict int

const (
	// noAnswer: the Sentinel could not be asked; its earlier answers stand.
	noAnswer verdict = iota
	// clean: the Sentinel follows our primary, sees it up, and is not
	// failing it over; its answer bounds when it could flag it down.
	clean
	// unclean: the answer proves nothing (the primary flagged down, the
	// link to it broken, the reply odd); the Sentinel's record is broken.
	unclean
	// alarm: a failover is under way or done (another primary named, or
	// o_down, failover_in_progress), or a Sentinel we do not ask could be
	// leading one: the lease ends now.
	alarm
)

// judge classifies v, the answer of one of n Sentinels about primary, and
// says why when it is not clean.
func judge(v sentinelView, primary string, n int) (verdict, string) {
	switch {
	case v.addr != primary:
		return alarm, fmt.Sprintf("names %s as the primary", v.addr)
	case slices.Contains(v.flags, "o_down") || slices.Contains(v.flags, "failover_in_progress"):
		return alarm, fmt.Sprintf("flags the primary %s", strings.Join(v.flags, ","))
	case v.otherSentinels+1 > n:
		return alarm, fmt.Sprintf("knows %d other Sentinels, beyond the %d configured", v.otherSentinels, n)
	case !slices.Contains(v.flags, "master") || slices.ContainsFunc(v.flags, func(f string) bool { return f != "master" && f != "disconnected" }):
		// "disconnected" (one of the Sentinel's two links to the primary
		// is being re-made, e.g. after CLIENT KILL TYPE pubsub) changes
		// nothing: Sentinel measures down-after from the oldest unanswered
		// PING, sent after the last valid reply, or from that reply itself
		// while the link is broken, so L bounds it either way.
		return unclean, fmt.Sprintf("flags the primary %s", strings.Join(v.flags, ","))
	case v.roleReported != "master":
		return unclean, fmt.Sprintf("was last told role %q by the primary", v.roleReported)
	case v.downAfter <= 0 || v.lastOK < 0 || v.lastOK >= v.downAfter:
		return unclean, fmt.Sprintf("last heard the primary %s ago, down after %s", v.lastOK, v.downAfter)
	}
	return clean, ""
}

// leaseKeeper turns the Sentinels' answers into the primary lease: a time
// before which no failover of the primary can have promoted another server,
// so that what the primary answers until then is the current state.
//
// What Sentinel guarantees (Redis 7, sentinel.c). A failover starts only in
// a Sentinel that sees the primary objectively down (o_down; SENTINEL
// FAILOVER, run by hand, is the exception), which needs the primary to be
// subjectively down (s_down) in that Sentinel itself and in quorum−1 others
// that reported so (SENTINEL is-master-down-by-addr) within the last 5 s
// (longer only across a TILT). The Sentinel that starts it flags the
// primary failover_in_progress until its configuration names the promoted
// server, and promotion comes after the start. A Sentinel flags the primary
// s_down only once down-after has passed since the oldest PING still
// unanswered, or since the last valid reply when its link is broken; that
// PING was sent after the last valid reply. SENTINEL MASTER reports the
// time since that reply (last-ok-ping-reply, L), so a Sentinel that
// answers at time r with L, naming our primary without s_down, o_down or
// failover_in_progress, cannot flag it s_down before r − L + down-after
// (D), and had not flagged it at any moment of (r − L, r]: clearing the
// flag takes a valid reply, and there was none after r − L. Measured here,
// with this host's monotonic clock and durations discounted by 10 %, an
// answer to a question sent at t and answered by u proves the Sentinel
// "clean" (no s_down) over [u − 0.9·L, t + 0.9·(D − L)].
//
// Why quorum-many answers are not enough. The naive rule, "n − quorum + 1
// Sentinels answered clean at t, so every quorum of Sentinels includes one
// that cannot flag the primary down before t + D − L", is unsound: that
// Sentinel may have flagged it down just before t, reported so to a
// Sentinel we did not hear from, and seen the primary again; the other
// Sentinel may already be failing over on that report (and shows it only
// in its own flags), or may use the report for 5 s more. Only the leader
// of a failover shows it, and any Sentinel may lead. Hence two rules:
//
//   - Unanimous: every configured Sentinel's latest answer is clean. Then
//     no failover was under way or done at its answer (it would be flagged
//     in progress, or name the promoted server), and none can start before
//     the earliest t + 0.9·(D − L) among them, since its leader must see
//     s_down itself. That time is the lease, and the "root" of the rule
//     below.
//   - Continued: n − quorum + 1 Sentinels whose records of clean answers
//     have no gap from leaseHistory before the latest root until now.
//     Every failover starting after the root needs a quorum of Sentinels,
//     one of which is among them, to have flagged the primary s_down at its
//     start or within the report's validity before it, all within their
//     records. The lease runs to the earliest end of their records. This is
//     what keeps the lease while one Sentinel of three is down.
//
// A lease once granted is never shortened by later answers, except by an
// alarm (another primary named, a failover flagged, an unknown Sentinel),
// which ends it at once; so does a change of the pool's primary. Not
// covered: a failover run by hand (SENTINEL FAILOVER skips the down
// detection; the +switch-master subscription still hears it), a Sentinel
// monitoring the primary that none of the configured ones knows of, a
// Sentinel's wall clock stepped forward by more than 10 % of down-after,
// and master-reboot-down-after-period set below down-after.
type leaseKeeper struct {
	log *slog.Logger
	n   int // configured Sentinels

	mu        sync.Mutex
	primary   string // the primary the state below is about
	sentinels []sentinelRecord
	// root is the latest unanimous lease; rooted says there is one since
	// the last reset.
	root   int64
	rooted bool
	// cur is the lease, published: written with mu held, read without.
	cur  atomic.Pointer[leaseTerm]
	held bool // the lease held at the last answer, for logging transitions
	// why is the latest reason an answer was not clean, for the log.
	why string
}

// leaseTerm is a published lease.
type leaseTerm struct {
	// end is when the lease ends, in nanoseconds of the pool's monotonic
	// clock; 0 for none.
	end int64
	// term numbers the unbroken leases: it moves on whenever a lease is
	// granted after the previous one ended (or was ended). Whatever was
	// learnt from the primary under one term may have been overtaken by a
	// failover before the next.
	term uint64
}

// sentinelRecord is what one Sentinel's answers have proved.
type sentinelRecord struct {
	// bound is the latest clean answer's t + 0.9·(D − L): before it, this
	// Sentinel cannot start a failover. bounded is false after an unclean
	// answer or a reset.
	bound   int64
	bounded bool
	// from and until delimit its record: clean throughout, no gap.
	from, until int64
	recorded    bool
	quorum      int // as last reported; 0 until known
}

func newLeaseKeeper(n int, log *slog.Logger) *leaseKeeper {
	k := &leaseKeeper{n: n, log: log, sentinels: make([]sentinelRecord, n)}
	k.cur.Store(&leaseTerm{})
	return k
}

// lease returns the published lease.
func (k *leaseKeeper) lease() leaseTerm { return *k.cur.Load() }

// publish makes end the lease at now, starting a new term if the lease had
// ended.
func (k *leaseKeeper) publish(end, now int64) {
	old := k.cur.Load()
	if end == old.end {
		return
	}
	next := &leaseTerm{end: end, term: old.term}
	if old.end <= now && end > now {
		next.term++
	}
	k.cur.Store(next)
}

// scale discounts d by the clock margin.
func scale(d time.Duration) int64 {
	return int64(d) / leaseRateDen * leaseRateNum
}

// observe takes Sentinel i's answer v (err if there was none) to a
// question about primary sent at sent and answered by got (nanoseconds of
// the pool's monotonic clock, now being got), and returns the lease it
// publishes.
func (k *leaseKeeper) observe(i int, primary string, sent, got int64, v sentinelView, err error) int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if primary != k.primary {
		k.reset(primary)
	}
	verdict, why := noAnswer, ""
	if err == nil {
		verdict, why = judge(v, primary, k.n)
	} else {
		why = err.Error()
	}
	r := &k.sentinels[i]
	switch verdict {
	case alarm:
		k.reset(primary)
	case unclean:
		r.bounded, r.recorded = false, false
		r.quorum = v.quorum
	case clean:
		r.quorum = v.quorum
		from, until := got-scale(v.lastOK), sent+scale(v.downAfter-v.lastOK)
		r.bound, r.bounded = until, true
		if r.recorded && from <= r.until {
			r.until = max(r.until, until)
		} else {
			r.from, r.until, r.recorded = from, until, true
		}
	}
	if why != "" {
		k.why = fmt.Sprintf("sentinel %d: %s", i, why)
	}
	end := k.lease().end
	if verdict != alarm {
		if e, ok := k.unanimous(); ok {
			k.root, k.rooted = max(k.root, e), true
			end = max(end, e)
		}
		if e, ok := k.continued(); ok {
			end = max(end, e)
		}
	}
	k.publish(end, got)
	k.logTransition(got, end)
	return end
}

// unanimous returns the lease every Sentinel's latest answer grants.
func (k *leaseKeeper) unanimous() (int64, bool) {
	var end int64
	for i, r := range k.sentinels {
		if !r.bounded {
			return 0, false
		}
		if i == 0 || r.bound < end {
			end = r.bound
		}
	}
	return end, true
}

// continued returns the lease that the records of n − quorum + 1 Sentinels,
// reaching back leaseHistory before the root, grant.
func (k *leaseKeeper) continued() (int64, bool) {
	if !k.rooted {
		return 0, false
	}
	need := k.n // without every quorum known, assume the smallest, 1
	if q := k.smallestQuorum(); q > 0 {
		need = max(1, min(k.n, k.n-q+1))
	}
	var ends []int64
	for _, r := range k.sentinels {
		if r.recorded && r.from <= k.root-int64(leaseHistory) {
			ends = append(ends, r.until)
		}
	}
	if len(ends) < need {
		return 0, false
	}
	slices.Sort(ends)
	return ends[len(ends)-need], true // the need-th latest end
}

// smallestQuorum returns the smallest quorum the Sentinels reported, or 0
// while one of them has not said.
func (k *leaseKeeper) smallestQuorum() int {
	q := 0
	for i, r := range k.sentinels {
		if r.quorum <= 0 {
			return 0
		}
		if i == 0 || r.quorum < q {
			q = r.quorum
		}
	}
	return q
}

// reset forgets everything proved about the previous primary.
func (k *leaseKeeper) reset(primary string) {
	k.primary = primary
	clear(k.sentinels)
	k.root, k.rooted = 0, false
	k.publish(0, 0)
}

// forget ends the lease and forgets everything proved: the pool has moved
// to another primary.
func (k *leaseKeeper) forget(primary string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reset(primary)
}

// logTransition logs the lease being lost or regained, once each time.
func (k *leaseKeeper) logTransition(now, end int64) {
	held := now < end
	switch {
	case held && !k.held:
		k.log.Info("redis primary lease held: reads trust the primary", slog.String("primary", k.primary),
			slog.Duration("left", time.Duration(end-now)))
	case !held && k.held:
		k.log.Warn("redis primary lease lost: reads go to a replica until the Sentinels confirm the primary again",
			slog.String("primary", k.primary), slog.String("last_problem", k.why))
	}
	k.held = held
}

// PrimaryLease returns the time until which a reply from the primary may be
// trusted to be the current state: no failover of the primary can have
// promoted another server before then (see leaseKeeper for the argument).
// It is the zero Time while there is no lease. The Time carries a monotonic
// reading: compare it with time.Now, never with a time from elsewhere.
//
// A reader that must not act on a deposed primary's data (a replica of
// Hallpass cut off from the Sentinels together with the primary) takes the
// lease before asking the primary, and uses the reply only if it arrived
// before the lease's end. It costs an atomic load.
func (s *SentinelPool) PrimaryLease() time.Time {
	until, _ := s.PrimaryLeaseTerm()
	return until
}

// PrimaryLeaseTerm is PrimaryLease with the lease's term: a number that
// moves on whenever the lease is granted again after it ended. A cache
// filled from the primary under one term must not answer under the next
// before it has been emptied: the primary may have been failed over, and
// back, in between.
func (s *SentinelPool) PrimaryLeaseTerm() (until time.Time, term uint64) {
	l := s.lease.lease()
	if l.end == 0 {
		return time.Time{}, l.term
	}
	return s.base.Add(time.Duration(l.end)), l.term
}

// PrimaryTrusted reports whether the primary lease holds now.
func (s *SentinelPool) PrimaryTrusted() bool {
	end := s.lease.lease().end
	return end != 0 && s.mono() < end
}

// AwaitPrimaryLease waits until the primary lease is held, or ctx ends:
// for a process that has just reached the primary and would rather its
// first reads did not all go to a replica (the Sentinels confirm the
// primary within a round of questions, 100 ms, when all is well).
func (s *SentinelPool) AwaitPrimaryLease(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !s.PrimaryTrusted() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis primary lease: %w", ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// mono is the pool's monotonic clock, in nanoseconds since it was made.
func (s *SentinelPool) mono() int64 { return int64(time.Since(s.base)) }

// probe asks Sentinel i about the primary every leaseProbeEvery, on a
// connection it keeps open, until the pool closes, and gives each answer to
// the lease keeper. Each Sentinel has its own prober, so a hung one delays
// no other.
func (s *SentinelPool) probe(i int) {
	defer s.wg.Done()
	var c redis.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	tick := time.NewTicker(leaseProbeEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		primary := s.MasterAddr()
		if primary == "" {
			continue // not dialled yet: nothing to confirm
		}
		sent := s.mono()
		var v sentinelView
		var err error
		c, v, err = s.askMaster(c, s.opts.Addrs[i])
		got := s.mono()
		if s.ctx.Err() != nil {
			return
		}
		if s.MasterAddr() != primary {
			continue // the pool moved while we asked: the answer is about the old one
		}
		s.lease.observe(i, primary, sent, got, v, err)
	}
}

// askMaster asks a Sentinel, on c or a new connection if c is nil, for its
// view of the primary, within ConnectTimeout, and returns the connection to
// keep (nil after an error).
func (s *SentinelPool) askMaster(c redis.Conn, sentinel string) (redis.Conn, sentinelView, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.ConnectTimeout)
	defer cancel()
	if c == nil {
		var err error
		c, err = redis.DialContext(ctx, "tcp", sentinel, s.sentinelDialOptions(s.opts.ConnectTimeout)...)
		if err != nil {
			return nil, sentinelView{}, fmt.Errorf("sentinel %s: %w", sentinel, err)
		}
	}
	left := s.opts.ConnectTimeout
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	reply, err := redis.StringMap(redis.DoWithTimeout(c, left, "SENTINEL", "MASTER", s.opts.MasterName))
	if err != nil {
		var re redis.Error
		if !errors.As(err, &re) {
			c.Close()
			c = nil
		}
		return c, sentinelView{}, fmt.Errorf("sentinel %s: SENTINEL MASTER: %w", sentinel, err)
	}
	v, err := parseSentinelView(reply)
	if err != nil {
		return c, sentinelView{}, fmt.Errorf("sentinel %s: %w", sentinel, err)
	}
	return c, v, nil
}

// parseSentinelView reads the fields of a SENTINEL MASTER reply the lease
// needs; any missing or malformed one is an error.
func parseSentinelView(f map[string]string) (sentinelView, error) {
	var v sentinelView
	var errs []error
	num := func(field string) int64 {
		n, err := strconv.ParseInt(f[field], 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %q: %q", field, f[field]))
		}
		return n
	}
	if f["ip"] == "" || !isPort(f["port"]) {
		errs = append(errs, fmt.Errorf("address %q port %q", f["ip"], f["port"]))
	}
	v.addr = net.JoinHostPort(f["ip"], f["port"])
	v.flags = strings.Split(f["flags"], ",")
	v.roleReported = f["role-reported"]
	v.lastOK = time.Duration(num("last-ok-ping-reply")) * time.Millisecond
	v.downAfter = time.Duration(num("down-after-milliseconds")) * time.Millisecond
	v.quorum = int(num("quorum"))
	v.otherSentinels = int(num("num-other-sentinels"))
	if len(errs) > 0 {
		return sentinelView{}, fmt.Errorf("SENTINEL MASTER reply: %w", errors.Join(errs...))
	}
	return v, nil
}
