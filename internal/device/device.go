// Package device turns a User-Agent header into a short label a person
// recognises in their list of sessions: "Firefox on Linux", "Safari on
// iPhone", "curl".
//
// A User-Agent is whatever the client chose to send, so the label is a hint
// for the user, never evidence: it is bounded in length, printable ASCII, and
// not to be used for any security decision.
package device

import (
	"strings"

	"github.com/mssola/useragent"
)

// Unknown is the label of an empty or unrecognisable User-Agent.
const Unknown = "Unknown device"

const (
	// maxInput bounds the work one header can ask for; every real browser
	// User-Agent fits with room to spare.
	maxInput = 512
	// maxLabel is the longest label Label returns, in bytes (and characters,
	// as labels are ASCII).
	maxLabel = 64
	// maxName is the longest product or bot name taken verbatim from a
	// User-Agent that no table here names.
	maxName = 32
)

// Label returns a readable label for the device and software that sent
// userAgent: "<browser> on <system>" for browsers ("Chrome on macOS", "Edge
// on Windows", "Chrome on Android"), a name for other clients ("curl", "Go
// HTTP client", "Googlebot"), and Unknown when nothing can be made of it.
// Only the first 512 bytes are read; the label is at most 64 characters of
// printable ASCII.
func Label(userAgent string) string {
	ua := userAgent
	if len(ua) > maxInput {
		ua = ua[:maxInput]
	}
	ua = strings.TrimSpace(ua)
	if ua == "" {
		return Unknown
	}
	product, _ := firstProduct(ua)
	if name, ok := clients[strings.ToLower(product)]; ok {
		return name
	}

	p := useragent.New(ua)
	name, _ := p.Browser()
	var label string
	switch {
	case p.Bot():
		label = nameOr(name, "Bot")
	case p.Mozilla() != "" || browsers[name] != "":
		label = browserLabel(ua, p)
	default:
		// Some other program that follows the product/version form. A
		// "Mozilla/5.0" that the library could make nothing of is a browser
		// hiding what it is, not a program called Mozilla.
		if _, version := firstProduct(ua); version != "" && product != "Mozilla" {
			label = nameOr(product, "")
		}
	}
	return finish(label)
}

// clients names programs that are not browsers, by their product token in
// lower case.
var clients = map[string]string{
	"curl":              "curl",
	"wget":              "Wget",
	"go-http-client":    "Go HTTP client",
	"python-requests":   "Python requests",
	"python-urllib":     "Python urllib",
	"python-httpx":      "Python httpx",
	"aiohttp":           "Python aiohttp",
	"okhttp":            "OkHttp",
	"java-http-client":  "Java HTTP client",
	"apache-httpclient": "Apache HttpClient",
	"node":              "Node.js",
	"undici":            "Node.js",
	"axios":             "axios",
	"postmanruntime":    "Postman",
	"insomnia":          "Insomnia",
	"httpie":            "HTTPie",
	"libwww-perl":       "Perl LWP",
}

// browsers maps the browser names the useragent library reports to the
// names people know.
var browsers = map[string]string{
	"Chrome":            "Chrome",
	"Chromium":          "Chromium",
	"Headless Chrome":   "Headless Chrome",
	"Firefox":           "Firefox",
	"Safari":            "Safari",
	"Edge":              "Edge",
	"Opera":             "Opera",
	"Internet Explorer": "Internet Explorer",
	"YaBrowser":         "Yandex Browser",
	"Coc Coc":           "Coc Coc",
	"DuckDuckGo":        "DuckDuckGo",
	"Electron":          "Electron",
	"Google App":        "Google app",
	"Mobile App":        "App",
	"Android":           "Android browser",
}

// browserTokens correct the library for browsers that it reports as the
// Chrome or Safari they are built on: the first token found in the
// User-Agent wins.
var browserTokens = []struct{ token, name string }{
	{" EdgA/", "Edge"},   // Edge on Android
	{" EdgiOS/", "Edge"}, // Edge on iOS
	{" SamsungBrowser/", "Samsung Internet"},
	{" OPR/", "Opera"},
	{" OPT/", "Opera"}, // Opera Touch on iOS
}

// browserLabel is "<browser> on <system>", or the half that is known.
func browserLabel(ua string, p *useragent.UserAgent) string {
	name, _ := p.Browser()
	browser := browsers[name]
	for _, bt := range browserTokens {
		if strings.Contains(ua, bt.token) {
			browser = bt.name
			break
		}
	}
	if browser == "" {
		// A browser the tables do not know, e.g. "Gecko/20100101 SeaMonkey/2.53".
		browser = nameOr(name, "")
	}
	system := systemName(p)
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "":
		return browser
	case system != "":
		return "Web browser on " + system
	default:
		return ""
	}
}

// systemName maps the library's platform and OS strings ("Macintosh" /
// "Intel Mac OS X 10_15_7", "Linux" / "Android 14", "X11" / "CrOS x86_64
// 14541.0.0") to the system's everyday name, or "" when unknown.
func systemName(p *useragent.UserAgent) string {
	platform, os := p.Platform(), p.OS()
	has := func(s string) bool { return strings.Contains(platform, s) || strings.Contains(os, s) }
	switch {
	case has("iPhone"):
		return "iPhone"
	case has("iPad"):
		return "iPad"
	case has("iPod"):
		return "iPod"
	case has("Android"):
		return "Android"
	case has("CrOS"):
		return "ChromeOS"
	case has("Mac OS X"), platform == "Macintosh":
		return "macOS"
	case has("Windows Phone"):
		return "Windows Phone"
	case has("Windows"):
		return "Windows"
	case has("FreeBSD"):
		return "FreeBSD"
	case has("OpenBSD"):
		return "OpenBSD"
	case has("NetBSD"):
		return "NetBSD"
	case has("Linux"), has("Ubuntu"), has("Fedora"), has("Debian"):
		return "Linux"
	default:
		return ""
	}
}

// firstProduct splits the User-Agent's first product, "name/version".
func firstProduct(ua string) (name, version string) {
	first, _, _ := strings.Cut(ua, " ")
	name, version, _ = strings.Cut(first, "/")
	return name, version
}

// nameOr returns name if it looks like a product name (a letter, then up to
// maxName letters, digits, '.', '_', '-' or '+'), else fallback: a name read
// from the header must not carry markup, spaces or control characters into a
// page or a log.
func nameOr(name, fallback string) string {
	if name == "" || len(name) > maxName || !isLetter(name[0]) {
		return fallback
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isLetter(c) && !('0' <= c && c <= '9') && !strings.ContainsRune("._-+", rune(c)) {
			return fallback
		}
	}
	return name
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// finish bounds the label: printable ASCII only, at most maxLabel bytes,
// Unknown if nothing is left. Every part is already clean; this is the
// guarantee callers rely on, kept in one place.
func finish(label string) string {
	var b strings.Builder
	for i := 0; i < len(label) && b.Len() < maxLabel; i++ {
		if c := label[i]; ' ' <= c && c <= '~' {
			b.WriteByte(c)
		}
	}
	out := strings.TrimSpace(b.String())
	if out == "" {
		return Unknown
	}
	return out
}
