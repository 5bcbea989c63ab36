package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
)

func TestBadFormInputGetsClearAnswers(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory", signup: true})
	ts.createUser("alice", alicePW, user.RoleUser)
	long := strings.Repeat("u", 65)
	for _, tc := range []struct {
		name, path string
		form       url.Values
		status     int
	}{
		{"NUL in username", "/login", url.Values{"username": {"ali\x00ce"}, "password": {alicePW}}, http.StatusUnauthorized},
		{"invalid UTF-8 username", "/login", url.Values{"username": {"\xff\xfe"}, "password": {alicePW}}, http.StatusUnauthorized},
		{"NUL in password", "/login", url.Values{"username": {"alice"}, "password": {alicePW + "\x00"}}, http.StatusUnauthorized},
		{"overlong username", "/login", url.Values{"username": {long}, "password": {alicePW}}, http.StatusUnauthorized},
		{"overlong password", "/login", url.Values{"username": {"alice"}, "password": {strings.Repeat("p", 10_000)}}, http.StatusUnauthorized},
		{"empty fields", "/login", url.Values{}, http.StatusUnprocessableEntity},
		{"NUL in new username", "/signup", url.Values{"username": {"bo\x00b"}, "password": {alicePW}, "confirm_password": {alicePW}}, http.StatusUnprocessableEntity},
		{"invalid UTF-8 password", "/signup", url.Values{"username": {"bob"}, "password": {"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"}, "confirm_password": {"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"}}, http.StatusUnprocessableEntity},
		{"overlong new username", "/signup", url.Values{"username": {long}, "password": {alicePW}, "confirm_password": {alicePW}}, http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := ts.newBrowser()
			res := b.postForm(tc.path, tc.form)
			if res.StatusCode != tc.status {
				t.Fatalf("%d, want %d; body:\n%.300s", res.StatusCode, tc.status, res.body)
			}
			if b.sessionCookie() != "" {
				t.Error("bad input got a session")
			}
			if strings.Contains(res.body, "\x00") {
				t.Error("the page reflects a NUL byte")
			}
		})
	}
	t.Run("malformed body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/login", strings.NewReader("username=%zz&password=%"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if res := ts.newBrowser().do(req); res.StatusCode != http.StatusBadRequest {
			t.Errorf("malformed form: %d, want 400", res.StatusCode)
		}
	})
}

// TestUnknownUserAndWrongPasswordTakeAlikeTime compares the two timing
// distributions with the real argon2id parameters: an unknown username is
// checked against a dummy hash, so it must take as long as a wrong password.
// The attempts alternate, and each pair is compared, so a machine whose load
// changes during the test slows both sides alike.
func TestUnknownUserAndWrongPasswordTakeAlikeTime(t *testing.T) {
	lenient := throttle.Policy{Limit: 1000, Window: time.Minute, BaseDelay: time.Second, MaxDelay: time.Second}
	ts := newTestServer(t, testOptions{backend: "memory", hashParams: password.DefaultParams, loginPolicy: &lenient})
	ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	attempt := func(name string) time.Duration {
		start := time.Now()
		res := b.postForm("/login", url.Values{"username": {name}, "password": {"not the password"}})
		took := time.Since(start)
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: %d, want 401", name, res.StatusCode)
		}
		return took
	}
	attempt("alice") // warm up: the dummy hash and the connection
	attempt("nobody-by-this-name")
	var ratios []float64
	var known, unknown []time.Duration
	for range 21 {
		k, u := attempt("alice"), attempt("nobody-by-this-name")
		known, unknown = append(known, k), append(unknown, u)
		ratios = append(ratios, float64(u)/float64(k))
	}
	slices.Sort(ratios)
	slices.Sort(known)
	slices.Sort(unknown)
	ratio := ratios[len(ratios)/2]
	t.Logf("median wrong password %v, unknown user %v, median pair ratio %.2f", known[len(known)/2], unknown[len(unknown)/2], ratio)
	if ratio < 0.7 || ratio > 1.4 {
		t.Errorf("an unknown user takes %.2f× a wrong password (median of 21 pairs): timing tells them apart", ratio)
	}
}

func TestFullHashQueueAnswers503(t *testing.T) {
	// Eight correct sign-ins in flight at once are eight reserved attempts;
	// a roomy policy keeps the throttle out of what this test measures.
	roomy := throttle.Policy{Limit: 8, Window: time.Minute, BaseDelay: time.Second, MaxDelay: time.Minute}
	ts := newTestServer(t, testOptions{backend: "memory", hashParams: password.DefaultParams, maxHashes: 1, hashWait: time.Millisecond, loginPolicy: &roomy})
	ts.createUser("alice", alicePW, user.RoleUser)
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	retryAfter := true
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := ts.newBrowser().postForm("/login", url.Values{"username": {"alice"}, "password": {alicePW}})
			mu.Lock()
			defer mu.Unlock()
			statuses[res.StatusCode]++
			if res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
				retryAfter = false
			}
		}()
	}
	wg.Wait()
	if statuses[http.StatusServiceUnavailable] == 0 || statuses[http.StatusSeeOther] == 0 {
		t.Errorf("statuses %v: want some sign-ins and some 503s when one hashing slot serves 8 at once", statuses)
	}
	if len(statuses) != 2 {
		t.Errorf("statuses %v: want only 303 and 503", statuses)
	}
	if !retryAfter {
		t.Error("a 503 lacked Retry-After")
	}
}
