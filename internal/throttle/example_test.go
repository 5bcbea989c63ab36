package throttle_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/throttle"
)

// A sign-in handler checks the account before it checks the password,
// records failures, and resets the account on success.
func Example() {
	now := time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)
	store := throttle.NewMemoryStore(func() time.Time { return now })
	policy := throttle.DefaultLoginPolicy()
	ctx := context.Background()

	signIn := func(username string, passwordOK bool) string {
		key := "login:user:" + strings.ToLower(username) // case variants share a counter
		wait, err := store.Check(ctx, key, policy)
		if err != nil {
			wait = 0 // fail open: a store outage must not lock everyone out
		}
		if wait > 0 {
			return fmt.Sprintf("refused, retry after %s", wait)
		}
		if !passwordOK {
			wait, _ := store.Fail(ctx, key, policy)
			return fmt.Sprintf("wrong password (wait %s)", wait)
		}
		store.Reset(ctx, key)
		return "signed in"
	}

	for range 5 {
		signIn("alice", false)
	}
	fmt.Println(signIn("Alice", false))
	fmt.Println(signIn("alice", true))
	now = now.Add(30 * time.Second)
	fmt.Println(signIn("alice", false))
	now = now.Add(time.Minute)
	fmt.Println(signIn("ALICE", true))
	fmt.Println(signIn("alice", false))
	// Output:
	// wrong password (wait 30s)
	// refused, retry after 30s
	// wrong password (wait 1m0s)
	// signed in
	// wrong password (wait 0s)
}
