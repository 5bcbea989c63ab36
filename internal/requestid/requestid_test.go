package requestid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/hallpass/hallpass/internal/requestid"
)

func TestEveryLineLoggedWithARequestsContextCarriesItsID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(requestid.Handler(slog.NewJSONHandler(&buf, nil))).With(slog.String("replica", "r1"))
	ctx := requestid.With(context.Background(), "0123456789abcdef")

	log.InfoContext(ctx, "inside a request")
	log.WithGroup("g").InfoContext(ctx, "grouped", slog.Int("n", 1))
	log.Info("outside any request")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 3 {
		t.Fatalf("got %d log lines, want 3:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"0123456789abcdef", "0123456789abcdef", ""} {
		var rec map[string]any
		if err := json.Unmarshal(lines[i], &rec); err != nil {
			t.Fatal(err)
		}
		got, _ := rec[requestid.Attr].(string)
		if i == 1 { // the attribute lands inside the open group
			g, _ := rec["g"].(map[string]any)
			got, _ = g[requestid.Attr].(string)
		}
		if got != want {
			t.Errorf("line %d: request_id %q, want %q: %s", i, got, want, lines[i])
		}
		if rec["replica"] != "r1" {
			t.Errorf("line %d lost the logger's own attributes: %s", i, lines[i])
		}
	}
}

func TestNewIDsAreDistinctHex(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := requestid.New()
		if len(id) != 16 || seen[id] {
			t.Fatalf("bad or repeated request ID %q", id)
		}
		seen[id] = true
	}
}
