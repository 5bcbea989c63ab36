package web

import (
	"net/url"
	"strings"
)

// safeNext returns next if it is a path on this site, and "/" otherwise. Only
// a single leading slash followed by a non-slash, non-backslash is accepted:
// "//host", "/\host" and anything with a scheme or host would send the
// browser to another site after sign-in (an open redirect).
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || next[0] != '/' {
		return "/"
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return "/"
	}
	if strings.ContainsAny(next, "\\\x00\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	// Decoding must not reveal a second leading slash either ("/%2F/host").
	if p, err := url.PathUnescape(u.EscapedPath()); err != nil || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return next
}
