package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Time limits of one simulated device: a whole scenario, and one step of it
// (a page load, a click and the page it leads to).
const (
	deviceWithin = 90 * time.Second
	stepWithin   = 20 * time.Second
)

// Viewports of the screenshots and of the browser window.
const (
	desktopWidth, desktopHeight = 1280, 800
	phoneWidth, phoneHeight     = 390, 844
)

// persona is what a browser presents itself as. Its User-Agent decides the
// label the sessions pages show, so two devices in one scenario are told
// apart as a person would tell them apart.
type persona struct {
	name      string // in failure messages
	userAgent string
}

// The devices of the scenarios: real browsers' User-Agents, on one
// Chromium.
var (
	laptop = persona{"laptop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"}
	phone  = persona{"phone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"}
	office = persona{"office PC", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"}
)

// browser is one device's browser: a fresh browser context of the shared
// Chromium — its own cookies, cache and history — with one tab.
type browser struct {
	t    *testing.T
	dev  persona
	site *site
	ctx  context.Context // the tab, bounded by deviceWithin

	mu         sync.Mutex
	violations []string // Content-Security-Policy reports from the console
}

// newBrowser opens a new device on s. When t ends the tab and its browser
// context are closed, and any Content-Security-Policy violation the pages
// caused fails t: every style and script must come from /static.
func newBrowser(t *testing.T, s *site, dev persona) *browser {
	t.Helper()
	tab, closeTab := chromedp.NewContext(shared.browser(t), chromedp.WithNewBrowserContext())
	ctx, cancel := context.WithTimeout(tab, deviceWithin)
	b := &browser{t: t, dev: dev, site: s, ctx: ctx}

	// The first Do opens the tab and binds it to ctx.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		closeTab()
		t.Fatalf("%s: open a tab: %v", dev.name, err)
	}
	console := chromedp.Console(ctx)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for m, err := range console {
			if err != nil {
				return
			}
			if text := m.String(); strings.Contains(text, "Content Security Policy") {
				b.mu.Lock()
				b.violations = append(b.violations, fmt.Sprintf("%s: %s", m.URL, text))
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		closeTab()
		<-collected
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, v := range b.violations {
			t.Errorf("%s: Content-Security-Policy violation: %s", dev.name, v)
		}
	})
	b.step("present as "+dev.name, chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		_, err := cdp.Call(ctx, tab, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: dev.userAgent, AcceptLanguage: "en-GB"})
		return err
	}))
	return b
}

// step runs actions within stepWithin, failing the test with what the page
// showed if they do not succeed.
func (b *browser) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepWithin)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %s: %v%s", b.dev.name, what, err, b.whereAmI())
	}
}

// load runs actions that lead to a page load within stepWithin and returns
// the HTTP status of the document the browser ends up on.
func (b *browser) load(what string, actions ...chromedp.Action[chromedp.Void]) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepWithin)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		b.t.Fatalf("%s: %s: %v%s", b.dev.name, what, err, b.whereAmI())
	}
	if res == nil {
		return 0
	}
	return res.Status
}

// open loads path of the site, following redirects, and returns the status
// of the final page.
func (b *browser) open(path string) int64 {
	b.t.Helper()
	return b.load("open "+path, chromedp.Navigate(b.site.URL+path))
}

// click clicks the element sel selects and waits for the page it leads to.
func (b *browser) click(sel string) int64 {
	b.t.Helper()
	return b.load("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// fill types into form fields, as a person would: fields holds selector,
// text pairs. It focuses each field and types, rather than SendKeys:
// chromedp v0.23's SendKeys reads the node's attributes outside the node's
// lock while the page may change them (the race detector caught it in CI).
func (b *browser) fill(fields ...string) {
	b.t.Helper()
	var actions []chromedp.Action[chromedp.Void]
	for i := 0; i+1 < len(fields); i += 2 {
		sel := chromedp.CSS(fields[i])
		actions = append(actions, chromedp.Clear(sel), chromedp.Focus(sel, chromedp.NodeVisible), chromedp.KeyEvent(fields[i+1]))
	}
	b.step("fill "+strings.Join(fields, " "), actions...)
}

// signIn signs in from the login page and checks the home page greets name.
func (b *browser) signIn(name, password string) {
	b.t.Helper()
	b.open("/login")
	b.fill("#username", name, "#password", password)
	if status := b.click(`form[action="/login"] button[type=submit]`); status != 200 {
		b.t.Fatalf("%s: sign in as %s: status %d%s", b.dev.name, name, status, b.whereAmI())
	}
	if got := b.text("h1"); got != "Hello, "+name {
		b.t.Fatalf("%s: after signing in as %s the page says %q%s", b.dev.name, name, got, b.whereAmI())
	}
}

// eval evaluates a JavaScript expression in the page through the DevTools
// protocol (which the page's Content-Security-Policy does not govern) and
// decodes its result into T.
func eval[T any](b *browser, what, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepWithin)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: %s: %v", b.dev.name, what, err)
	}
	return v
}

// text returns the trimmed text of the first element sel selects, or ""
// when there is none; it does not wait.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, "read "+sel, fmt.Sprintf(`(document.querySelector(%s)?.textContent ?? "").replace(/\s+/g, " ").trim()`, jsString(sel)))
}

// texts returns the trimmed texts of every element sel selects.
func (b *browser) texts(sel string) []string {
	b.t.Helper()
	return eval[[]string](b, "read "+sel, fmt.Sprintf(`Array.from(document.querySelectorAll(%s), e => e.textContent.replace(/\s+/g, " ").trim())`, jsString(sel)))
}

// attr returns an attribute of the first element sel selects, or "".
func (b *browser) attr(sel, name string) string {
	b.t.Helper()
	return eval[string](b, "read "+sel+" "+name, fmt.Sprintf(`document.querySelector(%s)?.getAttribute(%s) ?? ""`, jsString(sel), jsString(name)))
}

// count returns how many elements sel selects.
func (b *browser) count(sel string) int {
	b.t.Helper()
	return eval[int](b, "count "+sel, fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel)))
}

// location returns the path and query of the page the browser shows.
func (b *browser) location() string {
	b.t.Helper()
	href := eval[string](b, "read location", `location.href`)
	u, err := url.Parse(href)
	if err != nil {
		b.t.Fatalf("%s: location %q: %v", b.dev.name, href, err)
	}
	return u.RequestURI()
}

// cookies returns the cookies the browser keeps for the site, read through
// the DevTools protocol, HttpOnly ones included.
func (b *browser) cookies() []*network.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepWithin)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.site.URL + "/"}})
	if err != nil {
		b.t.Fatalf("%s: read cookies: %v", b.dev.name, err)
	}
	return res.Cookies
}

// sessionCookie returns the browser's session cookie, or nil.
func (b *browser) sessionCookie() *network.Cookie {
	b.t.Helper()
	for _, c := range b.cookies() {
		if c.Name == sessionCookieName {
			return c
		}
	}
	return nil
}

// sessionCookieName is the cookie Hallpass keeps its session ID in when
// cookies are Secure, as they are by default.
const sessionCookieName = "__Host-hallpass"

// whereAmI describes the page the browser shows, for failure messages. It
// must not fail itself, so it gives up quietly.
func (b *browser) whereAmI() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	page, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 600)`))
	if err != nil {
		return ""
	}
	return "\npage: " + strings.ReplaceAll(page, "\n", "\n      ")
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}
