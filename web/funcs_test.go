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

func TestVisibleWritesOutControlAndBidiCharacters(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"Zoë 山田", "Zoë 山田"},
		{"admin\u202Egnp.exe", `admin\u{202E}gnp.exe`},
		{"a\u200Bb", `a\u{200B}b`},
		{"line\nbreak\x00", `line\u{000A}break\u{0000}`},
		{"\u2066x\u2069", `\u{2066}x\u{2069}`},
		{"bad\xffutf8", `bad\u{FFFD}utf8`},
	} {
		if got := Visible(tc.in); got != tc.want {
			t.Errorf("Visible(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{30 * 24 * time.Hour, "30 days"},
		{24 * time.Hour, "1 day"},
		{36 * time.Hour, "36 hours"},
		{time.Hour, "1 hour"},
		{12 * time.Hour, "12 hours"},
		{30 * time.Minute, "30 minutes"},
		{time.Minute, "1 minute"},
		{90 * time.Minute, "90 minutes"},
		{90 * time.Second, "1m30s"},
		{45 * time.Second, "45s"},
	} {
		if got := Duration(tc.d); got != tc.want {
			t.Errorf("Duration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
