package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestCountByState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)

	got, err := db.CountByState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("empty store counts %v, want nothing", got)
	}
	states := []addon.State{addon.StateProvisioning, addon.StateProvisioning, addon.StateProvisioned, addon.StateFailed}
	for _, st := range states {
		a := newAddon(now())
		if _, _, err := db.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		if st == addon.StateProvisioning {
			continue
		}
		if _, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
			return a.Transition(time.Now(), st, "test")
		}); err != nil {
			t.Fatal(err)
		}
	}
	got, err = db.CountByState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[addon.State]int64{addon.StateProvisioning: 2, addon.StateProvisioned: 1, addon.StateFailed: 1}
	if len(got) != len(want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	for st, n := range want {
		if got[st] != n {
			t.Errorf("%s = %d, want %d (all: %v)", st, got[st], n, got)
		}
	}
}

// TestCountLostGrants counts failed add-ons whose reason is the lost
// grant's, and no other.
func TestCountLostGrants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	if n, err := db.CountLostGrants(ctx); err != nil || n != 0 {
		t.Fatalf("empty store: CountLostGrants = %d, %v; want 0", n, err)
	}
	for _, reason := range []string{addon.GrantLostReason, addon.GrantLostReason, "the resource could not be created", ""} {
		a := newAddon(now())
		if _, _, err := db.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		if reason == "" {
			continue // still provisioning
		}
		if _, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
			return a.Transition(time.Now(), addon.StateFailed, reason)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := db.CountLostGrants(ctx); err != nil || n != 2 {
		t.Errorf("CountLostGrants = %d, %v; want 2", n, err)
	}
}
