// Package kilntest gives tests their own real Postgres database and their own
// Redis database, created for the test and removed when it ends, so packages
// can run in parallel without seeing each other's rows or queues. Databases
// are created on the Postgres server at KILN_TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). Redis is a
// private redis-server this package starts on a free port (see redis.go),
// never the developer's own, unless KILN_TEST_REDIS_URL names one database
// index the developer gives the tests.
package kilntest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// AdminURL is the URL of the Postgres server tests create databases on.
func AdminURL() string {
	if v := os.Getenv("KILN_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Name returns a random lower-case name with the given prefix, safe as a
// Postgres identifier.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// Postgres creates an empty database for the test and returns its URL. The
// database is dropped (with any connections to it) when the test ends.
func Postgres(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", AdminURL())
	if err != nil {
		tb.Fatalf("kilntest: open admin database: %v", err)
	}
	defer admin.Close()
	name := Name("kiln_test")
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("kilntest: create database (is Postgres running at %s?): %v", AdminURL(), err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := sql.Open("pgx", AdminURL())
		if err != nil {
			tb.Errorf("kilntest: open admin database: %v", err)
			return
		}
		defer admin.Close()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("kilntest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		tb.Fatalf("kilntest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Key returns a fresh base64 AES-256 key for ENCRYPTION_KEY.
func Key() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
