package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/user"
)

// TestAdminsDisablingEachOtherAtOnceLeaveOneAndTheOtherIsTold is the race of
// issue "Sign-in defences", item 7, over HTTP: two administrators press
// "Disable" on each other at the same instant. One wins; the other is told,
// with a 409, why nothing happened — unless the winner's disable had already
// ended the loser's session, in which case the loser is sent to sign in.
// Either way exactly one of them is left enabled.
func TestAdminsDisablingEachOtherAtOnceLeaveOneAndTheOtherIsTold(t *testing.T) {
	const rounds = 20
	ts := newTestServer(t, testOptions{backend: "memory"})
	ann := ts.createUser("ann", alicePW, user.RoleAdmin)
	bob := ts.createUser("bob", alicePW, user.RoleAdmin)
	told := 0
	for round := range rounds {
		annBrowser, bobBrowser := ts.newBrowser(), ts.newBrowser()
		annBrowser.login("ann", alicePW)
		bobBrowser.login("bob", alicePW)
		var (
			wg         sync.WaitGroup
			start      = make(chan struct{})
			anns, bobs response
		)
		disable := func(b *browser, target user.User) response {
			<-start
			return b.postForm("/admin/users/"+strconv.FormatInt(target.ID, 10)+"/disable", nil)
		}
		wg.Go(func() { anns = disable(annBrowser, bob) })
		wg.Go(func() { bobs = disable(bobBrowser, ann) })
		close(start)
		wg.Wait()

		var loser user.User
		var losers response
		switch {
		case isDone(anns, bob) && !isDone(bobs, ann):
			loser, losers = bob, bobs
		case isDone(bobs, ann) && !isDone(anns, bob):
			loser, losers = ann, anns
		default:
			t.Fatalf("round %d: ann got %d (%s), bob got %d (%s); want exactly one disable done",
				round, anns.StatusCode, anns.Header.Get("Location"), bobs.StatusCode, bobs.Header.Get("Location"))
		}
		switch {
		case losers.StatusCode == http.StatusConflict:
			told++
			want := "This is the last enabled administrator: enable or create another administrator first."
			if got := losers.text(t, ".error-page p.muted"); got != want {
				t.Errorf("round %d: the 409 page says %q, want %q", round, got, want)
			}
		case losers.StatusCode == http.StatusSeeOther && strings.HasPrefix(losers.Header.Get("Location"), "/login"):
			// The winner's disable ended the loser's session first.
		default:
			t.Fatalf("round %d: the loser got %d (%s), want 409 or a redirect to sign in",
				round, losers.StatusCode, losers.Header.Get("Location"))
		}
		enabled := 0
		for _, u := range []user.User{ann, bob} {
			got, err := ts.users.ByID(t.Context(), u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Disabled {
				enabled++
			}
		}
		if enabled != 1 {
			t.Fatalf("round %d: %d administrators enabled, want 1", round, enabled)
		}
		if _, _, err := ts.account.SetDisabled(context.Background(), account.CommandLine(), loser.ID, false); err != nil {
			t.Fatalf("round %d: enable %s again: %v", round, loser.Username, err)
		}
	}
	t.Logf("the loser was told with a 409 in %d of %d rounds", told, rounds)
	if told == 0 {
		t.Errorf("no round's loser got the 409 page")
	}
}

// isDone reports whether res is the redirect of a done disable of target.
func isDone(res response, target user.User) bool {
	return res.StatusCode == http.StatusSeeOther &&
		res.Header.Get("Location") == "/admin/users/"+strconv.FormatInt(target.ID, 10)+"?done=disabled"
}
