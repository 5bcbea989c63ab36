// Package browsertest drives a real Chromium, through the DevTools protocol
// (chromedp), against the real hallpass binary: the scenarios a person lives
// through in a browser — signing up and in, the session cookie as the browser
// keeps it, signing out and pressing Back, devices signed out from elsewhere,
// an open tab told at once that it was signed out, of a new sign-in or of its
// coming idle end — which an HTTP client with a hand-made cookie jar cannot
// vouch for.
//
// The package has only tests. They build cmd/hallpass once per test binary,
// run it as a subprocess per scenario on a free loopback port, and browse it
// at http://localhost, which Chromium treats as a secure origin, so the
// Secure __Host- cookie behaves as it does over HTTPS. One Chromium serves the
// whole test binary; every simulated device is a fresh browser context (its
// own cookie jar and cache). Without Chromium the tests skip, or fail when
// HALLPASS_REQUIRE_BACKENDS is set, as make test and CI do.
//
// TestScreenshots, run by make screenshots, writes PNGs of every page at
// desktop and phone widths into docs/screenshots. With
// HALLPASS_WRITE_RELIABILITY=1, TestOpenTabsThroughTheLoadBalancer writes its
// timings into their own section of docs/RELIABILITY.md.
package browsertest
