// Package postgres is Kiln's Postgres adapter: it keeps add-ons and their
// audit trail (addon.Store) with GORM over pgx, encrypts every secret column
// with the secret keyring, maps driver failures to domain errors, and owns
// the one versioned migration set of Kiln (goose, embedded SQL files).
//
// Every query goes through one *gorm.DB on one pool of connections: GORM's
// builder where a query is assembled from parts (listing.go, links.go), and
// hand-written SQL through that same session (Raw, Exec, and for the hot
// paths its connections directly, addons.go) where a statement says what
// the builder cannot: ON CONFLICT with a data-modifying WITH, FOR UPDATE,
// RETURNING. Transactions are transact's, or Update's own (addons.go).
//
// Files follow what they keep: an add-on's life (addons.go: Create, Get,
// Update), its writer lease (leases.go), lists of add-ons (listing.go),
// counts for /metrics (census.go), the audit trail (events.go, signin.go),
// SSO nonces (nonces.go), Heroku links (links.go), the schema (migrate.go).
// row.go turns an add-on into its row and back, sealing its secrets;
// errors.go maps driver failures to domain errors; this file opens the pool.
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
//
// Hand-written statements number their parameters ($1, $2, ...): GORM then
// hands the arguments to pgx as they are, as database/sql would, where with
// '?' it would expand a []byte (a sealed secret) after a parenthesis into one
// parameter per byte. Such a statement must hold no '?' and no '@', which
// GORM would read as its own placeholders. Each is a constant, so pgx
// prepares it once per connection and serves it from its statement cache.
type DB struct {
	gorm *gorm.DB // every query
	pool *sql.DB  // the connections under gorm: sized, pinged and closed here, never queried directly
	keys *secret.Keyring
	gate gate // first come, first served access to the pool for Create and Get
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
	pool, err := openSQL(databaseURL)
	if err != nil {
		return nil, err
	}
	pool.SetMaxOpenConns(maxOpenConns)
	pool.SetMaxIdleConns(maxIdleConns)
	pool.SetConnMaxLifetime(connMaxLifetime)
	pool.SetConnMaxIdleTime(connMaxIdleTime)

	g, err := gorm.Open(gormpg.New(gormpg.Config{Conn: pool}), &gorm.Config{
		// SQL logs would carry sealed secrets and customer data: stay quiet.
		Logger: logger.Discard,
		// A single statement is atomic on its own; the writes that need a
		// transaction ask for one (transact, update).
		SkipDefaultTransaction: true,
		DisableAutomaticPing:   true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open gorm: %w", err)
	}
	db := &DB{gorm: g, pool: pool, keys: keys, gate: make(gate, maxOpenConns)}
	if err := db.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := db.checkSchema(ctx); err != nil {
		pool.Close()
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
	db.pool.SetMaxOpenConns(n)
	db.pool.SetMaxIdleConns(n)
	db.gate = make(gate, n)
}

// PoolSize reports the cap on this process's connections.
func (db *DB) PoolSize() int { return db.pool.Stats().MaxOpenConnections }

// Close releases the pool; Kiln's processes call it while draining.
func (db *DB) Close() error { return db.pool.Close() }

// Ping checks the database answers, for /healthz and start-up; failures are
// EUNAVAILABLE so the caller can answer 503.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.PingContext(ctx); err != nil {
		return dbError(err, "")
	}
	return nil
}

// Gorm exposes the connection pool to other adapters that keep their own
// tables in Kiln's database (the account driver), so Kiln holds one pool.
func (db *DB) Gorm() *gorm.DB { return db.gorm }

// transact runs fn in a transaction on one of the pool's connections: it
// commits when fn returns nil, and otherwise rolls back and returns fn's
// error exactly as fn returned it. fn must run every statement on tx and
// must not call the network.
func (db *DB) transact(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return db.gorm.WithContext(ctx).Transaction(fn)
}

// gate lets at most as many callers at the pool as it has connections, in
// the order they came. database/sql hands a freed connection to a random
// waiter, so when Heroku's provision calls outnumber the connections some
// calls lost that draw again and again; the benchmark's accept p99 was
// four to five times its median. Waiting here instead is first come, first
// served, and database/sql then finds a free connection. Only the single-
// statement hot paths (Create, Get, Record's one-statement path) pass the
// gate: they never nest, so it cannot deadlock; Update holds its
// connection across fn and stays out.
type gate chan struct{}

func (g gate) enter(ctx context.Context) error {
	if g == nil {
		return nil
	}
	select {
	case g <- struct{}{}:
		return nil // a free slot wins even over an ended context
	default:
	}
	select {
	case g <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g gate) leave() {
	if g != nil {
		<-g
	}
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
