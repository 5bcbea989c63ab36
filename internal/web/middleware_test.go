package web

import (
	"net/http"
	"slices"
	"testing"
)

// TestFixedHeaderValueIsNotSharedByAdd: every response shares a fixed
// header's value slice, so adding to the header on one response must not
// change what the next one is sent.
func TestFixedHeaderValueIsNotSharedByAdd(t *testing.T) {
	f := newFixedHeader("cache-control", "no-store")
	first, second := http.Header{}, http.Header{}
	f.set(first)
	first.Add("Cache-Control", "private")
	f.set(second)
	if got := second.Values("Cache-Control"); !slices.Equal(got, []string{"no-store"}) {
		t.Fatalf("second response's Cache-Control = %q, want only no-store", got)
	}
	if got := first.Values("Cache-Control"); !slices.Equal(got, []string{"no-store", "private"}) {
		t.Fatalf("first response's Cache-Control = %q, want no-store, private", got)
	}
}
