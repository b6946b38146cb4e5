// Package kilntest gives tests their own real Postgres database and their own
// Redis database index, created on the machine's servers and removed when the
// test ends, so packages can run in parallel without seeing each other's rows
// or queues. The servers come from KILN_TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) and
// KILN_TEST_REDIS_URL (default redis://127.0.0.1:6379).
package kilntest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/redis/go-redis/v9"
)

// AdminURL is the URL of the Postgres server tests create databases on.
func AdminURL() string {
	if v := os.Getenv("KILN_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// RedisServerURL is the URL of the Redis server tests use.
func RedisServerURL() string {
	if v := os.Getenv("KILN_TEST_REDIS_URL"); v != "" {
		return v
	}
	return "redis://127.0.0.1:6379"
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

// redisDBs is how many Redis database indexes tests may take (1..15; 0 holds
// the leases).
const redisDBs = 15

// Redis leases a Redis database index for the test, flushes it, and returns a
// redis:// URL that selects it. The index is flushed and released when the
// test ends. It waits for a free index when all are leased.
func Redis(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	opt, err := redis.ParseURL(RedisServerURL())
	if err != nil {
		tb.Fatalf("kilntest: %v", err)
	}
	opt.DB = 0
	lease := redis.NewClient(opt)
	defer lease.Close()
	owner := Name("lease")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for db := 1; db <= redisDBs; db++ {
			key := fmt.Sprintf("kiln:test:redis-db:%d", db)
			ok, err := lease.SetNX(ctx, key, owner, 10*time.Minute).Result()
			if err != nil {
				tb.Fatalf("kilntest: lease a Redis database (is Redis running at %s?): %v", RedisServerURL(), err)
			}
			if !ok {
				continue
			}
			o := *opt
			o.DB = db
			c := redis.NewClient(&o)
			if err := c.FlushDB(ctx).Err(); err != nil {
				tb.Fatalf("kilntest: flush Redis db %d: %v", db, err)
			}
			c.Close()
			tb.Cleanup(func() {
				c := redis.NewClient(&o)
				defer c.Close()
				_ = c.FlushDB(context.Background()).Err()
				l := redis.NewClient(opt)
				defer l.Close()
				if v, _ := l.Get(context.Background(), key).Result(); v == owner {
					l.Del(context.Background(), key)
				}
			})
			u, _ := url.Parse(RedisServerURL())
			u.Path = fmt.Sprintf("/%d", db)
			return u.String()
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kilntest: no free Redis database index after 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Key returns a fresh base64 AES-256 key for ENCRYPTION_KEY.
func Key() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
