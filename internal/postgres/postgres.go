// Package postgres is Kiln's Postgres adapter: it keeps add-ons and their
// audit trail (addon.Store) with GORM over pgx, encrypts every secret column
// with the secret keyring, maps driver failures to domain errors, and owns
// the one versioned migration set of Kiln (goose, embedded SQL files).
//
// DATABASE_URL is read as Heroku gives it (postgres://user:pass@host:port/db).
// Heroku Postgres requires TLS, so when the URL names no sslmode and the host
// is not local (localhost, 127.0.0.1, ::1 or a Unix socket), sslmode=require
// is added: the connection is encrypted and never silently downgraded.
// Heroku's certificates are not verifiable against public roots, which is why
// require (encrypt, do not verify) is the default rather than verify-full; a
// URL that names its own sslmode keeps it.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	gormpg "gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/secret"
)

// Pool limits. Heroku Postgres' smallest plans allow 20 connections for all
// dynos together (web, worker, and the release phase that overlaps them), so
// each process keeps a small pool and gives idle connections back — after
// connMaxIdleTime, not as soon as demand dips: with fewer idle slots than
// open ones, database/sql closes every connection returned while the idle
// slots are full, and under load (a worker's jobs alternate between Heroku
// calls and queries) that churned hundreds of connections a minute, each a
// new Postgres backend (docs/performance.md).
const (
	maxOpenConns    = 8
	maxIdleConns    = maxOpenConns
	connMaxLifetime = 30 * time.Minute
	connMaxIdleTime = 5 * time.Minute
	// connectTimeout bounds a connection attempt when the URL sets no
	// connect_timeout, so a database that is down fails fast (EUNAVAILABLE)
	// instead of hanging a Heroku request past its budget.
	connectTimeout = 5 * time.Second
)

// DB is the Postgres-backed addon.Store. It is safe for concurrent use.
type DB struct {
	sql  *sql.DB
	gorm *gorm.DB
	keys *secret.Keyring
	gate gate // first come, first served access to the pool for Create and Get (fast.go)
}

var _ addon.Store = (*DB)(nil)

// Open connects to the database, checks that it answers and that its schema
// is migrated (a web or worker dyno started before the release phase would
// otherwise fail on its first customer call), and returns the store. A
// database that cannot be reached gives an EUNAVAILABLE error.
func Open(ctx context.Context, databaseURL string, keys *secret.Keyring) (*DB, error) {
	if keys == nil {
		return nil, errors.New("postgres: open: no encryption keyring")
	}
	sqlDB, err := openSQL(databaseURL)
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(maxOpenConns)
	sqlDB.SetMaxIdleConns(maxIdleConns)
	sqlDB.SetConnMaxLifetime(connMaxLifetime)
	sqlDB.SetConnMaxIdleTime(connMaxIdleTime)

	g, err := gorm.Open(gormpg.New(gormpg.Config{Conn: sqlDB}), &gorm.Config{
		// SQL logs would carry sealed secrets and customer data: stay quiet.
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		DisableAutomaticPing:   true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	})
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("postgres: open gorm: %w", err)
	}
	db := &DB{sql: sqlDB, gorm: g, keys: keys, gate: make(gate, maxOpenConns)}
	if err := db.Ping(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	if err := db.checkSchema(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	return db, nil
}

// SetPoolSize caps the connections this process opens (DATABASE_POOL_SIZE).
// Call it right after Open, before the store is used.
func (db *DB) SetPoolSize(n int) {
	if n <= 0 {
		return
	}
	db.sql.SetMaxOpenConns(n)
	db.sql.SetMaxIdleConns(n)
	db.gate = make(gate, n)
}

// PoolSize reports the cap on this process's connections.
func (db *DB) PoolSize() int { return db.sql.Stats().MaxOpenConnections }

// Close releases the pool; Kiln's processes call it while draining.
func (db *DB) Close() error { return db.sql.Close() }

// Ping checks the database answers, for /healthz and start-up; failures are
// EUNAVAILABLE so the caller can answer 503.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.sql.PingContext(ctx); err != nil {
		return dbError(err, "")
	}
	return nil
}

// Gorm exposes the connection pool to other adapters that keep their own
// tables in Kiln's database (the account driver), so Kiln holds one pool.
func (db *DB) Gorm() *gorm.DB { return db.gorm }

// checkSchema refuses a database whose schema is older than this build's
// migrations. Newer is fine: during a deploy the old release keeps running
// against the schema the new release phase migrated.
func (db *DB) checkSchema(ctx context.Context) error {
	want, err := latestVersion()
	if err != nil {
		return err
	}
	var have sql.NullInt64
	err = db.sql.QueryRowContext(ctx, "SELECT max(version_id) FROM "+versionTable+" WHERE is_applied").Scan(&have)
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

// openSQL builds a database/sql pool on pgx for a Heroku-style URL, without
// connecting yet.
func openSQL(databaseURL string) (*sql.DB, error) {
	cfg, err := connConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	return stdlib.OpenDB(*cfg), nil
}

// connConfig parses DATABASE_URL the way Heroku gives it; see the package
// documentation for the sslmode default. Parse errors never quote the URL,
// which holds the password.
func connConfig(databaseURL string) (*pgx.ConnConfig, error) {
	dsn, err := withDefaults(databaseURL)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("postgres: DATABASE_URL is not a valid Postgres URL (want postgres://user:password@host:port/db)")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "kiln"
	}
	return cfg, nil
}

// withDefaults adds sslmode=require to a URL that names a remote host and no
// sslmode.
func withDefaults(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("postgres: DATABASE_URL is not a valid Postgres URL (want postgres://user:password@host:port/db)")
	}
	q := u.Query()
	if q.Get("sslmode") == "" && !localHost(u.Hostname(), q.Get("host")) {
		q.Set("sslmode", "require")
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

func localHost(host, queryHost string) bool {
	if host == "" {
		host = queryHost
	}
	switch {
	case host == "", strings.HasPrefix(host, "/"):
		return true // a Unix socket
	case host == "localhost", host == "127.0.0.1", host == "::1":
		return true
	}
	return false
}
