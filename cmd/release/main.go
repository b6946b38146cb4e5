// Command release is the Procfile's release: process. Heroku runs it on every
// deploy before the new release's dynos start: it applies pending database
// migrations and exits 0, or exits non-zero (which stops the deploy) with a
// message saying why. It is idempotent, and safe to run while the previous
// release is still serving and while another release command migrates: a
// Postgres advisory lock serialises migrations (see postgres.Migrate).
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kiln-dev/kiln/cmd/internal/kiln"
	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/postgres"
)

func main() { kiln.Main(config.Release, run) }

// run migrates the database DATABASE_URL names, logging in logfmt to stdout.
// Only DATABASE_URL (and optionally LOG_LEVEL) is read.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, log, err := kiln.Configure(getenv, stdout, config.Release)
	if err != nil {
		return err
	}
	log.Info("applying database migrations")
	if err := postgres.MigrateWithLog(ctx, cfg.DatabaseURL, log); err != nil {
		log.Error("migrations failed", "err", err)
		return fmt.Errorf("migrate database: %w", err)
	}
	return nil
}
