package mock_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/addon/mock"
)

func TestStoreContract(t *testing.T) {
	mock.StoreContract(t, func(*testing.T) addon.Store { return &mock.Store{} })
}

// TestStoreClock: a lease lapses by the store's own clock, so unit tests
// take a lease over without sleeping; updated_at moves on every write even
// when that clock stands still.
func TestStoreClock(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &mock.Store{Now: func() time.Time { return now }}
	a, _, err := s.Create(ctx, &addon.Addon{ID: "00000000-0000-4000-8000-000000000001", State: addon.StateProvisioning})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Acquire(ctx, a.ID, "first", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Acquire(ctx, a.ID, "second", time.Minute); !addon.IsBusy(err) {
		t.Fatalf("Acquire before the lease lapsed = %v, want busy", err)
	}
	now = now.Add(time.Minute)
	if _, _, err := s.Acquire(ctx, a.ID, "second", time.Minute); err != nil {
		t.Fatalf("Acquire when the lease lapsed: %v", err)
	}
	b, err := s.Update(ctx, a.ID, func(context.Context, *addon.Addon) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Update(ctx, a.ID, func(context.Context, *addon.Addon) error { return nil })
	if err != nil || !c.UpdatedAt.After(b.UpdatedAt) {
		t.Errorf("updated_at %v then %v (%v), want it to move on", b.UpdatedAt, c.UpdatedAt, err)
	}
}

// TestStoreBefore: the hook fails an operation with nothing changed, and
// may act on the store in between (another writer).
func TestStoreBefore(t *testing.T) {
	ctx := context.Background()
	s := &mock.Store{}
	a, _, err := s.Create(ctx, &addon.Addon{ID: "00000000-0000-4000-8000-000000000002", State: addon.StateProvisioning})
	if err != nil {
		t.Fatal(err)
	}
	down := errors.New("database down")
	var seen []string
	s.Before = func(op string, id addon.ID) error {
		seen = append(seen, fmt.Sprintf("%s %s", op, id))
		if op == "Update" {
			return down
		}
		return nil
	}
	if _, err := s.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error { a.Reason = "x"; return nil }); err != down {
		t.Fatalf("Update = %v, want the hook's error", err)
	}
	got, err := s.Get(ctx, a.ID)
	if err != nil || got.Reason != "" {
		t.Fatalf("after a failed update: %+v, %v", got, err)
	}
	want := []string{"Update " + string(a.ID), "Get " + string(a.ID)}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("hook saw %q, want %q", seen, want)
	}
}

// TestStoreList: keyset pages by id and by created_at, both directions.
func TestStoreList(t *testing.T) {
	ctx := context.Background()
	s := &mock.Store{}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// ids in one order, creation times in the other
	for i := 1; i <= 5; i++ {
		id := addon.ID(fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i))
		a := &addon.Addon{ID: id, Name: fmt.Sprintf("Name-%d", i), State: addon.StateProvisioned, CreatedAt: t0.Add(time.Duration(-i) * time.Hour)}
		if i == 5 {
			a.State = addon.StateDeprovisioned
		}
		if _, _, err := s.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	pages := func(f addon.Filter, r addon.Range) string {
		out := ""
		for n := 0; n < 10; n++ {
			page, next, err := s.List(ctx, f, r)
			if err != nil {
				return err.Error()
			}
			for _, a := range page {
				out += string(a.ID[len(a.ID)-1])
			}
			if next == nil {
				return out
			}
			out += "|"
			r = *next
		}
		return out + "..."
	}
	tests := []struct {
		name string
		f    addon.Filter
		r    addon.Range
		want string
	}{
		{"by id", addon.Filter{}, addon.Range{Max: 2}, "12|34|5"},
		{"by id, descending", addon.Filter{}, addon.Range{Max: 2, Desc: true}, "54|32|1"},
		{"by id from a start", addon.Filter{}, addon.Range{Start: "00000000-0000-4000-8000-000000000003"}, "345"},
		{"by id after a start", addon.Filter{}, addon.Range{Start: "00000000-0000-4000-8000-000000000003", Exclusive: true}, "45"},
		{"by created_at", addon.Filter{}, addon.Range{Field: addon.RangeCreatedAt, Max: 3}, "543|21"},
		{"by created_at, descending", addon.Filter{}, addon.Range{Field: addon.RangeCreatedAt, Max: 3, Desc: true}, "123|45"},
		{"by state", addon.Filter{State: addon.StateDeprovisioned}, addon.Range{}, "5"},
		{"by name, case-insensitively", addon.Filter{NameContains: "name-2"}, addon.Range{}, "2"},
		{"a bad range", addon.Filter{}, addon.Range{Max: -1}, addon.Errorf(addon.EINVALID, "The page size (max) must be between 1 and %d.", addon.MaxRangeMax).Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pages(tt.f, tt.r); got != tt.want {
				t.Errorf("pages = %q, want %q", got, tt.want)
			}
		})
	}
	if _, _, err := s.List(ctx, addon.Filter{App: "app"}, addon.Range{}); err == nil {
		t.Error("List by App succeeded; the in-memory store knows no app names")
	}
}

// TestStoreFindByName: a live add-on wins over deprovisioned ones that
// had its name; two live ones are a conflict.
func TestStoreFindByName(t *testing.T) {
	ctx := context.Background()
	s := &mock.Store{}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(n int, name string, state addon.State, age time.Duration) {
		t.Helper()
		id := addon.ID(fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", n))
		if _, _, err := s.Create(ctx, &addon.Addon{ID: id, Name: name, State: state, CreatedAt: t0.Add(-age)}); err != nil {
			t.Fatal(err)
		}
	}
	add(1, "reused", addon.StateDeprovisioned, time.Hour)
	add(2, "reused", addon.StateProvisioned, 2*time.Hour)
	add(3, "gone", addon.StateDeprovisioned, 2*time.Hour)
	add(4, "gone", addon.StateDeprovisioned, time.Hour)
	add(5, "twice", addon.StateProvisioned, time.Hour)
	add(6, "twice", addon.StateProvisioning, time.Hour)
	tests := []struct{ name, want, code string }{
		{"reused", "00000000-0000-4000-8000-000000000002", ""},
		{"gone", "00000000-0000-4000-8000-000000000004", ""},
		{"twice", "", addon.ECONFLICT},
		{"nobody", "", addon.ENOTFOUND},
		{"", "", addon.ENOTFOUND},
	}
	for _, tt := range tests {
		a, err := s.FindByName(ctx, tt.name)
		if addon.ErrorCode(err) != tt.code || (err == nil && string(a.ID) != tt.want) {
			t.Errorf("FindByName(%q) = %v, %v; want %s %s", tt.name, a, err, tt.want, tt.code)
		}
	}
	if n, err := s.CountLostGrants(ctx); err != nil || n != 0 {
		t.Errorf("CountLostGrants = %d, %v", n, err)
	}
}

func TestLinksContract(t *testing.T) {
	mock.LinksContract(t, func(*testing.T) (addon.Store, addon.LinkStore) {
		s := &mock.Store{}
		return s, &mock.Links{Store: s}
	})
}
