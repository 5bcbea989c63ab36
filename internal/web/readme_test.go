package web

import (
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// everyMethod is what chi.Walk reports for a route registered with Handle,
// which serves any method: one entry per method chi knows.
var everyMethod = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace,
}

// readmeRouteEntry is one route as the README's table writes it.
var readmeRouteEntry = regexp.MustCompile("^`([A-Z]+) (/[^`]*)`$")

// TestREADMEListsEveryRoute keeps the README's "Pages and endpoints" table
// true both ways: every method and route the router serves has an entry,
// and every entry is served. A route that serves any method (the static
// files) is listed under GET.
func TestREADMEListsEveryRoute(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	router, ok := ts.Config.Handler.(chi.Routes)
	if !ok {
		t.Fatalf("NewServer returned a %T, not a chi router", ts.Config.Handler)
	}
	methods := map[string][]string{}
	err := chi.Walk(router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		methods[route] = append(methods[route], method)
		return nil
	})
	if err != nil {
		t.Fatalf("walk the router: %v", err)
	}
	served := map[string]bool{}
	for route, ms := range methods {
		if servesEveryMethod(ms) {
			ms = []string{http.MethodGet}
		}
		for _, m := range ms {
			served[m+" "+route] = true
		}
	}

	listed := readmeRoutes(t)
	for _, r := range slices.Sorted(maps.Keys(served)) {
		if !listed[r] {
			t.Errorf("README's Pages and endpoints table does not list `%s`, which the router serves", r)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(listed)) {
		if !served[r] {
			t.Errorf("README's Pages and endpoints table lists `%s`, which the router does not serve", r)
		}
	}
}

// readmeRoutes returns the "METHOD /path" entries in the first column of
// the README's "Pages and endpoints" table.
func readmeRoutes(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Pages and endpoints\n")
	if !ok {
		t.Fatal(`README has no "## Pages and endpoints" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")

	routes := map[string]bool{}
	row := 0
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		row++
		if row <= 2 { // the header and its separator
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "|"), "|")
		for _, entry := range strings.Split(strings.TrimSpace(first), ", ") {
			m := readmeRouteEntry.FindStringSubmatch(entry)
			if m == nil {
				t.Errorf("README's Pages and endpoints table has %q where a route like `GET /path` belongs (row %q)", entry, line)
				continue
			}
			routes[m[1]+" "+m[2]] = true
		}
	}
	if len(routes) == 0 {
		t.Fatal("README's Pages and endpoints table lists no routes")
	}
	return routes
}

// servesEveryMethod reports whether methods holds every method chi knows.
func servesEveryMethod(methods []string) bool {
	for _, m := range everyMethod {
		if !slices.Contains(methods, m) {
			return false
		}
	}
	return true
}
