package faultkit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Database is a Postgres database of a run's own on a shared server, so a
// run (the chaos run, the benchmark) neither sees nor disturbs anyone
// else's rows, can end every session of its database as a failover does,
// and leaves nothing behind.
type Database struct {
	Name  string // prefix_<12 hex digits>, safe as an identifier unquoted
	URL   string // the admin URL with Name as its database
	admin string
}

// CreateDatabase creates an empty database named after prefix on the
// server at adminURL.
func CreateDatabase(ctx context.Context, adminURL, prefix string) (*Database, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return nil, fmt.Errorf("faultkit: admin database URL: %w", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	d := &Database{Name: prefix + "_" + hex.EncodeToString(b), admin: adminURL}
	if err := d.exec(ctx, "CREATE DATABASE "+d.Name); err != nil {
		return nil, fmt.Errorf("faultkit: create database (is Postgres running at %s?): %w", u.Redacted(), err)
	}
	u.Path = "/" + d.Name
	d.URL = u.String()
	return d, nil
}

// Drop drops the database, ending whatever is still connected to it.
func (d *Database) Drop(ctx context.Context) error {
	if err := d.exec(ctx, "DROP DATABASE IF EXISTS "+d.Name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("faultkit: drop database %s: %w", d.Name, err)
	}
	return nil
}

// TerminateBackends ends every session of the database, as a Postgres
// restart or failover does, and says how many it ended.
func (d *Database) TerminateBackends(ctx context.Context) (int, error) {
	var n int
	err := d.onAdmin(ctx, func(ctx context.Context, admin *sql.DB) error {
		return admin.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid()`, d.Name).Scan(&n)
	})
	return n, err
}

func (d *Database) exec(ctx context.Context, stmt string) error {
	return d.onAdmin(ctx, func(ctx context.Context, admin *sql.DB) error {
		_, err := admin.ExecContext(ctx, stmt)
		return err
	})
}

// onAdmin runs fn on a connection to the admin database, within 30 s.
func (d *Database) onAdmin(ctx context.Context, fn func(context.Context, *sql.DB) error) error {
	admin, err := sql.Open("pgx", d.admin)
	if err != nil {
		return err
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return fn(ctx, admin)
}
