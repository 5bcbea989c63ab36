package browsertest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/hallpass/hallpass/internal/device"
	"github.com/hallpass/hallpass/internal/testkit"
)

// The open tab's live events (GET /events and web/static/live.js), as a
// person sees them: signed out elsewhere, the tab shows the sign-in page
// with the reason; a new sign-in of the account, a banner that can sign it
// out; the idle end near, a warning with "Stay signed in".

// Limits of the live scenarios.
const (
	// revocationRuns is how many times the revocation is timed; the issue
	// asks for the p95 of 20.
	revocationRuns = 20
	// shownWithin is the p95 a revoked tab must meet: from the revoking
	// response to the sign-in page shown in the tab. The banner of a new
	// sign-in must be up within it too.
	shownWithin = time.Second
	// arrivesWithin bounds the wait for one push, far above shownWithin,
	// so a slow run is measured rather than cut short.
	arrivesWithin = 10 * time.Second
	// evalWithin bounds one look at a page while it may be navigating.
	evalWithin = 2 * time.Second
	// liveIdleTimeout is the idle timeout of the idle-warning scenarios:
	// the warning shows in its last quarter (session.WarnBefore), 2.5 s,
	// which leaves a busy machine time to press the button within it.
	liveIdleTimeout = 10 * time.Second
)

// reliabilityEnv makes TestOpenTabsThroughTheLoadBalancer write its
// figures into docs/RELIABILITY.md, between the markers below, as the
// cluster suite does with its own (internal/cluster writes the rest of the
// file and keeps this block).
const (
	reliabilityEnv     = "HALLPASS_WRITE_RELIABILITY"
	reliabilityBegin   = "<!-- browser:live-tabs -->"
	reliabilityEnd     = "<!-- /browser:live-tabs -->"
	reliabilityRelPath = "../../docs/RELIABILITY.md"
)

// The notices of the sign-in page for the reasons these scenarios end
// sessions with (internal/web's endNotices).
const (
	otherDeviceNotice = "You signed this device out from another device."
	idleNotice        = "You were signed out after a period of inactivity. Please sign in again."
)

func TestOpenTabsThroughTheLoadBalancer(t *testing.T) {
	s := startCluster(t)
	t.Run("RevokedFromAnotherDeviceTheTabShowsTheSignInPage", func(t *testing.T) {
		tabRevokedFromAnotherDeviceShowsTheSignInPage(t, s)
	})
	t.Run("NewSignInBannerSignsTheOtherDeviceOut", func(t *testing.T) {
		newSignInBannerSignsTheOtherDeviceOut(t, s)
	})
}

// revocationRun is one timed revocation of an open tab.
type revocationRun struct {
	took          time.Duration // from the revoking response to the sign-in page shown
	tab, revoking string        // the replicas that served the tab's stream and the revocation
}

// tabRevokedFromAnotherDeviceShowsTheSignInPage: a laptop's tab stays open on
// the home page, untouched; the phone signs the laptop out from its devices
// page, through another replica than the one serving the tab's stream. The
// tab shows the sign-in page with the reason by itself, without a click.
// Both ends are timed by the browser's own clock (one Chromium, one clock):
// the revoking response as the redirect's end of the phone's page load, the
// sign-in page as the laptop's document becoming interactive.
func tabRevokedFromAnotherDeviceShowsTheSignInPage(t *testing.T, s *site) {
	s.addUser(t, "kim", alicePassword, false)
	tab, other := newBrowser(t, s, laptop), newBrowser(t, s, phone)
	tabLog, otherLog := watchReplicas(tab), watchReplicas(other)
	other.signIn("kim", alicePassword)
	tabLabel := device.Label(laptop.userAgent)

	var runs []revocationRun
	sameReplica := 0 // attempts the round robin sent to the tab's replica anyway
	unconfirmed := 0 // attempts whose sign-out answered 503 at first
	for attempt := 1; len(runs) < revocationRuns; attempt++ {
		if attempt > 2*revocationRuns {
			t.Fatalf("only %d of %d attempts were timed (%d on one replica, %d answered 503)", len(runs), attempt-1, sameReplica, unconfirmed)
		}
		// Round robin is regular: a page view more or less moves the
		// tab's stream to each replica in turn over the runs.
		for range attempt % 3 {
			tab.open("/login")
		}
		streams := tabLog.streamCount()
		tab.signIn("kim", alicePassword)
		tabReplica := tabLog.waitStream(t, streams)

		// The phone's devices page asks for its own event stream last
		// (answered or, with many pages opened lately, refused). Round
		// robin never sends two requests in a row to one replica: once
		// that request went to the tab's replica, the sign-out most
		// likely goes to another. Where it went is checked below.
		var tabID string
		for range 2 * 3 {
			n := otherLog.streamCount()
			for id, label := range devicesOn(other) {
				if label == tabLabel {
					tabID = id
				}
			}
			if otherLog.waitStreamAnswered(t, n) == tabReplica {
				break
			}
		}
		if tabID == "" {
			t.Fatalf("attempt %d: the phone's devices page does not list the laptop%s", attempt, other.whereAmI())
		}
		revokes := otherLog.revokeCount()
		signOut := fmt.Sprintf(`li.session[data-session-id=%q] button[type=submit]`, tabID)
		if status := other.click(signOut); status == http.StatusServiceUnavailable {
			// Not acknowledged (seen on a loaded machine, where the
			// cluster's Redis replica may not confirm the write in time:
			// HALLPASS_REDIS_WAIT_REPLICAS). The page says to try again,
			// as a person would; the tab must still end on the sign-in
			// page, but the run is not timed.
			unconfirmed++
			t.Logf("attempt %d: the sign-out answered 503, not acknowledged; trying again, not timed", attempt)
			testkit.Eventually(t, arrivesWithin, "the sign-out to be acknowledged", func() error {
				if _, listed := devicesOn(other)[tabID]; listed && other.click(signOut) == http.StatusServiceUnavailable {
					return errors.New("the sign-out answered 503 again")
				}
				return nil
			})
			waitForSignInPage(tab, arrivesWithin)
			assertSentToLogin(t, tab, "other-device", otherDeviceNotice)
			continue
		}
		if got := other.text(".notice"); got != "The device was signed out." {
			t.Fatalf("attempt %d: after signing the laptop out the phone's page says %q%s", attempt, got, other.whereAmI())
		}
		revokedAt := eval[float64](other, "read when the revocation answered", `(() => {
			const n = performance.getEntriesByType("navigation")[0];
			return n.redirectEnd > 0 ? performance.timeOrigin + n.redirectEnd : 0;
		})()`)
		if revokedAt == 0 {
			t.Fatalf("attempt %d: the phone's page has no redirect timing for its sign-out form%s", attempt, other.whereAmI())
		}
		shownAt := waitForSignInPage(tab, arrivesWithin)
		assertSentToLogin(t, tab, "other-device", otherDeviceNotice)
		run := revocationRun{
			took:     time.Duration((shownAt - revokedAt) * float64(time.Millisecond)),
			tab:      tabReplica,
			revoking: otherLog.waitRevoke(t, revokes),
		}
		if run.revoking == run.tab {
			sameReplica++
			t.Logf("attempt %d: stream and revocation both on %s (not counted): shown after %s", attempt, run.tab, run.took.Round(time.Millisecond))
			continue
		}
		runs = append(runs, run)
	}

	took := make([]time.Duration, len(runs))
	for i, r := range runs {
		took[i] = r.took
		t.Logf("run %2d: stream on %s, revoked through %s: shown after %s", i+1, r.tab, r.revoking, r.took.Round(time.Millisecond))
	}
	slices.Sort(took)
	p50, p95, most := percentile(took, 50), percentile(took, 95), took[len(took)-1]
	t.Logf("revoked tab shows the sign-in page after p50 %s, p95 %s, max %s over %d runs across replicas (not counted: %d on one replica, %d answered 503 at first)",
		p50.Round(time.Millisecond), p95.Round(time.Millisecond), most.Round(time.Millisecond), len(runs), sameReplica, unconfirmed)
	if p95 > shownWithin {
		t.Errorf("p95 %s from the revoking response to the sign-in page in the tab, want at most %s", p95, shownWithin)
	}
	if os.Getenv(reliabilityEnv) == "1" && !t.Failed() {
		if err := writeLiveTabFigures(tab, reliabilityRelPath, runs, sameReplica, unconfirmed, p50, p95, most); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote the open-tab figures into %s", reliabilityRelPath)
	}
}

// newSignInBannerSignsTheOtherDeviceOut: with a laptop's tab open, the
// account signs in on an office PC and on a phone. Each time the tab says
// so at once; "It was me" puts the banner away, "Sign it out" ends that
// session and shows the devices page.
func newSignInBannerSignsTheOtherDeviceOut(t *testing.T, s *site) {
	s.addUser(t, "lena", alicePassword, false)
	tab := newBrowser(t, s, laptop)
	tabLog := watchReplicas(tab)
	streams := tabLog.streamCount()
	tab.signIn("lena", alicePassword)
	tabLog.waitStream(t, streams)

	pc := newBrowser(t, s, office)
	pc.signIn("lena", alicePassword)
	banner := waitForBanner(tab, device.Label(office.userAgent))
	if got := tab.texts(".live-signin button"); !slices.Equal(got, []string{"Sign it out", "It was me"}) {
		t.Errorf("banner buttons %q, want Sign it out and It was me", got)
	}
	tab.step("press It was me", chromedp.Click(chromedp.CSS(".live-signin button[type=button]"), chromedp.NodeVisible))
	if n := tab.count(".live-signin"); n != 0 || tab.location() != "/" {
		t.Errorf("after It was me: %d banners, page %s; want none, still the home page", n, tab.location())
	}
	t.Logf("banner for the office PC: %q", banner)

	iphone := newBrowser(t, s, phone)
	iphone.signIn("lena", alicePassword)
	iphoneLabel := device.Label(phone.userAgent)
	waitForBanner(tab, iphoneLabel)
	if status := tab.click(".live-signin button[type=submit]"); status != 200 {
		t.Errorf("Sign it out: status %d", status)
	}
	if loc := tab.location(); !strings.HasPrefix(loc, "/account/sessions?") {
		t.Errorf("Sign it out led to %s, want the devices page", loc)
	}
	if got := tab.text(".notice"); got != "The device was signed out." {
		t.Errorf("after Sign it out the devices page says %q", got)
	}
	if got := tab.texts("li.session .session-device"); slices.ContainsFunc(got, func(d string) bool { return strings.HasPrefix(d, iphoneLabel) }) {
		t.Errorf("devices page still lists the iPhone: %q", got)
	}

	// The phone's own open tab is told at once; its next page view, too,
	// is the sign-in page with the reason.
	waitForSignInPage(iphone, arrivesWithin)
	assertSentToLogin(t, iphone, "other-device", otherDeviceNotice)
	iphone.open("/")
	assertSentToLogin(t, iphone, "other-device", otherDeviceNotice)
	pc.open("/")
	if got := pc.text("h1"); got != "Hello, lena" {
		t.Errorf("the office PC, told it was me, was signed out: %q%s", got, pc.whereAmI())
	}
}

func TestStaySignedInKeepsTheSessionPastItsIdleEnd(t *testing.T) {
	t.Parallel()
	s := startHallpass(t, map[string]string{"HALLPASS_SESSION_IDLE_TIMEOUT": liveIdleTimeout.String()})
	s.addUser(t, "ivy", alicePassword, false)
	b := newBrowser(t, s, laptop)
	b.signIn("ivy", alicePassword)
	// The last request of the sign-in set the idle end, no later than now
	// plus the timeout.
	idleEnd := time.Now().Add(liveIdleTimeout)

	warning := waitForWarning(b, liveIdleTimeout+arrivesWithin)
	if focused := eval[string](b, "read the focus", `document.activeElement?.textContent ?? ""`); focused != "Stay signed in" {
		t.Errorf("the warning's button is not focused (the focus is on %q): a keyboard user could not answer it at once", focused)
	}
	if time.Now().After(idleEnd) {
		t.Fatalf("the warning %q showed only after the idle end", warning)
	}
	// Count every warning the tab puts up from now on, however briefly.
	eval[bool](b, "watch for warnings", `(() => {
		window.warningsShown = 0;
		new MutationObserver(records => {
			for (const r of records) for (const n of r.addedNodes) if (n.classList?.contains("live-warning")) window.warningsShown++;
		}).observe(document.body, { childList: true, subtree: true });
		return true;
	})()`)
	b.step("press Stay signed in", chromedp.Click(chromedp.CSS(".live-warning button"), chromedp.NodeVisible))

	// Until well past the idle end the sign-in had, the tab stays on the
	// home page and the warning stays away.
	until := idleEnd.Add(time.Second)
	err := testkit.PollUntil(time.Until(until)+time.Second, func() error {
		state, err := tryEval[string](b, `location.pathname + " " + document.querySelectorAll(".live-warning").length + " " + window.warningsShown`)
		if err != nil {
			return err
		}
		if state != "/ 0 0" {
			return fmt.Errorf("page, warnings shown and warnings put up since Stay signed in: %q", state)
		}
		if time.Now().Before(until) {
			return errNotYet
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v%s", err, b.whereAmI())
	}
	b.open("/")
	if got := b.text("h1"); got != "Hello, ivy" {
		t.Errorf("after Stay signed in and the old idle end the home page says %q%s", got, b.whereAmI())
	}
}

func TestIdleTabShowsTheSignInPageAtTheIdleEnd(t *testing.T) {
	t.Parallel()
	s := startHallpass(t, map[string]string{"HALLPASS_SESSION_IDLE_TIMEOUT": liveIdleTimeout.String()})
	s.addUser(t, "jude", alicePassword, false)
	b := newBrowser(t, s, laptop)
	// The sign-in's requests, all after this, set the idle end.
	before := time.Now()
	b.signIn("jude", alicePassword)

	first := waitForWarning(b, liveIdleTimeout+arrivesWithin)
	// The countdown counts: a second later it says less.
	waitInPage[bool](b, arrivesWithin, "the countdown to move on",
		fmt.Sprintf(`(document.querySelector(".live-warning-text")?.textContent ?? "") !== %s`, jsString(first)))

	waitForSignInPage(b, liveIdleTimeout+arrivesWithin)
	if after := time.Since(before); after < liveIdleTimeout {
		t.Errorf("the tab showed the sign-in page %s after signing in, before the idle timeout of %s", after, liveIdleTimeout)
	}
	assertSentToLogin(t, b, "idle", idleNotice)
}

// idleWarning is the warning's text while the countdown runs (the
// scenarios warn less than ten seconds ahead).
var idleWarning = regexp.MustCompile(`^You will be signed out in 0:0\d for inactivity\.$`)

// waitForWarning waits for the idle warning in b's tab, checks it, and
// returns its text.
func waitForWarning(b *browser, within time.Duration) string {
	b.t.Helper()
	text := waitInPage[string](b, within, "the idle warning", `document.querySelector(".live-warning .live-warning-text")?.textContent ?? ""`)
	if !idleWarning.MatchString(text) {
		b.t.Errorf("%s: idle warning says %q, want a countdown matching %s", b.dev.name, text, idleWarning)
	}
	if got := b.text(".live-warning button"); got != "Stay signed in" {
		b.t.Errorf("%s: the warning's button says %q, want Stay signed in", b.dev.name, got)
	}
	if role := b.attr(".live-warning", "role"); role != "alert" {
		b.t.Errorf("%s: the warning has role %q, want alert", b.dev.name, role)
	}
	return text
}

// waitForBanner waits, within shownWithin, for a new-sign-in banner in b's
// tab naming label, checks its text and returns it.
func waitForBanner(b *browser, label string) string {
	b.t.Helper()
	text := waitInPage[string](b, shownWithin, "the new sign-in banner for "+label, fmt.Sprintf(`(() => {
		const t = Array.from(document.querySelectorAll(".live-signin .live-signin-text"), e => e.textContent).find(t => t.includes(%s));
		return t ?? "";
	})()`, jsString(label)))
	if want := "New sign-in: " + label + ", 127.0.0.1, just now — Was this you?"; text != want {
		b.t.Errorf("%s: banner says %q, want %q", b.dev.name, text, want)
	}
	return text
}

// waitForSignInPage waits for b's tab to show the sign-in page by itself,
// and returns when its document became interactive, in Unix milliseconds
// by the browser's clock.
func waitForSignInPage(b *browser, within time.Duration) float64 {
	b.t.Helper()
	return waitInPage[float64](b, within, "the sign-in page", `(() => {
		if (location.pathname !== "/login" || document.readyState === "loading") return 0;
		return performance.timeOrigin + performance.getEntriesByType("navigation")[0].domInteractive;
	})()`)
}

// errNotYet is a polled condition not met yet.
var errNotYet = errors.New("not yet")

// waitInPage evaluates expr in b's tab until it yields other than T's zero
// value, and returns that. A failed evaluation, as while the tab goes from
// one page to the next, counts as not yet.
func waitInPage[T comparable](b *browser, within time.Duration, what, expr string) T {
	b.t.Helper()
	var got T
	err := testkit.PollUntil(within, func() error {
		v, err := tryEval[T](b, expr)
		if err != nil {
			return err
		}
		var zero T
		if v == zero {
			return errNotYet
		}
		got = v
		return nil
	})
	if err != nil {
		b.t.Fatalf("%s: gave up after %s waiting for %s: %v%s", b.dev.name, within, what, err, b.whereAmI())
	}
	return got
}

// tryEval is eval for a page that may be navigating: it returns the error
// instead of failing the test.
func tryEval[T any](b *browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, evalWithin)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// replicaLog records which replica answered a browser's event streams and
// its session sign-outs, from X-Served-By in the DevTools protocol's
// network events: a page's script cannot read an EventSource's headers.
type replicaLog struct {
	mu      sync.Mutex
	streams []answer // each GET /events answered, in order
	revokes []answer // each POST …/revoke answered with a redirect, in order
}

// answer is a response as the browser received it.
type answer struct {
	replica string // X-Served-By
	status  int64
}

// watchReplicas starts recording b's replicas until b's test ends.
func watchReplicas(b *browser) *replicaLog {
	b.t.Helper()
	ctx, cancel := context.WithCancel(b.ctx)
	l := &replicaLog{}
	// Both subscriptions exist when Events returns, before any page loads.
	responses := chromedp.Events(ctx, network.ResponseReceived)
	redirects := chromedp.Events(ctx, network.RequestWillBeSent)
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev, err := range responses {
			if err != nil {
				return
			}
			if ev.Type == network.ResourceTypeEventSource {
				l.add(&l.streams, ev.Response)
			}
		}
	})
	wg.Go(func() {
		for ev, err := range redirects {
			if err != nil {
				return
			}
			if r := ev.RedirectResponse; r != nil && strings.HasSuffix(r.URL, "/revoke") {
				l.add(&l.revokes, r)
			}
		}
	})
	b.t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return l
}

func (l *replicaLog) add(to *[]answer, res *network.Response) {
	a := answer{replica: "unknown", status: res.Status}
	for k, v := range res.Headers {
		if strings.EqualFold(k, "X-Served-By") {
			a.replica = fmt.Sprint(v)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	*to = append(*to, a)
}

func (l *replicaLog) streamCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.streams)
}

func (l *replicaLog) revokeCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.revokes)
}

// waitStream waits for one of the event streams requested after the first
// n to open, and returns the replica that serves it: from then on the tab
// hears its session's events. A refused stream is asked for again by the
// tab's script itself (after 5 s).
func (l *replicaLog) waitStream(t *testing.T, n int) string {
	t.Helper()
	var got string
	testkit.Eventually(t, arrivesWithin, "the tab's event stream to open", func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, a := range l.streams[n:] {
			if a.status == 200 {
				got = a.replica
				return nil
			}
		}
		return fmt.Errorf("requests answered since: %v", l.streams[n:])
	})
	return got
}

// waitStreamAnswered returns the replica that answered the request for the
// event stream after the first n, whatever its status.
func (l *replicaLog) waitStreamAnswered(t *testing.T, n int) string {
	t.Helper()
	return l.wait(t, &l.streams, n, "the answer to the event stream's request").replica
}

// waitRevoke returns the replica that answered the sign-out after the
// first n.
func (l *replicaLog) waitRevoke(t *testing.T, n int) string {
	t.Helper()
	return l.wait(t, &l.revokes, n, "the sign-out's redirect").replica
}

func (l *replicaLog) wait(t *testing.T, list *[]answer, n int, what string) answer {
	t.Helper()
	var got answer
	testkit.Eventually(t, arrivesWithin, what, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(*list) <= n {
			return errNotYet
		}
		got = (*list)[n]
		return nil
	})
	return got
}

// percentile returns the p-th percentile of sorted by nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 · n)
	return sorted[max(rank, 1)-1]
}

// writeLiveTabFigures writes the revocation figures into the file at path,
// between reliabilityBegin and reliabilityEnd: in place of an earlier
// block, or appended.
func writeLiveTabFigures(b *browser, path string, runs []revocationRun, sameReplica, unconfirmed int, p50, p95, most time.Duration) error {
	ctx, cancel := context.WithTimeout(b.ctx, evalWithin)
	defer cancel()
	version, err := chromedp.CallBrowser(ctx, cdpbrowser.GetVersion, cdp.Empty{})
	if err != nil {
		return fmt.Errorf("read the browser's version: %w", err)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds()) }
	var sb strings.Builder
	sb.WriteString(reliabilityBegin + "\n")
	sb.WriteString(`
## Open tabs told of a revocation (real browser, through HAProxy)

<!-- Written by internal/browsertest; regenerate this section with:
HALLPASS_WRITE_RELIABILITY=1 HALLPASS_REQUIRE_BACKENDS=1 go test -count=1 -run TestOpenTabsThroughTheLoadBalancer ./internal/browsertest/
-->

` + "`TestOpenTabsThroughTheLoadBalancer`" + ` starts the loopback cluster above and drives headless Chromium through HAProxy. A
laptop's tab stays open on the home page, untouched, its ` + "`GET /events`" + ` stream on one replica; the same user's phone
signs the laptop out from its devices page through another replica (` + "`X-Served-By`" + ` of the stream and of the
sign-out, read from the browser's network events; an attempt that round robin sent to the tab's own replica is checked
but not counted). Each run signs the laptop in again. Timed: from the phone receiving the revoking response (the end
of its form's redirect, by the browser's navigation timing) to the laptop's tab showing the sign-in page with the
reason (its document interactive), both read from the one browser's clock. Every run ended on that page, saying
"` + otherDeviceNotice + `", with no click in the tab.
`)
	if took := slices.MinFunc(runs, func(a, b revocationRun) int { return cmp.Compare(a.took, b.took) }).took; took < 0 {
		sb.WriteString(`A time below zero means the tab was told before the phone had its answer: a revocation answers only once every
replica has confirmed it, and the tab's replica may be told first.
`)
	}
	fmt.Fprintf(&sb, "\nMeasured %s on %s, %d cores (load average %s as the runs ended: the machine is shared), %s/%s, %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cpuModel(), runtime.NumCPU(), loadAverage(), runtime.GOOS, runtime.GOARCH, version.Product)
	sb.WriteString("| Runs across replicas | On the sign-in page with the reason | p50 | p95 | max |\n")
	sb.WriteString("|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&sb, "| %d | %d | %s | %s | %s |\n\n", len(runs), len(runs), ms(p50), ms(p95), ms(most))
	sb.WriteString("Each run, stream's replica → revoking replica:")
	for i, r := range runs {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&sb, "%s %s→%s %s", sep, r.tab, r.revoking, ms(r.took))
	}
	fmt.Fprintf(&sb, ". Not counted: %s on one replica, and %s whose sign-out answered 503 at first (temporarily unavailable, not acknowledged; tried again, the tab ended on the sign-in page all the same).\n",
		attempts(sameReplica), attempts(unconfirmed))
	sb.WriteString(reliabilityEnd + "\n")

	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	doc := string(old)
	if i := strings.Index(doc, reliabilityBegin); i >= 0 {
		j := strings.Index(doc[i:], reliabilityEnd)
		if j < 0 {
			return fmt.Errorf("%s has %s without %s", path, reliabilityBegin, reliabilityEnd)
		}
		rest := strings.TrimPrefix(doc[i+j+len(reliabilityEnd):], "\n")
		doc = doc[:i] + sb.String() + rest
	} else {
		doc = strings.TrimRight(doc, "\n") + "\n\n" + sb.String()
	}
	return os.WriteFile(filepath.Clean(path), []byte(doc), 0o644)
}

// cpuModel names the machine's processor, as the cluster suite's part of
// docs/RELIABILITY.md does.
func cpuModel() string {
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(info), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// loadAverage is the machine's one-minute load average, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// attempts says "1 attempt", "2 attempts".
func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}
