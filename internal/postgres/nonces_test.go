package postgres_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := newStore(t)
	raw := rawDB(t, url)
	later := time.Now().Add(time.Hour)

	t.Run("first claim wins, repeats lose", func(t *testing.T) {
		for i, want := range []bool{true, false, false} {
			got, err := db.Claim(ctx, "sso:once", later)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("claim %d = %v, want %v", i+1, got, want)
			}
		}
	})

	t.Run("concurrent claims: exactly one wins", func(t *testing.T) {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				ok, err := db.Claim(ctx, "sso:race", later)
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d claims won, want 1", n)
		}
	})

	t.Run("an expired key can be claimed again", func(t *testing.T) {
		if ok, err := db.Claim(ctx, "sso:expired", time.Now().Add(-time.Second)); err != nil || !ok {
			t.Fatalf("first claim = %v, %v", ok, err)
		}
		if ok, err := db.Claim(ctx, "sso:expired", later); err != nil || !ok {
			t.Fatalf("claim after expiry = %v, %v; want true", ok, err)
		}
		if ok, err := db.Claim(ctx, "sso:expired", later); err != nil || ok {
			t.Fatalf("claim of the renewed key = %v, %v; want false", ok, err)
		}
	})

	t.Run("claims purge expired keys", func(t *testing.T) {
		for _, k := range []string{"sso:old-1", "sso:old-2", "sso:old-3"} {
			if _, err := raw.ExecContext(ctx, "INSERT INTO nonces (key, expires_at) VALUES ($1, now() - interval '1 hour')", k); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Claim(ctx, "sso:purger", later); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := raw.QueryRowContext(ctx, "SELECT count(*) FROM nonces WHERE key LIKE 'sso:old-%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d expired keys left after a claim, want 0", n)
		}
		var live int
		if err := raw.QueryRowContext(ctx, "SELECT count(*) FROM nonces WHERE key IN ('sso:once', 'sso:purger')").Scan(&live); err != nil {
			t.Fatal(err)
		}
		if live != 2 {
			t.Fatalf("%d live keys left, want 2: the purge must keep unexpired keys", live)
		}
	})

	t.Run("empty key refused", func(t *testing.T) {
		_, err := db.Claim(ctx, "", later)
		wantCode(t, err, addon.EINTERNAL)
	})
}

func TestUnclaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	later := time.Now().Add(time.Hour)

	tests := []struct {
		name string
		// claimed is whether the key is claimed before Unclaim.
		claimed bool
	}{
		{name: "a claimed key can be claimed again", claimed: true},
		{name: "a key never claimed", claimed: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "sso:unclaim:" + tt.name
			if tt.claimed {
				if ok, err := db.Claim(ctx, key, later); err != nil || !ok {
					t.Fatalf("claim = %v, %v", ok, err)
				}
			}
			if err := db.Unclaim(ctx, key); err != nil {
				t.Fatalf("unclaim: %v", err)
			}
			for i, want := range []bool{true, false} {
				if ok, err := db.Claim(ctx, key, later); err != nil || ok != want {
					t.Fatalf("claim %d after unclaim = %v, %v; want %v", i+1, ok, err, want)
				}
			}
		})
	}

	t.Run("other keys stay claimed", func(t *testing.T) {
		for _, k := range []string{"sso:keep", "sso:give-back"} {
			if ok, err := db.Claim(ctx, k, later); err != nil || !ok {
				t.Fatalf("claim %s = %v, %v", k, ok, err)
			}
		}
		if err := db.Unclaim(ctx, "sso:give-back"); err != nil {
			t.Fatal(err)
		}
		if ok, err := db.Claim(ctx, "sso:keep", later); err != nil || ok {
			t.Fatalf("claim of a key not given back = %v, %v; want false", ok, err)
		}
	})

	t.Run("empty key refused", func(t *testing.T) {
		wantCode(t, db.Unclaim(ctx, ""), addon.EINTERNAL)
	})
}
