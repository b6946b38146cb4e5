package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestLease(t *testing.T) {
	db, _ := newStore(t)
	ctx := context.Background()
	a := newAddon(now())
	if _, _, err := db.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Acquire(ctx, addon.ID(uuid.NewString()), "w", time.Minute); addon.ErrorCode(err) != addon.ENOTFOUND {
		t.Fatalf("Acquire of an unknown add-on = %v, want not found", err)
	}
	got, first, err := db.Acquire(ctx, a.ID, "first", time.Minute)
	if err != nil || got.ID != a.ID || first.Fence != 1 || first.Until.IsZero() {
		t.Fatalf("Acquire = %+v, %+v, %v", got, first, err)
	}
	_, _, err = db.Acquire(ctx, a.ID, "second", time.Minute)
	if !addon.IsBusy(err) || addon.ErrorCode(err) != addon.EUNAVAILABLE || addon.RetryAfter(err) <= 0 {
		t.Fatalf("Acquire of a held add-on = %v, want busy with a retry hint", err)
	}
	if first, err = db.Renew(ctx, first, time.Minute); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	saved, err := db.Record(ctx, first, nil, false, func(_ context.Context, a *addon.Addon) error { a.Reason = "recorded"; return nil })
	if err != nil || saved.Reason != "recorded" {
		t.Fatalf("Record = %+v, %v", saved, err)
	}
	// The lease lapses; another writer claims; the first can no longer
	// renew, record or release.
	if _, err := db.Record(ctx, first, nil, true, func(context.Context, *addon.Addon) error { return nil }); err != nil {
		t.Fatalf("Record with release: %v", err)
	}
	_, second, err := db.Acquire(ctx, a.ID, "second", 50*time.Millisecond)
	if err != nil || second.Fence != 2 {
		t.Fatalf("Acquire after release = %+v, %v", second, err)
	}
	time.Sleep(100 * time.Millisecond) // let the 50 ms lease lapse
	_, third, err := db.Acquire(ctx, a.ID, "third", time.Minute)
	if err != nil || third.Fence != 3 {
		t.Fatalf("Acquire after a lapsed lease = %+v, %v", third, err)
	}
	called := false
	_, err = db.Record(ctx, second, nil, false, func(context.Context, *addon.Addon) error { called = true; return nil })
	if !errors.Is(err, addon.ErrLeaseLost) || called {
		t.Fatalf("Record with a stale fence = %v (fn called %v), want lease lost", err, called)
	}
	if _, err := db.Renew(ctx, second, time.Minute); !errors.Is(err, addon.ErrLeaseLost) {
		t.Fatalf("Renew with a stale fence = %v", err)
	}
	if err := db.Release(ctx, second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Acquire(ctx, a.ID, "fourth", time.Minute); !addon.IsBusy(err) {
		t.Fatalf("a stale Release freed the current lease: %v", err)
	}
	if err := db.Release(ctx, third); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Acquire(ctx, a.ID, "fourth", time.Minute); err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
}

// TestRenewAfterRelease: a renewal that runs after its writer freed the
// lease (it waited on the row lock behind the final Record or Release, and
// Postgres re-checks its WHERE on the freed row) must not take the lease
// again: the add-on would stay busy for a whole lease with nobody working.
func TestRenewAfterRelease(t *testing.T) {
	tests := []struct {
		name    string
		release func(ctx context.Context, db releaser, l addon.Lease) error
	}{
		{"Release", func(ctx context.Context, db releaser, l addon.Lease) error { return db.Release(ctx, l) }},
		{"Record with release", func(ctx context.Context, db releaser, l addon.Lease) error {
			_, err := db.Record(ctx, l, nil, true, func(context.Context, *addon.Addon) error { return nil })
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := newStore(t)
			ctx := context.Background()
			a := newAddon(now())
			if _, _, err := db.Create(ctx, a); err != nil {
				t.Fatal(err)
			}
			_, l, err := db.Acquire(ctx, a.ID, "first", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.release(ctx, db, l); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Renew(ctx, l, time.Minute); !errors.Is(err, addon.ErrLeaseLost) {
				t.Errorf("Renew after release = %v, want lease lost", err)
			}
			if _, _, err := db.Acquire(ctx, a.ID, "second", time.Minute); err != nil {
				t.Errorf("Acquire after release and renew: %v", err)
			}
		})
	}
}

// releaser is the part of the store that frees a lease.
type releaser interface {
	Release(ctx context.Context, l addon.Lease) error
	Record(ctx context.Context, l addon.Lease, seen *addon.Addon, release bool, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error)
}

// TestRecordFromSeen: a writer whose copy of the add-on is current records
// in one statement from that copy (fn sees the copy, not a fresh read:
// here a marker only the copy carries), with its events in order and the
// lease freed on release; a copy that is stale by updated_at or by fence
// is not trusted.
func TestRecordFromSeen(t *testing.T) {
	db, a, _ := storedAddon(t)
	ctx := context.Background()
	seen, l, err := db.Acquire(ctx, a.ID, "w", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	marked := func(a *addon.Addon) *addon.Addon {
		c := a.Clone()
		c.HaltReason = "only in the copy"
		return c
	}
	var saw string
	record := func(from *addon.Addon, release bool, notes ...string) (*addon.Addon, error) {
		return db.Record(ctx, l, from, release, func(_ context.Context, a *addon.Addon) error {
			saw = a.HaltReason
			a.HaltReason = ""
			a.Reason = "recorded"
			for _, n := range notes {
				a.Note(now(), "step", n)
			}
			return nil
		})
	}

	saved, err := record(marked(seen), false, "one", "two", "three", "four")
	if err != nil || saw != "only in the copy" || saved.Reason != "recorded" || !saved.UpdatedAt.After(seen.UpdatedAt) {
		t.Fatalf("Record from a current copy: fn saw %q; got %+v, %v; want the copy trusted and saved", saw, saved, err)
	}
	var got []string
	for _, e := range events(t, db, a.ID)[1:] {
		got = append(got, e.Message)
	}
	if want := []string{"one", "two", "three", "four"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q in order", got, want)
	}
	if stored, _ := db.Get(ctx, a.ID); !stored.UpdatedAt.Equal(saved.UpdatedAt) || stored.LeaseOwner != "w" {
		t.Errorf("stored updated_at %v lease %q; want %v (as returned) and the lease kept", stored.UpdatedAt, stored.LeaseOwner, saved.UpdatedAt)
	}

	// More events than the statement takes: the locked path, same result.
	if _, err := record(marked(saved), false, "a", "b", "c", "d", "e"); err != nil || saw != "" {
		t.Errorf("Record with five events: fn saw %q, err %v; want the stored add-on", saw, err)
	}

	// Stale by updated_at: someone else wrote since the copy.
	saved, _ = db.Get(ctx, a.ID)
	if _, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error { a.PendingPlan = "premium"; return nil }); err != nil {
		t.Fatal(err)
	}
	if saved, err = record(marked(saved), false); err != nil || saw != "" || saved.PendingPlan != "premium" {
		t.Fatalf("Record from a stale copy: fn saw %q; got %+v, %v; want the stored add-on", saw, saved, err)
	}

	// Release from a current copy frees the lease, in the one statement.
	if saved, err = record(marked(saved), true); err != nil || saved.LeaseOwner != "" || saw != "only in the copy" {
		t.Fatalf("Record with release = %+v, %v (fn saw %q); want the copy trusted and the lease freed", saved, err, saw)
	}
	if stored, _ := db.Get(ctx, a.ID); stored.LeaseOwner != "" || !stored.LeaseUntil.IsZero() {
		t.Errorf("lease after release %q until %v, want free", stored.LeaseOwner, stored.LeaseUntil)
	}

	// Stale by fence: another writer claimed since; nothing is saved.
	_, next, err := db.Acquire(ctx, a.ID, "next", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := record(marked(saved), false); !errors.Is(err, addon.ErrLeaseLost) {
		t.Errorf("Record under a lease taken over = %v, want lease lost", err)
	}
	if stored, _ := db.Get(ctx, a.ID); stored.Fence != next.Fence || stored.HaltReason != "" || !stored.UpdatedAt.Equal(saved.UpdatedAt) {
		t.Errorf("stored fence %d halt %q updated %v; want %d, nothing written", stored.Fence, stored.HaltReason, stored.UpdatedAt, next.Fence)
	}
}

// TestUpdatedAtNeverRepeats: a write moves updated_at past the row's
// previous value even when the database's clock is behind it (a clock
// stepped back, a failover to a server whose clock lags), so a writer's
// copy stamped with an old value can never pass for the row.
func TestUpdatedAtNeverRepeats(t *testing.T) {
	db, url := newStore(t)
	ctx := context.Background()
	a := newAddon(now())
	create(t, db, a)
	ahead := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	if _, err := rawDB(t, url).ExecContext(ctx, "UPDATE addons SET updated_at = $2 WHERE id = $1", a.ID, ahead); err != nil {
		t.Fatal(err)
	}
	seen, l, err := db.Acquire(ctx, a.ID, "w", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		write func() (*addon.Addon, error)
	}{
		{"Update", func() (*addon.Addon, error) {
			return db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error { a.Reason = "update"; return nil })
		}},
		{"Record from the copy", func() (*addon.Addon, error) {
			return db.Record(ctx, l, seen, false, func(_ context.Context, a *addon.Addon) error { a.Reason = "record"; return nil })
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := db.Get(ctx, a.ID)
			saved, err := tt.write()
			if err != nil || !saved.UpdatedAt.After(before.UpdatedAt) {
				t.Fatalf("%s = %v, %v; want updated_at after the row's %v", tt.name, saved, err, before.UpdatedAt)
			}
			seen = saved
		})
	}
}
