package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/postgres"
)

func TestCreateDuplicate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	first := newAddon(now())

	stored, created, err := db.Create(ctx, first)
	if err != nil || !created {
		t.Fatalf("first Create: created=%v err=%v", created, err)
	}
	if stored.ID != first.ID || stored.Plan != "basic" {
		t.Fatalf("first Create stored %+v", stored)
	}

	again := newAddon(now())
	again.ID = first.ID
	again.Plan = "pro"
	stored, created, err = db.Create(ctx, again)
	if err != nil {
		t.Fatalf("duplicate Create: %v", err)
	}
	if created {
		t.Fatal("duplicate Create reported created=true")
	}
	if stored.Plan != "basic" {
		t.Errorf("duplicate Create returned plan %q, want the stored %q", stored.Plan, "basic")
	}
	ev := events(t, db, first.ID)
	if len(ev) != 1 {
		t.Errorf("got %d events, want 1 (the duplicate must record none)", len(ev))
	}
}

func TestCreateInvalidID(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	a := newAddon(now())
	a.ID = "not-a-uuid"
	_, _, err := db.Create(context.Background(), a)
	wantCode(t, err, addon.EINVALID)
}

func TestCreateConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	id := addon.ID(uuid.NewString())

	const n = 20
	var wg sync.WaitGroup
	created := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			a := newAddon(now())
			a.ID = id
			<-start
			var stored *addon.Addon
			stored, created[i], errs[i] = db.Create(ctx, a)
			if errs[i] == nil && stored.ID != id {
				errs[i] = fmt.Errorf("stored id %s", stored.ID)
			}
		})
	}
	close(start)
	wg.Wait()
	count := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Create %d: %v", i, errs[i])
		}
		if created[i] {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("%d of %d concurrent Creates reported created=true, want exactly 1", count, n)
	}
	ev := events(t, db, id)
	if len(ev) != 1 {
		t.Errorf("got %d events, want 1", len(ev))
	}
}

// TestCreateAndUpdateEventCounts covers each way a write records its audit
// trail: none, one (the single-statement path) and several (one insert
// each, in order), for Create and for Update; and that a duplicate Create
// records nothing and keeps the first add-on's fields.
func TestCreateAndUpdateEventCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	for _, n := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("%d events", n), func(t *testing.T) {
			t0 := now()
			a := newAddon(t0)
			a.TakeEvents()
			a.Options = map[string]string{"flag": "on"}
			a.Grant = &addon.Grant{Code: "grant-code", ExpiresAt: t0.Add(5 * time.Minute)}
			a.LogDrainToken = "d.drain-token"
			var want []string
			for i := range n {
				msg := fmt.Sprintf("create %d", i)
				a.Note(t0.Add(time.Duration(i)*time.Second), "step", msg)
				want = append(want, msg)
			}
			stored, created, err := db.Create(ctx, a)
			if err != nil || !created {
				t.Fatalf("Create = created %v, %v", created, err)
			}
			if stored.Name != a.Name || stored.Options["flag"] != "on" || stored.Grant == nil || stored.Grant.Code != "grant-code" ||
				stored.LogDrainToken != "d.drain-token" || !stored.CreatedAt.Equal(t0) || !stored.Deadline.Equal(a.Deadline) {
				t.Errorf("stored add-on = %+v, want the fields created", stored)
			}

			dup := newAddon(t0)
			dup.ID, dup.Name = a.ID, "someone-else"
			dup.Note(t0, "step", "must not be recorded")
			got, created, err := db.Create(ctx, dup)
			if err != nil || created || got.Name != a.Name {
				t.Fatalf("duplicate Create = %q created %v, %v; want the first add-on, created false", got.Name, created, err)
			}

			_, err = db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
				a.Reason = "updated"
				for i := range n {
					msg := fmt.Sprintf("update %d", i)
					a.Note(t0.Add(time.Minute+time.Duration(i)*time.Second), "step", msg)
					want = append(want, msg)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			events, err := db.Events(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != len(want) {
				t.Fatalf("%d events recorded, want %d: %+v", len(events), len(want), events)
			}
			for i, e := range events {
				if e.Message != want[i] {
					t.Errorf("event %d = %q, want %q", i, e.Message, want[i])
				}
			}
			if got, err := db.Get(ctx, a.ID); err != nil || got.Reason != "updated" || !got.UpdatedAt.After(stored.UpdatedAt) {
				t.Errorf("after Update: %+v, %v; want the reason saved and updated_at moved on", got, err)
			}
		})
	}
}

// TestCreateReturnsWhatGetReads pins the shortcut of Create, which returns
// the add-on it wrote instead of reading it back: the two must not differ
// in any field, times (nanoseconds in, microseconds stored) included.
func TestCreateReturnsWhatGetReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	ns := time.Date(2026, 3, 3, 18, 1, 31, 123456789, time.FixedZone("PST", -8*3600))
	tests := []struct {
		name string
		edit func(a *addon.Addon)
	}{
		{"bare", func(a *addon.Addon) { a.CreatedAt = time.Time{} }},
		{"every field", func(a *addon.Addon) {
			a.CreatedAt = ns
			a.Options = map[string]string{"a": "1", "b": ""}
			a.LogInputURL, a.LogDrainToken = "https://t:s@logs.example/x", "d.token"
			a.Grant = &addon.Grant{Code: "code", ExpiresAt: ns.Add(5 * time.Minute)}
			a.Tokens = &addon.Tokens{Access: "acc", Refresh: "ref", ExpiresAt: ns.Add(8 * time.Hour), UserID: "user"}
			a.Vars = addon.Vars{"URL": "https://x"}
			a.PendingPlan, a.PendingPlanAt, a.Reason, a.CallbackURL = "pro", ns, "why", "https://api.heroku.com/addons/x"
			a.GrantExchangedAt, a.ResourceCreatedAt, a.ConfigPushedAt = ns, ns, ns
			a.ProvisionedAt, a.DeprovisionedAt, a.Deadline = ns, ns, ns.Add(11*time.Hour)
		}},
		{"empty maps", func(a *addon.Addon) { a.Options, a.Vars = map[string]string{}, addon.Vars{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAddon(now())
			tt.edit(a)
			created, ok, err := db.Create(ctx, a)
			if err != nil || !ok {
				t.Fatalf("Create = %v, %v", ok, err)
			}
			got, err := db.Get(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(created, got) {
				t.Errorf("Create returned\n%+v\nGet reads\n%+v", created, got)
			}
			if created.Options != nil {
				created.Options["mutated"] = "yes"
				if _, ok := a.Options["mutated"]; ok {
					t.Error("the returned add-on shares its options with the caller's")
				}
			}
		})
	}
}

func TestUpdateRoundTripsEveryField(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, a, t0 := storedAddon(t)

	steps := []struct {
		name string
		set  func(a *addon.Addon)
	}{
		{"every field set", func(a *addon.Addon) { full(a, t0) }},
		{"secrets and steps cleared", func(a *addon.Addon) {
			a.Grant, a.Tokens, a.Vars, a.Options = nil, nil, nil, nil
			a.LogInputURL, a.LogDrainToken, a.PendingPlan, a.Reason = "", "", "", ""
			a.GrantExchangedAt, a.ResourceCreatedAt, a.ConfigPushedAt = time.Time{}, time.Time{}, time.Time{}
			a.ProvisionedAt, a.DeprovisionedAt, a.Deadline = time.Time{}, time.Time{}, time.Time{}
		}},
		{"empty maps stay empty, not nil", func(a *addon.Addon) {
			a.Options, a.Vars = map[string]string{}, addon.Vars{}
		}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			var want *addon.Addon
			saved, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
				step.set(a)
				c := *a
				want = &c
				return nil
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			same(t, saved, want)
			got, err := db.Get(ctx, a.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			same(t, got, want)
			if got.CreatedAt != t0 {
				t.Errorf("created_at = %v, want %v", got.CreatedAt, t0)
			}
			if got.UpdatedAt.Location() != time.UTC || got.Deadline.Location() != time.UTC {
				t.Errorf("times not in UTC: %v, %v", got.UpdatedAt, got.Deadline)
			}
		})
	}
}

// TestUpdateReturnsWhatGetReads pins Update's shortcut, which returns the
// add-on fn left instead of reading the row back.
func TestUpdateReturnsWhatGetReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	a := newAddon(now())
	a.Grant = &addon.Grant{Code: "code", ExpiresAt: now().Add(5 * time.Minute)}
	create(t, db, a)
	ns := time.Date(2026, 3, 3, 18, 1, 31, 987654321, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		fn   func(a *addon.Addon)
	}{
		{"nothing", func(*addon.Addon) {}},
		{"grant spent", func(a *addon.Addon) {
			a.Grant = nil
			a.Tokens = &addon.Tokens{Access: "a", Refresh: "r", ExpiresAt: ns.Add(8 * time.Hour), UserID: "u"}
			a.GrantExchangedAt = ns
			a.Note(ns, "step", "OAuth grant exchanged")
		}},
		{"resource made", func(a *addon.Addon) {
			a.Vars = addon.Vars{"URL": "https://x", "API_KEY": "k"}
			a.ResourceCreatedAt, a.ConfigPushedAt = ns, ns.Add(time.Nanosecond)
			a.Options = map[string]string{"o": "1"}
		}},
		{"provisioned", func(a *addon.Addon) {
			a.ProvisionedAt = ns
			if err := a.Transition(ns, addon.StateProvisioned, ""); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
				tt.fn(a)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.Get(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(saved, got) {
				t.Errorf("Update returned\n%+v\nGet reads\n%+v", saved, got)
			}
		})
	}
}

func TestUpdateFnErrorRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	a := newAddon(now())
	create(t, db, a)
	domainErr := addon.Errorf(addon.EINVALID, "Heroku sent no OAuth grant.")
	fnErr := fmt.Errorf("exchange grant: %w", domainErr)

	_, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
		a.Plan = "pro"
		a.Tokens = &addon.Tokens{Access: "x", Refresh: "y"}
		if err := a.Transition(now(), addon.StateFailed, "nope"); err != nil {
			return err
		}
		return fnErr
	})
	if err != fnErr {
		t.Fatalf("Update returned %v, want fn's error unchanged", err)
	}
	var de *addon.Error
	if !errors.As(err, &de) || de != domainErr {
		t.Errorf("errors.As does not reach the domain error: %v", err)
	}

	got, err := db.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Plan != "basic" || got.State != addon.StateProvisioning || got.Tokens != nil {
		t.Errorf("fn's changes were saved: plan=%s state=%s tokens=%v", got.Plan, got.State, got.Tokens)
	}
	ev := events(t, db, a.ID)
	if len(ev) != 1 {
		t.Errorf("got %d events, want only the creation's (fn's transition must be rolled back)", len(ev))
	}
}

// TestUpdateFailingWriteRollsBack makes the UPDATE itself fail (a state the
// table's CHECK refuses) after the row lock was taken: the error comes back,
// nothing is saved, and the pool's connections still work afterwards.
func TestUpdateFailingWriteRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	a := newAddon(now())
	create(t, db, a)
	for i := range 20 { // more than the pool holds: a poisoned connection would be reused
		_, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
			a.State = "bogus"
			a.Note(now(), "step", "must not be recorded")
			return nil
		})
		if addon.ErrorCode(err) != addon.EINTERNAL {
			t.Fatalf("update %d with a bad state = %v, want EINTERNAL", i, err)
		}
	}
	got, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
		a.Reason = "still works"
		return nil
	})
	if err != nil || got.Reason != "still works" || got.State != addon.StateProvisioning {
		t.Fatalf("update after failures = %+v, %v", got, err)
	}
	events, err := db.Events(ctx, a.ID)
	if err != nil || len(events) != 1 {
		t.Errorf("events = %d (%v), want only the create's", len(events), err)
	}
}

func TestUpdateSerialisesConcurrentUpdates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	a := newAddon(now())
	a.Reason = "0"
	create(t, db, a)

	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
				var c int
				if _, err := fmt.Sscan(a.Reason, &c); err != nil {
					return err
				}
				a.Reason = fmt.Sprint(c + 1)
				a.Note(now(), "step", "increment")
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Update %d: %v", i, err)
		}
	}
	got, err := db.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Reason != fmt.Sprint(n) {
		t.Errorf("counter = %s after %d concurrent increments: updates were lost", got.Reason, n)
	}
	ev := events(t, db, a.ID)
	if len(ev) != n+1 {
		t.Errorf("got %d events, want %d", len(ev), n+1)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	// Not a uuid: a store reached without ParseID still answers not found.
	for _, id := range []addon.ID{addon.ID(uuid.NewString()), "not-a-uuid"} {
		t.Run(string(id), func(t *testing.T) {
			_, err := db.Get(ctx, id)
			wantCode(t, err, addon.ENOTFOUND)
			called := false
			_, err = db.Update(ctx, id, func(context.Context, *addon.Addon) error { called = true; return nil })
			wantCode(t, err, addon.ENOTFOUND)
			if called {
				t.Error("Update called fn for a missing add-on")
			}
			_, err = db.Events(ctx, id)
			wantCode(t, err, addon.ENOTFOUND)
		})
	}
	// An add-on without events has an empty trail, not a missing one.
	a := newAddon(now())
	a.TakeEvents()
	create(t, db, a)
	if ev, err := db.Events(ctx, a.ID); err != nil || len(ev) != 0 {
		t.Errorf("Events of an add-on without events = %v, %v; want none, nil", ev, err)
	}
}

// benchStore is newStore for benchmarks: its sessions commit without
// waiting for the WAL flush (synchronous_commit=off, a startup parameter in
// the URL), so that a write's figure is the store's work and its round
// trips, not the disk's fsync, which is ten times larger and as noisy as
// the machine is shared.
func benchStore(b *testing.B) *postgres.DB {
	b.Helper()
	return open(b, migrated(b)+"&synchronous_commit=off", keyring(b, kilntest.Key()))
}

// benchAddon creates an add-on as a provision call leaves it, for the
// benchmarks of a pipeline step's reads and writes.
func benchAddon(b *testing.B, db interface {
	Create(context.Context, *addon.Addon) (*addon.Addon, bool, error)
}) *addon.Addon {
	b.Helper()
	t0 := now()
	a := newAddon(t0)
	a.Grant = &addon.Grant{Code: "grant-code", ExpiresAt: t0.Add(5 * time.Minute)}
	a.LogInputURL, a.LogDrainToken = "https://t:s@logs.example/x", "d.token"
	a.Options = map[string]string{}
	if _, _, err := db.Create(context.Background(), a); err != nil {
		b.Fatal(err)
	}
	return a
}

// BenchmarkCreate is a provision call's store work: run with -benchmem to
// see its allocations, or -cpuprofile for where the client side of the
// statement goes (cmd/kiln-bench measures the whole stack).
func BenchmarkCreate(b *testing.B) {
	ctx := context.Background()
	db := benchStore(b)
	t0 := now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a := newAddon(t0)
			a.Grant = &addon.Grant{Code: "grant-code", ExpiresAt: t0.Add(5 * time.Minute)}
			a.LogInputURL, a.LogDrainToken = "https://t:s@logs.example/x", "d.token"
			a.Options = map[string]string{}
			if _, _, err := db.Create(ctx, a); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGet is a pipeline step's read of its add-on.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	db := benchStore(b)
	a := benchAddon(b, db)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := db.Get(ctx, a.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdate is a pipeline step's save: a change and one audit event,
// under the row lock.
func BenchmarkUpdate(b *testing.B) {
	ctx := context.Background()
	db := benchStore(b)
	a := benchAddon(b, db)
	t0 := now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		_, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
			a.Reason = fmt.Sprint(i)
			a.Note(t0, "step", "benchmark step")
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecord is Update for the holder of a lease, as every job saves:
// "locked" re-reads the row under its lock (a writer whose copy is stale),
// "seen" writes from the writer's current copy in one statement.
func BenchmarkRecord(b *testing.B) {
	ctx := context.Background()
	db := benchStore(b)
	for _, mode := range []string{"locked", "seen"} {
		b.Run(mode, func(b *testing.B) {
			a := benchAddon(b, db)
			seen, l, err := db.Acquire(ctx, a.ID, "bench", time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			t0 := now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				var from *addon.Addon
				if mode == "seen" {
					from = seen
				}
				seen, err = db.Record(ctx, l, from, false, func(_ context.Context, a *addon.Addon) error {
					a.Reason = fmt.Sprint(i)
					a.Note(t0, "step", "benchmark step")
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
