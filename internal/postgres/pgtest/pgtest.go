// Package pgtest gives tests what most of them start from: a fresh Kiln
// database on the machine's Postgres, migrated, and a store open on it.
package pgtest

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/secret"
)

// Store migrates a fresh database (dropped when the test ends) and opens a
// store on it, sealing secrets with keys (newest first) or, when none are
// given, a fresh key. It returns the store and the database URL, for tests
// that look at rows as stored.
func Store(tb testing.TB, keys ...[]byte) (*postgres.DB, string) {
	tb.Helper()
	ctx := context.Background()
	url := kilntest.Postgres(tb)
	if err := postgres.Migrate(ctx, url); err != nil {
		tb.Fatalf("pgtest: migrate: %v", err)
	}
	if len(keys) == 0 {
		k, err := base64.StdEncoding.DecodeString(kilntest.Key())
		if err != nil {
			tb.Fatal(err)
		}
		keys = [][]byte{k}
	}
	ring, err := secret.New(keys)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	db, err := postgres.Open(ctx, url, ring)
	if err != nil {
		tb.Fatalf("pgtest: open store: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db, url
}
