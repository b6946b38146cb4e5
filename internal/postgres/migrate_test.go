package postgres_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/postgres"
)

func TestMigrateConcurrentlyAndIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int
		// prepare runs on the empty database before the concurrent Migrates.
		prepare func(tb testing.TB, raw *sql.DB)
	}{
		{"fresh database", 2, func(testing.TB, *sql.DB) {}},
		{
			// With goose's version table already there, nothing but the
			// advisory lock stops the callers from racing into the same
			// migration: without it they fail on CREATE TABLE.
			"version table exists", 4, func(tb testing.TB, raw *sql.DB) {
				store, err := database.NewStore(goose.DialectPostgres, goose.DefaultTablename)
				if err != nil {
					tb.Fatal(err)
				}
				if err := store.CreateVersionTable(context.Background(), raw); err != nil {
					tb.Fatal(err)
				}
				if err := store.Insert(context.Background(), raw, database.InsertRequest{Version: 0}); err != nil {
					tb.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := kilntest.Postgres(t)
			raw := rawDB(t, url)
			tt.prepare(t, raw)

			var wg sync.WaitGroup
			errs := make([]error, tt.n)
			start := make(chan struct{})
			for i := range errs {
				wg.Go(func() {
					<-start
					errs[i] = postgres.Migrate(ctx, url)
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("concurrent Migrate %d: %v", i, err)
				}
			}
			if err := postgres.Migrate(ctx, url); err != nil {
				t.Fatalf("Migrate on a current schema: %v", err)
			}

			// Each migration recorded once: a double apply would have failed
			// on CREATE TABLE or left two rows for one version.
			var rows, versions int
			if err := raw.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0").Scan(&rows, &versions); err != nil {
				t.Fatal(err)
			}
			if rows != versions || rows == 0 {
				t.Errorf("goose_db_version has %d rows for %d versions, want one row per version", rows, versions)
			}
			for _, table := range []string{"addons", "addon_events", "accounts"} {
				var exists bool
				if err := raw.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
					t.Fatal(err)
				}
				if !exists {
					t.Errorf("table %s missing after Migrate", table)
				}
			}
		})
	}
}

func TestOpenRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(context.Background(), kilntest.Postgres(t), keyring(t, kilntest.Key()))
	wantCode(t, err, addon.EINTERNAL)
	if !strings.Contains(err.Error(), "release") {
		t.Errorf("error %q does not tell the operator to run the release command", err)
	}
}
