package redisx

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

const leasePrimary = "10.0.0.1:6379"

// healthy is a Sentinel's answer about leasePrimary when it last heard the
// primary lastOK ago, with production timings (down after 1.5 s, quorum 2
// of 3).
func healthy(lastOK time.Duration) sentinelView {
	return sentinelView{
		addr:           leasePrimary,
		flags:          []string{"master"},
		roleReported:   "master",
		lastOK:         lastOK,
		downAfter:      1500 * time.Millisecond,
		quorum:         2,
		otherSentinels: 2,
	}
}

// leaseSim feeds a keeper of three Sentinels answers as a running cluster
// gives them: each Sentinel hears the primary's PONG once a second, at its
// own phase, and answers within a millisecond.
type leaseSim struct {
	k   *leaseKeeper
	now time.Duration
}

func newLeaseSim() *leaseSim {
	return &leaseSim{k: newLeaseKeeper(3, slog.New(slog.DiscardHandler))}
}

// lastOK is how long ago Sentinel i heard its last PONG at now.
func lastOK(i int, now time.Duration) time.Duration {
	phase := time.Duration(i) * 300 * time.Millisecond
	return (now + time.Second - phase) % time.Second
}

// ask has Sentinel i answer v at the simulated now, and returns the lease
// left after it (negative: none).
func (s *leaseSim) ask(i int, v sentinelView, err error) time.Duration {
	sent, got := int64(s.now), int64(s.now+time.Millisecond)
	end := s.k.observe(i, leasePrimary, sent, got, v, err)
	if end == 0 {
		return -1
	}
	return time.Duration(end - got)
}

// run advances the simulation by d, every Sentinel in up answering every
// leaseProbeEvery, and returns the least lease left seen just before a
// round of answers (negative: none).
func (s *leaseSim) run(d time.Duration, up ...int) time.Duration {
	least := time.Duration(1 << 62)
	for stop := s.now + d; s.now < stop; s.now += leaseProbeEvery {
		least = min(least, s.left())
		for _, i := range up {
			s.ask(i, healthy(lastOK(i, s.now)), nil)
		}
	}
	return least
}

// left is how long the lease has left at the simulated now (negative:
// none).
func (s *leaseSim) left() time.Duration {
	end := time.Duration(s.k.lease().end)
	if end == 0 {
		return -1
	}
	return end - s.now
}

func TestLeaseHeldWhileEverySentinelConfirmsThePrimary(t *testing.T) {
	s := newLeaseSim()
	s.run(leaseProbeEvery, 0, 1, 2) // the first round grants it
	least := s.run(time.Minute, 0, 1, 2)
	if least < 200*time.Millisecond {
		t.Fatalf("lease came within %s of its end", least)
	}
	t.Logf("least lease left before a renewal: %s", least)
}

// CLIENT KILL TYPE pubsub on the primary cuts every Sentinel's pub/sub
// link to it, and each flags it "disconnected" until it reconnects, while
// its PINGs go on over the other link: the lease must not lapse (it did,
// and page views went to a lagging replica; the cluster suite's scenario 8).
func TestLeaseHeldWhileTheSentinelsRemakeTheirLinks(t *testing.T) {
	s := newLeaseSim()
	s.run(leaseProbeEvery, 0, 1, 2)
	least := time.Duration(1 << 62)
	for stop := s.now + 5*time.Second; s.now < stop; s.now += leaseProbeEvery {
		least = min(least, s.left())
		for i := range 3 {
			v := healthy(lastOK(i, s.now))
			v.flags = []string{"master", "disconnected"}
			s.ask(i, v, nil)
		}
	}
	if least < 200*time.Millisecond {
		t.Fatalf("lease came within %s of its end while every Sentinel re-made its link", least)
	}
}

// The unanimous lease ends at t + 0.9·(down-after − last-ok-ping-reply),
// from the Sentinel that heard the primary longest ago.
func TestUnanimousLeaseEndsByTheStalestSentinel(t *testing.T) {
	s := newLeaseSim()
	s.ask(0, healthy(100*time.Millisecond), nil)
	s.ask(1, healthy(900*time.Millisecond), nil)
	left := s.ask(2, healthy(500*time.Millisecond), nil)
	want := (1500*time.Millisecond-900*time.Millisecond)*9/10 - time.Millisecond
	if left != want {
		t.Fatalf("lease left %s, want %s", left, want)
	}
}

// Two of three answering clean at once prove nothing about a failover the
// third may already be leading on a report made before the question: no
// lease without every Sentinel.
func TestNoLeaseFromAQuorumWithoutHistory(t *testing.T) {
	s := newLeaseSim()
	for range 50 {
		if left := s.ask(1, healthy(0), nil); left >= 0 {
			t.Fatalf("lease from Sentinel 1 alone: %s", left)
		}
		if left := s.ask(2, healthy(0), nil); left >= 0 {
			t.Fatalf("lease from Sentinels 1 and 2: %s", left)
		}
		s.ask(0, sentinelView{}, errors.New("i/o timeout"))
		s.now += leaseProbeEvery
	}
}

// Once every Sentinel has confirmed the primary for leaseHistory, losing
// one of three does not end the lease: the other two carry it.
func TestLeaseOutlivesOneSentinelOnceTheirHistoryIsLong(t *testing.T) {
	s := newLeaseSim()
	s.run(leaseHistory+2*time.Second, 0, 1, 2)
	least := s.run(time.Minute, 1, 2)
	if least < 200*time.Millisecond {
		t.Fatalf("with Sentinel 0 silent, the lease came within %s of its end", least)
	}
	t.Logf("least lease left before a renewal: %s", least)
}

// Losing a Sentinel before the others' history is long enough ends the
// lease with its last answer's bound.
func TestLeaseEndsWithASentinelLostTooSoon(t *testing.T) {
	s := newLeaseSim()
	s.run(5*time.Second, 0, 1, 2)
	last := time.Duration(s.k.lease().end)
	s.run(3*time.Second, 1, 2)
	if end := time.Duration(s.k.lease().end); end != last {
		t.Fatalf("lease moved from %s to %s without Sentinel 0", last, end)
	}
	if s.left() >= 0 {
		t.Fatalf("lease still held %s after Sentinel 0 went silent", -s.left())
	}
}

// With quorum 1 any single Sentinel may fail the primary over: the lease
// needs every Sentinel, however long their history.
func TestQuorumOfOneNeedsEverySentinel(t *testing.T) {
	s := newLeaseSim()
	one := func(i int) sentinelView { v := healthy(lastOK(i, s.now)); v.quorum = 1; return v }
	for s.now < leaseHistory+2*time.Second {
		for i := range 3 {
			s.ask(i, one(i), nil)
		}
		s.now += leaseProbeEvery
	}
	for range 30 {
		s.ask(1, one(1), nil)
		s.ask(2, one(2), nil)
		s.now += leaseProbeEvery
	}
	if s.left() >= 0 {
		t.Fatalf("lease held %s without Sentinel 0 at quorum 1", s.left())
	}
}

// An answer that names another primary, or flags a failover, ends the
// lease at once, and it comes back only when every Sentinel confirms the
// primary again.
func TestAFailoverReportedByAnySentinelEndsTheLease(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*sentinelView)
	}{
		{"another primary", func(v *sentinelView) { v.addr = "10.0.0.2:6379" }},
		{"o_down", func(v *sentinelView) { v.flags = []string{"master", "s_down", "o_down"} }},
		{"failover in progress", func(v *sentinelView) { v.flags = []string{"master", "failover_in_progress"} }},
		{"unknown Sentinel", func(v *sentinelView) { v.otherSentinels = 3 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newLeaseSim()
			s.run(leaseHistory+2*time.Second, 0, 1, 2)
			v := healthy(0)
			tc.change(&v)
			if left := s.ask(0, v, nil); left >= 0 {
				t.Fatalf("lease left %s after the alarm", left)
			}
			s.now += leaseProbeEvery
			if least := s.run(time.Second, 1, 2); least >= 0 {
				t.Fatalf("lease back (%s) without Sentinel 0", least)
			}
			s.run(leaseProbeEvery, 0, 1, 2)
			if s.left() <= 0 {
				t.Fatal("lease not back once every Sentinel confirmed the primary")
			}
		})
	}
}

// A Sentinel that flags the primary down, has not heard from it within
// down-after, or was told by it that it is a replica never extends the lease, and its history
// starts over.
func TestAnUncleanAnswerNeverExtendsTheLease(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*sentinelView)
	}{
		{"s_down", func(v *sentinelView) { v.flags = []string{"master", "s_down"} }},
		{"role slave", func(v *sentinelView) { v.roleReported = "slave" }},
		{"last reply beyond down-after", func(v *sentinelView) { v.lastOK = 1600 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newLeaseSim()
			s.run(leaseHistory+2*time.Second, 0, 1, 2)
			// Sentinel 2 is lost; 0 and 1 carry the lease until 1 turns
			// unclean, and 1's answers after that must not count.
			s.run(2*time.Second, 0, 1)
			before := time.Duration(s.k.lease().end)
			for range 20 {
				v := healthy(lastOK(1, s.now))
				tc.change(&v)
				s.ask(1, v, nil)
				s.ask(0, healthy(lastOK(0, s.now)), nil)
				s.now += leaseProbeEvery
			}
			if end := time.Duration(s.k.lease().end); end > before {
				t.Fatalf("lease extended from %s to %s with Sentinel 1 unclean and 2 silent", before, end)
			}
			// Clean again, its history is new: still no lease without 2.
			if least := s.run(2*time.Second, 0, 1); least >= 0 {
				t.Fatalf("lease back (%s) on a history that started again", least)
			}
		})
	}
}

// A gap in a Sentinel's answers longer than its last answer's bound breaks
// its history: it cannot carry the lease for another leaseHistory.
func TestAGapInASentinelsAnswersBreaksItsHistory(t *testing.T) {
	s := newLeaseSim()
	s.run(leaseHistory+2*time.Second, 0, 1, 2)
	s.run(2*time.Second, 1, 2)
	s.now += 2 * time.Second // Sentinel 1 does not answer for 2 s
	s.run(2*time.Second, 2)
	s.ask(0, sentinelView{}, errors.New("connection refused"))
	if least := s.run(2*time.Second, 1, 2); least >= 0 {
		t.Fatalf("lease held (%s) on Sentinel 1's broken history", least)
	}
}

func TestParseSentinelView(t *testing.T) {
	// As redis-sentinel 7.0 answers SENTINEL MASTER.
	reply := map[string]string{
		"name": "hallpass", "ip": "127.0.0.1", "port": "6380", "runid": "abc",
		"flags": "master", "link-pending-commands": "0", "link-refcount": "1",
		"last-ping-sent": "0", "last-ok-ping-reply": "412", "last-ping-reply": "412",
		"down-after-milliseconds": "1500", "info-refresh": "2000", "role-reported": "master",
		"role-reported-time": "90000", "config-epoch": "0", "num-slaves": "2",
		"num-other-sentinels": "2", "quorum": "2", "failover-timeout": "6000", "parallel-syncs": "1",
	}
	v, err := parseSentinelView(reply)
	if err != nil {
		t.Fatal(err)
	}
	want := sentinelView{addr: "127.0.0.1:6380", flags: []string{"master"}, roleReported: "master",
		lastOK: 412 * time.Millisecond, downAfter: 1500 * time.Millisecond, quorum: 2, otherSentinels: 2}
	if v.addr != want.addr || len(v.flags) != 1 || v.flags[0] != "master" || v.roleReported != want.roleReported ||
		v.lastOK != want.lastOK || v.downAfter != want.downAfter || v.quorum != want.quorum || v.otherSentinels != want.otherSentinels {
		t.Fatalf("parsed %+v, want %+v", v, want)
	}
	delete(reply, "last-ok-ping-reply")
	if _, err := parseSentinelView(reply); err == nil {
		t.Fatal("a reply without last-ok-ping-reply parsed")
	}
}

// The term stays while the lease is renewed without a gap, and moves on
// whenever it is granted again after it ended, by lapsing or by an alarm.
func TestLeaseTermMovesOnOnlyAfterTheLeaseEnded(t *testing.T) {
	s := newLeaseSim()
	s.run(leaseProbeEvery, 0, 1, 2)
	first := s.k.lease().term
	s.run(10*time.Second, 0, 1, 2)
	if term := s.k.lease().term; term != first {
		t.Fatalf("term moved from %d to %d while the lease was renewed", first, term)
	}
	s.run(3*time.Second, 1, 2) // lapses: Sentinel 0 lost before the history is long
	if s.left() > 0 {
		t.Fatal("lease still held")
	}
	s.run(leaseProbeEvery, 0, 1, 2)
	second := s.k.lease().term
	if s.left() <= 0 || second == first {
		t.Fatalf("lease regained: left %s, term %d after %d; want held under a new term", s.left(), second, first)
	}
	v := healthy(0)
	v.addr = "10.0.0.2:6379"
	s.ask(1, v, nil)
	s.now += leaseProbeEvery
	s.run(leaseProbeEvery, 0, 1, 2)
	if third := s.k.lease().term; s.left() <= 0 || third == second {
		t.Fatalf("lease after an alarm: left %s, term %d after %d; want held under a new term", s.left(), third, second)
	}
}
