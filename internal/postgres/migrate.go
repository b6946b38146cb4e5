package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/kiln-dev/kiln/internal/addon"
)

// migrations holds Kiln's schema history: numbered goose SQL files
// (00001_init.sql, 00002_...), applied in order and never edited once shipped.
//
//go:embed migrations/*.sql
var migrations embed.FS

// versionTable is goose's bookkeeping table.
const versionTable = goose.DefaultTablename

// lockID is the session advisory lock taken while migrating, so concurrent
// Migrate calls (a release phase overlapping a running release, two release
// dynos) apply each migration exactly once: the second waits, then finds
// nothing pending. Advisory locks are per database, so it only has to be
// distinct from other lock ids Kiln's own database uses.
const lockID int64 = 0x6b696c6e // "kiln"

// Migrate applies every pending migration and returns once the schema is
// current. It is idempotent (nothing pending: nothing done) and safe to run
// concurrently with itself and with a running older release.
func Migrate(ctx context.Context, databaseURL string) error {
	return MigrateWithLog(ctx, databaseURL, nil)
}

// MigrateWithLog is Migrate reporting each applied migration and the final
// schema version to log, for the release phase's output. A nil log is quiet.
func MigrateWithLog(ctx context.Context, databaseURL string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// goose wants a database/sql handle: a pool of its own, for as long as
	// the release phase migrates, apart from any store's.
	db, err := openSQL(databaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(2)

	// Wait for the lock up to 10 minutes, probing every second: the release
	// phase should outwait a concurrent migration, not fail because of it.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	results, err := p.Up(ctx)
	var pe *goose.PartialError
	if errors.As(err, &pe) {
		results = pe.Applied
	}
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "file", path.Base(r.Source.Path), "duration", r.Duration.Round(time.Millisecond))
	}
	if err != nil {
		if pe != nil && pe.Failed != nil {
			return fmt.Errorf("postgres: migration %s failed: %w", path.Base(pe.Failed.Source.Path), dbError(pe.Err, ""))
		}
		return fmt.Errorf("postgres: migrate: %w", dbError(err, ""))
	}
	version, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: read version: %w", dbError(err, ""))
	}
	log.Info("database schema up to date", "version", version, "applied", len(results))
	return nil
}

// checkSchema refuses a database whose schema is older than this build's
// migrations. Newer is fine: during a deploy the old release keeps running
// against the schema the new release phase migrated.
func (db *DB) checkSchema(ctx context.Context) error {
	want, err := latestVersion()
	if err != nil {
		return err
	}
	var have sql.NullInt64
	err = db.gorm.WithContext(ctx).Raw("SELECT max(version_id) FROM " + versionTable + " WHERE is_applied").Row().Scan(&have)
	if err != nil && isUndefinedTable(err) {
		return addon.Errorf(addon.EINTERNAL, "The database has no schema: run the release command (bin/release) to migrate it.")
	}
	if err != nil {
		return dbError(err, "")
	}
	if have.Int64 < want {
		return addon.Errorf(addon.EINTERNAL, "The database schema is at version %d but this build needs %d: run the release command (bin/release).", have.Int64, want)
	}
	return nil
}

// latestVersion is the highest migration version this build carries.
func latestVersion() (int64, error) {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return 0, fmt.Errorf("postgres: list migrations: %w", err)
	}
	var latest int64
	for _, f := range files {
		v, err := goose.NumericComponent(path.Base(f))
		if err != nil {
			return 0, fmt.Errorf("postgres: migration %s: %w", f, err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}
