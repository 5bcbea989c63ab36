package device_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hallpass/hallpass/internal/device"
)

func TestLabel(t *testing.T) {
	for _, tc := range []struct {
		name, ua, want string
	}{
		// Chrome.
		{"Chrome Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Windows"},
		{"Chrome macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on macOS"},
		{"Chrome Linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Linux"},
		{"Chrome Android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome on Android"},
		{"Chrome Android tablet", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Android"},
		{"Chrome iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "Chrome on iPhone"},
		{"Chrome iPad", "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "Chrome on iPad"},
		{"Chrome ChromeOS", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on ChromeOS"},
		{"Headless Chrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.6778.33 Safari/537.36", "Headless Chrome on Linux"},

		// Firefox.
		{"Firefox Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Windows"},
		{"Firefox macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on macOS"},
		{"Firefox Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Linux"},
		{"Firefox Ubuntu", "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Linux"},
		{"Firefox Fedora", "Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Linux"},
		{"Firefox Android", "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", "Firefox on Android"},
		{"Firefox iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15", "Firefox on iPhone"},
		{"Firefox FreeBSD", "Mozilla/5.0 (X11; FreeBSD amd64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on FreeBSD"},

		// Safari.
		{"Safari macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari on macOS"},
		{"Safari iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari on iPhone"},
		{"Safari iPad", "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "Safari on iPad"},
		// iPadOS 13 and later ask for desktop sites and send the macOS string.
		{"Safari iPadOS desktop mode", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari on macOS"},

		// Edge.
		{"Edge Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"},
		{"Edge macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on macOS"},
		{"Edge Linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Linux"},
		{"Edge Android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0", "Edge on Android"},
		{"Edge iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/131.2903.68 Mobile/15E148 Safari/605.1.15", "Edge on iPhone"},
		{"legacy Edge Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19045", "Edge on Windows"},

		// Others.
		{"Opera Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0", "Opera on Windows"},
		{"Samsung Internet", "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "Samsung Internet on Android"},
		{"Internet Explorer 11", "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko", "Internet Explorer on Windows"},
		{"Internet Explorer 10", "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; Trident/6.0)", "Internet Explorer on Windows"},
		{"Vivaldi is Chrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Vivaldi/7.0", "Chrome on Linux"},

		// Programs and bots.
		{"curl", "curl/8.5.0", "curl"},
		{"wget", "Wget/1.21.4", "Wget"},
		{"Go", "Go-http-client/1.1", "Go HTTP client"},
		{"Go HTTP/2", "Go-http-client/2.0", "Go HTTP client"},
		{"Python requests", "python-requests/2.32.3", "Python requests"},
		{"Python urllib", "Python-urllib/3.12", "Python urllib"},
		{"Java", "Java-http-client/21.0.5", "Java HTTP client"},
		{"OkHttp", "okhttp/4.12.0", "OkHttp"},
		{"Postman", "PostmanRuntime/7.42.0", "Postman"},
		{"HTTPie", "HTTPie/3.2.4", "HTTPie"},
		{"Node.js fetch", "node", "Node.js"},
		{"unknown program with a version", "hallpass-probe/0.3 (+https://example.com)", "hallpass-probe"},
		{"Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot"},
		{"Bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bingbot"},

		// Junk.
		{"empty", "", device.Unknown},
		{"spaces", " \t ", device.Unknown},
		{"a word", "hello", device.Unknown},
		{"words", "hello world", device.Unknown},
		{"bare Mozilla", "Mozilla/5.0", device.Unknown},
		{"Mozilla with empty comment", "Mozilla/5.0 ()", device.Unknown},
		{"unbalanced parentheses", "Mozilla/5.0 ((((((", device.Unknown},
		{"markup", "<script>alert(1)</script>", device.Unknown},
		{"markup with a version", "<b>/1.0", device.Unknown},
		{"markup as a browser", "Mozilla/5.0 (X11; Linux x86_64; rv:1) Gecko/1 <img src=x>/1", "Web browser on Linux"},
		{"control bytes", "\x00\x01\x02\xff\xfe", device.Unknown},
		{"invalid UTF-8 name", "caf\xe9/1.0", device.Unknown},
		{"overlong product name", strings.Repeat("a", 200) + "/1.0", device.Unknown},
		{"only a version", "/1.0", device.Unknown},
		{"long junk", strings.Repeat("(;", 5000), device.Unknown},
		{"real browser padded past the limit", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0" + strings.Repeat(" x", 10000), "Firefox on Linux"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := device.Label(tc.ua); got != tc.want {
				t.Errorf("Label(%q) = %q, want %q", tc.ua, got, tc.want)
			}
		})
	}
}

// TestLabelReadsOnlyTheFirst512Bytes checks that what follows the first 512
// bytes cannot change the label.
func TestLabelReadsOnlyTheFirst512Bytes(t *testing.T) {
	prefix := "curl/8.5.0" + strings.Repeat(" ", 502)
	for _, tail := range []string{"", "Mozilla/5.0 (Windows NT 10.0) Chrome/1", "\xff\x00"} {
		if got := device.Label(prefix + tail); got != "curl" {
			t.Errorf("Label(512 bytes of curl + %q) = %q, want curl", tail, got)
		}
	}
}

func FuzzLabel(f *testing.F) {
	for _, seed := range []string{
		"",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
		"Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; Trident/6.0)",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Opera/9.80 (Windows NT 6.1; U; en) Presto/2.10.229 Version/11.62",
		"Dalvik/2.1.0 (Linux; U; Android 9; SM-G960F Build/PPR1.180610.011)",
		"curl/8.5.0",
		"Mozilla/5.0 ((((",
		"\x00\xff",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		got := device.Label(ua)
		if got == "" {
			t.Fatalf("Label(%q) is empty", ua)
		}
		if len(got) > 64 {
			t.Fatalf("Label(%q) = %q, %d bytes, want at most 64", ua, got, len(got))
		}
		if !utf8.ValidString(got) {
			t.Fatalf("Label(%q) = %q, not valid UTF-8", ua, got)
		}
		for _, r := range got {
			if r < ' ' || r > '~' {
				t.Fatalf("Label(%q) = %q holds %q, want printable ASCII", ua, got, r)
			}
		}
	})
}
