package account

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestOneClientGetsOnlyItsShareOfTheHashingSlots(t *testing.T) {
	h := &hashShares{max: 2, clients: map[string]*clientShare{}}
	ctx := context.Background()
	first, err1 := h.take(ctx, "2001:db8:1:2::1")
	_, err2 := h.take(ctx, "2001:db8:1:2::2") // the same /64: the same client
	if err1 != nil || err2 != nil {
		t.Fatalf("a client was refused its first two hashes: %v, %v", err1, err2)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := h.take(short, "2001:db8:1:2::3"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a third hash at once for one client: %v, want ErrUnavailable after the wait", err)
	}
	other, err := h.take(ctx, "203.0.113.9")
	if err != nil {
		t.Fatalf("another client was refused while the first held its share: %v", err)
	}
	// A waiting request gets the share as soon as one is released.
	got := make(chan error, 1)
	go func() {
		_, err := h.take(ctx, "2001:db8:1:2::4")
		got <- err
	}()
	first()
	if err := <-got; err != nil {
		t.Fatalf("a waiting request did not get the released share: %v", err)
	}
	other()
	if release, err := h.take(ctx, ""); err != nil {
		t.Fatal("the command line was bounded")
	} else {
		release()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients["203.0.113.9"]; ok {
		t.Error("an idle client's share was kept")
	}
}
