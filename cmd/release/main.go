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
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/postgres"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

// run migrates the database DATABASE_URL names, logging in logfmt to stdout.
// Only DATABASE_URL (and optionally LOG_LEVEL) is read.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv, config.Release)
	if err != nil {
		return err
	}
	log := logger(stdout, getenv, cfg.LogLevel)
	log.Info("applying database migrations")
	if err := postgres.MigrateWithLog(ctx, cfg.DatabaseURL, log); err != nil {
		log.Error("migrations failed", "err", err)
		return fmt.Errorf("migrate database: %w", err)
	}
	return nil
}

// logger writes logfmt lines, tagged like the other processes' (process, and
// the dyno name Heroku sets), so the release phase's output reads the same
// in a log drain. It is built here rather than taken from cmd/internal/kiln so
// that the release binary depends on the database adapter only.
func logger(w io.Writer, getenv func(string) string, level string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv})).With("process", "release")
	if dyno := getenv("DYNO"); dyno != "" {
		log = log.With("dyno", dyno)
	}
	return log
}
