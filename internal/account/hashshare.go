package account

import (
	"context"
	"fmt"
	"sync"

	"github.com/hallpass/hallpass/internal/clientip"
	"github.com/hallpass/hallpass/internal/password"
)

// hashShares bounds how many password hashes one client runs at once in
// this process. The hasher has a few slots for everyone (about 20 MiB
// each); its queue cannot tell clients apart, so one client sending
// sign-ups or sign-ins in parallel could hold every slot and everyone else
// would get 503. With a share per client, that client's requests queue
// behind each other (and get 503 after the usual wait), while other
// clients still find free slots.
type hashShares struct {
	max int // hashes one client may run at once; 0 or less means no bound

	mu      sync.Mutex
	clients map[string]*clientShare
}

// clientShare is one client's share: a semaphore, and how many requests
// hold or wait for it (so an idle client's entry can go).
type clientShare struct {
	slots chan struct{}
	users int
}

// take waits, until ctx ends, for one of the share of hashes of the client
// at ip. The command line (no address) is not bounded.
func (h *hashShares) take(ctx context.Context, ip string) (release func(), err error) {
	if h.max <= 0 || ip == "" {
		return func() {}, nil
	}
	key := clientip.ThrottleKey(ip)
	h.mu.Lock()
	c, ok := h.clients[key]
	if !ok {
		c = &clientShare{slots: make(chan struct{}, h.max)}
		h.clients[key] = c
	}
	c.users++
	h.mu.Unlock()

	done := func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if c.users--; c.users == 0 {
			delete(h.clients, key)
		}
	}
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots; done() }, nil
	case <-ctx.Done():
		done()
		return nil, unavailable(DepHashing, fmt.Errorf("waiting for this client's share of password hashes: %w", password.ErrBusy))
	}
}

// takeShare waits at most HashWait for one of the actor's client's share of
// password hashes.
func (s *Service) takeShare(ctx context.Context, a Actor) (release func(), err error) {
	ctx, cancel := s.hashContext(ctx)
	defer cancel()
	return s.shares.take(ctx, a.IP)
}
