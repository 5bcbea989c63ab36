package web

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Funcs returns the functions the templates call, for parsing them: exact
// and relative times (now is the server's clock, so "5 minutes ago" agrees
// with the times sessions are judged by) and hasPrefix. Whoever parses the
// templates adds its own page-specific functions on top.
func Funcs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"isoTime":   ISOTime,
		"fullTime":  FullTime,
		"ago":       func(t time.Time) string { return RelativeTime(now(), t) },
		"hasPrefix": strings.HasPrefix,
		"visible":   Visible,
	}
}

// ISOTime writes t for machines, as a <time> element's datetime: RFC 3339
// in UTC.
func ISOTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// FullTime writes t in full for people, in UTC: "2 Jan 2006, 15:04:05 UTC".
func FullTime(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04:05 UTC") }

// Visible shows text that came from a client (a username typed at a failed
// sign-in, say) with every control, formatting and bidirectional character
// written out as \u{XXXX}, so such text cannot reorder or hide what an
// administrator reads ("Trojan Source"-style), while ordinary letters in any
// script stay as they are.
func Visible(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
			unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) {
			fmt.Fprintf(&b, "\\u{%04X}", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// RelativeTime says how far t is from now in words: "5 minutes ago",
// "in 2 hours", "just now".
func RelativeTime(now, t time.Time) string {
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var amount string
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		amount = Plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		amount = Plural(int(d/time.Hour), "hour")
	default:
		amount = Plural(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + amount
	}
	return amount + " ago"
}

// Duration says d as people say it: "30 days", "2 hours", "30 minutes",
// "90 minutes"; a duration that is not whole minutes as Go writes it
// ("1m30s").
func Duration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= day && d%day == 0:
		return Plural(int(d/day), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return Plural(int(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return Plural(int(d/time.Minute), "minute")
	}
	return d.String()
}

// Plural writes a count with its unit: "1 minute", "3 minutes".
func Plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}
