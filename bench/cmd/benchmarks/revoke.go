package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// revocation is the measurement of how soon a session ended on one replica
// is refused by another that had it in its cache.
type revocation struct {
	// where says which replicas took part.
	where string
	// rounds are the sign-in → warm → sign-out → probe rounds completed.
	rounds int
	// servedAfter counts page views the other replica served with the
	// session after the sign-out had answered (must be 0).
	servedAfter int
	// warmMisses counts rounds in which the other replica did not serve
	// the fresh session while warming it (the round is then not counted).
	warmMisses int
	// toRefusal is, per round, the time from the sign-out's response on
	// replica A to the first refusal on replica B, the probe's own round
	// trip included; revoke is the sign-out request's own latency, which
	// includes the wait for every caching replica's confirmation.
	toRefusal, revoke []time.Duration
	// reasons counts the refusals by the reason the login page was given.
	reasons map[string]int
}

// measureRevocation signs in on a, warms the session into b's cache by
// viewing the page there twice, signs out on a with the page's own form
// (POST /logout, same-origin), and as soon as the response arrives views
// the page on b with the same cookie, rounds times.
func measureRevocation(ctx context.Context, a, b, where string, rounds int) (revocation, error) {
	rv := revocation{where: where, reasons: map[string]int{}}
	tr := &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, target, cookie string, form url.Values) (*http.Response, string, error) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, target, body)
		if err != nil {
			return nil, "", err
		}
		if form != nil {
			// What a browser sends with the page's own form.
			u, _ := url.Parse(target)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", u.Scheme+"://"+u.Host)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		res, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res, string(b), err
	}
	// page views the home page on base: served (true) or refused with a
	// redirect to the login page (false, with the reason given).
	page := func(base, cookie string) (served bool, reason string, err error) {
		res, body, err := do(http.MethodGet, base+"/", cookie, nil)
		if err != nil {
			return false, "", err
		}
		switch {
		case res.StatusCode == http.StatusOK && strings.Contains(body, homeMarker):
			return true, "", nil
		case res.StatusCode == http.StatusSeeOther && strings.HasPrefix(res.Header.Get("Location"), "/login"):
			loc, _ := url.Parse(res.Header.Get("Location"))
			return false, loc.Query().Get("reason"), nil
		}
		return false, "", fmt.Errorf("GET %s/: status %d, Location %q", base, res.StatusCode, res.Header.Get("Location"))
	}

	for range rounds {
		if err := ctx.Err(); err != nil {
			return rv, err
		}
		cookie, _, err := signIn(a, benchUser, benchPassword)
		if err != nil {
			return rv, err
		}
		warm := true
		for range 2 {
			served, _, err := page(b, cookie)
			if err != nil {
				return rv, fmt.Errorf("warming the session on %s: %w", b, err)
			}
			warm = warm && served
		}
		// The sign-out is A's own page action; its response is the moment
		// the session is gone as far as the user can tell.
		t0 := time.Now()
		res, _, err := do(http.MethodPost, a+"/logout", cookie, url.Values{})
		t1 := time.Now()
		if err != nil {
			return rv, fmt.Errorf("sign out on %s: %w", a, err)
		}
		if res.StatusCode != http.StatusSeeOther {
			return rv, fmt.Errorf("sign out on %s: status %d", a, res.StatusCode)
		}
		if !warm {
			rv.warmMisses++
			continue
		}
		refused := false
		for !refused {
			served, reason, err := page(b, cookie)
			if err != nil {
				return rv, fmt.Errorf("after sign-out: %w", err)
			}
			if served {
				rv.servedAfter++
				if time.Since(t1) > 5*time.Second {
					return rv, fmt.Errorf("%s still serves a session %s after it was signed out on %s", b, time.Since(t1).Round(time.Millisecond), a)
				}
				continue
			}
			refused = true
			rv.toRefusal = append(rv.toRefusal, time.Since(t1))
			rv.revoke = append(rv.revoke, t1.Sub(t0))
			rv.reasons[reason]++
		}
		rv.rounds++
	}
	return rv, nil
}

// quantile returns the q-quantile of v (nearest rank), 0 for none.
func quantile(v []time.Duration, q float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
