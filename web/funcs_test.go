package web

import (
	"testing"
	"time"
)

func TestRelativeTime(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{now.Add(-30 * time.Second), "just now"},
		{now.Add(-time.Minute), "1 minute ago"},
		{now.Add(-5 * time.Minute), "5 minutes ago"},
		{now.Add(-3 * time.Hour), "3 hours ago"},
		{now.Add(-72 * time.Hour), "3 days ago"},
		{now.Add(2 * time.Hour), "in 2 hours"},
	} {
		if got := RelativeTime(now, tc.t); got != tc.want {
			t.Errorf("RelativeTime(%v) = %q, want %q", now.Sub(tc.t), got, tc.want)
		}
	}
}
