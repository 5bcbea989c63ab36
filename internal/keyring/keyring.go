// Package keyring keeps the secret keys Hallpass makes for itself in the
// SQL database, so that every replica shares them without an operator
// having to generate, distribute and rotate a setting. The first replica
// that asks for a key creates it; the others read the same one.
package keyring

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/hallpass/hallpass/internal/database"
)

// Load returns the key called name, creating it with size random bytes if
// there is none yet. Concurrent callers, on any replica, all get the one key
// that was stored first.
func Load(ctx context.Context, db *database.DB, name string, size int) ([]byte, error) {
	fresh := make([]byte, size)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("make key %s: %w", name, err)
	}
	ctx, cancel := database.BoundQuery(ctx, 0)
	defer cancel()
	// ON CONFLICT DO NOTHING is the same on SQLite and PostgreSQL: the first
	// insert wins and every later one leaves it alone.
	if _, err := db.SQL.ExecContext(ctx, db.Rebind(
		`INSERT INTO keys (name, secret, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`),
		name, fresh, time.Now().UTC()); err != nil {
		return nil, fmt.Errorf("store key %s: %w", name, err)
	}
	var key []byte
	if err := db.SQL.QueryRowContext(ctx, db.Rebind(`SELECT secret FROM keys WHERE name = ?`), name).Scan(&key); err != nil {
		return nil, fmt.Errorf("read key %s: %w", name, err)
	}
	if len(key) != size {
		return nil, fmt.Errorf("key %s has %d bytes, want %d", name, len(key), size)
	}
	return key, nil
}
