package postgres_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/postgres"
)

func TestOpenUnavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now: connections are refused

	url := fmt.Sprintf("postgres://kiln:s3cret-pw@127.0.0.1:%d/kiln?sslmode=disable", port)
	_, err = postgres.Open(context.Background(), url, keyring(t, kilntest.Key()))
	wantCode(t, err, addon.EUNAVAILABLE)
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error leaks the database password: %v", err)
	}
	if err := postgres.Migrate(context.Background(), url); addon.ErrorCode(err) != addon.EUNAVAILABLE {
		t.Errorf("Migrate against a closed port: code %q, want %q (err: %v)", addon.ErrorCode(err), addon.EUNAVAILABLE, err)
	}
}

func TestOpenMalformedURL(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"mysql://u:hunter2@db/x", "postgres://u:hunter2@db:notaport/x", "::"} {
		t.Run(url, func(t *testing.T) {
			_, err := postgres.Open(context.Background(), url, keyring(t, kilntest.Key()))
			if err == nil {
				t.Fatal("Open accepted a malformed URL")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	if err := db.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	db.Close()
	if err := db.Ping(context.Background()); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

// TestSetPoolSize: DATABASE_POOL_SIZE caps the connections the store opens,
// whatever the concurrency of its callers, and a size that is not positive
// leaves the cap alone.
func TestSetPoolSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	db.SetPoolSize(3)
	db.SetPoolSize(0)
	if n := db.PoolSize(); n != 3 {
		t.Fatalf("PoolSize = %d, want 3", n)
	}
	a := newAddon(now())
	if _, _, err := db.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 24)
	for i := range errs {
		wg.Go(func() {
			switch i % 3 {
			case 0:
				_, _, errs[i] = db.Create(ctx, newAddon(now()))
			case 1:
				_, errs[i] = db.Get(ctx, a.ID)
			default:
				_, errs[i] = db.Update(ctx, a.ID, func(context.Context, *addon.Addon) error { return nil })
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	pool, err := db.Gorm().DB()
	if err != nil {
		t.Fatal(err)
	}
	if s := pool.Stats(); s.OpenConnections > 3 || s.MaxOpenConnections != 3 {
		t.Errorf("pool stats %+v: more than the 3 connections allowed", s)
	}
}
