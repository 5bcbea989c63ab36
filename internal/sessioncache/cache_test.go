package sessioncache

import (
	"testing"
	"time"
)

// A fill whose read was answered before an invalidation must not put the
// old data back after the invalidation was applied.
func TestAFillRacingAnInvalidationLeavesNothingCached(t *testing.T) {
	c := newCache(10, 1<<20)
	far := time.Now().Add(time.Hour)
	fill := c.beginFill("k")
	c.invalidate("k") // the revocation's invalidation lands while the GET is in flight
	c.endFill("k", fill, []byte("old"), far, true)
	if _, ok := c.get("k", time.Now()); ok {
		t.Fatal("the fill put back a session invalidated while it was being read")
	}

	fill = c.beginFill("k")
	c.flush()
	c.endFill("k", fill, []byte("old"), far, true)
	if _, ok := c.get("k", time.Now()); ok {
		t.Fatal("the fill put back a session after a flush")
	}

	fill = c.beginFill("k")
	if second := c.beginFill("k"); second != 0 {
		t.Fatal("a second fill of the same key was allowed while one is in flight")
	}
	c.endFill("k", fill, []byte("new"), far, true)
	if b, ok := c.get("k", time.Now()); !ok || string(b) != "new" {
		t.Fatalf("get = %q, %v; want the filled data", b, ok)
	}
}

// An entry is not answered once the store's copy would have expired.
func TestAnEntryExpiresWhenItsStoreCopyWould(t *testing.T) {
	c := newCache(10, 1<<20)
	now := time.Now()
	c.endFill("k", c.beginFill("k"), []byte("v"), now.Add(time.Second), true)
	if _, ok := c.get("k", now.Add(999*time.Millisecond)); !ok {
		t.Fatal("entry missing before its end")
	}
	if _, ok := c.get("k", now.Add(time.Second)); ok {
		t.Fatal("entry answered at its end")
	}
}

// Recently used entries survive eviction; placeholders are never evicted.
func TestEvictionSparesRecentlyUsedEntries(t *testing.T) {
	c := newCache(3, 1<<20)
	far := time.Now().Add(time.Hour)
	for _, k := range []string{"a", "b", "c"} {
		c.endFill(k, c.beginFill(k), []byte(k), far, true)
	}
	c.evictLocked() // nothing over the bound yet
	c.get("a", time.Now())
	c.get("b", time.Now())
	pending := c.beginFill("p")
	c.endFill("d", c.beginFill("d"), []byte("d"), far, true)
	if n, _ := c.size(); n > 3 {
		t.Fatalf("%d entries, bound 3", n)
	}
	c.mu.RLock()
	_, placeholder := c.entries["p"]
	c.mu.RUnlock()
	if !placeholder {
		t.Fatal("a placeholder was evicted")
	}
	c.endFill("p", pending, nil, far, false)
}
