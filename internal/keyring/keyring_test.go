package keyring_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/keyring"
	"github.com/hallpass/hallpass/internal/testsvc"
)

func migrated(t *testing.T, url string) *database.DB {
	t.Helper()
	db, err := database.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := database.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestReplicasStartingTogetherShareOneKey has 8 "replicas" ask for the same
// key at once, on SQLite and PostgreSQL: they must all get the same bytes,
// and asking again later returns them too.
func TestReplicasStartingTogetherShareOneKey(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "k.db") },
		"postgres": func(t *testing.T) string { return testsvc.StartPostgres(t).NewDatabase(t) },
	} {
		t.Run(name, func(t *testing.T) {
			db := migrated(t, url(t))
			keys := make([][]byte, 8)
			var wg sync.WaitGroup
			for i := range keys {
				wg.Go(func() {
					k, err := keyring.Load(context.Background(), db, "device-cookie", 32)
					if err != nil {
						t.Errorf("Load: %v", err)
					}
					keys[i] = k
				})
			}
			wg.Wait()
			for i, k := range keys {
				if len(k) != 32 || !bytes.Equal(k, keys[0]) {
					t.Fatalf("replica %d got key %x, replica 0 %x", i, k, keys[0])
				}
			}
			again, err := keyring.Load(context.Background(), db, "device-cookie", 32)
			if err != nil || !bytes.Equal(again, keys[0]) {
				t.Fatalf("asking again: %x, %v; want the stored key", again, err)
			}
			other, err := keyring.Load(context.Background(), db, "another", 32)
			if err != nil || bytes.Equal(other, keys[0]) {
				t.Fatalf("another key: %x, %v; want different bytes", other, err)
			}
		})
	}
}
