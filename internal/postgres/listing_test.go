package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/postgres"
)

// seed creates n add-ons whose created_at values come in pairs (two add-ons
// per microsecond), so paging by created_at must break ties by id. It
// returns them in creation order.
func seed(tb testing.TB, db *postgres.DB, n int, shape func(i int, a *addon.Addon)) []*addon.Addon {
	tb.Helper()
	base := now().Add(-time.Hour)
	var out []*addon.Addon
	for i := range n {
		a := newAddon(base.Add(time.Duration(i/2) * time.Microsecond))
		if shape != nil {
			shape(i, a)
		}
		stored, created, err := db.Create(context.Background(), a)
		if err != nil || !created {
			tb.Fatalf("Create: created=%v err=%v", created, err)
		}
		out = append(out, stored)
	}
	return out
}

// pageAll follows Next ranges from r until the last page, returning the ids
// in the order received and the number of pages.
func pageAll(tb testing.TB, db *postgres.DB, f addon.Filter, r addon.Range) (ids []string, pages int) {
	tb.Helper()
	for range 100 {
		page, next, err := db.List(context.Background(), f, r)
		if err != nil {
			tb.Fatalf("List(%+v): %v", r, err)
		}
		pages++
		if len(page) > r.WithDefaults().Max {
			tb.Fatalf("page of %d add-ons, max %d", len(page), r.WithDefaults().Max)
		}
		for _, a := range page {
			ids = append(ids, string(a.ID))
		}
		if next == nil {
			return ids, pages
		}
		if !next.Exclusive || next.Field != r.WithDefaults().Field || next.Desc != r.Desc {
			tb.Fatalf("next range %+v does not continue %+v", next, r)
		}
		r = *next
	}
	tb.Fatal("pagination did not end")
	return nil, 0
}

func TestListPaginates(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	all := seed(t, db, 7, nil)

	byID := make([]string, len(all))
	for i, a := range all {
		byID[i] = string(a.ID)
	}
	sort.Strings(byID)
	// Creation order, ties (same microsecond) broken by id.
	created := slices.Clone(all)
	sort.Slice(created, func(i, j int) bool {
		if !created[i].CreatedAt.Equal(created[j].CreatedAt) {
			return created[i].CreatedAt.Before(created[j].CreatedAt)
		}
		return created[i].ID < created[j].ID
	})
	byCreated := make([]string, len(created))
	for i, a := range created {
		byCreated[i] = string(a.ID)
	}
	reversed := func(s []string) []string { c := slices.Clone(s); slices.Reverse(c); return c }

	tests := []struct {
		name      string
		r         addon.Range
		want      []string
		wantPages int
	}{
		{"id, one page", addon.Range{}, byID, 1},
		{"id, pages of 3", addon.Range{Max: 3}, byID, 3},
		{"id, exact fit", addon.Range{Max: 7}, byID, 1},
		{"id, pages of 2, desc", addon.Range{Max: 2, Desc: true}, reversed(byID), 4},
		{"id, from a start", addon.Range{Start: byID[4], Max: 2}, byID[4:], 2},
		{"id, after a start", addon.Range{Start: byID[4], Exclusive: true}, byID[5:], 1},
		{"id, below a start, desc", addon.Range{Start: byID[2], Exclusive: true, Desc: true}, reversed(byID[:2]), 1},
		{"created_at, pages of 1 splitting ties", addon.Range{Field: addon.RangeCreatedAt, Max: 1}, byCreated, 7},
		{"created_at, pages of 3", addon.Range{Field: addon.RangeCreatedAt, Max: 3}, byCreated, 3},
		{"created_at, desc", addon.Range{Field: addon.RangeCreatedAt, Max: 3, Desc: true}, reversed(byCreated), 3},
		{
			"created_at, plain timestamp start is inclusive",
			addon.Range{Field: addon.RangeCreatedAt, Start: all[2].CreatedAt.Format(time.RFC3339Nano)},
			byCreated[2:], 1,
		},
		{
			"created_at, plain timestamp start, exclusive",
			addon.Range{Field: addon.RangeCreatedAt, Start: all[2].CreatedAt.Format(time.RFC3339Nano), Exclusive: true},
			byCreated[4:], 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := pageAll(t, db, addon.Filter{}, tt.r)
			if !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v\nwant  %v", got, tt.want)
			}
			if pages != tt.wantPages {
				t.Errorf("%d pages, want %d", pages, tt.wantPages)
			}
		})
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	all := seed(t, db, 6, func(i int, a *addon.Addon) {
		a.Name = []string{"acme-db", "acme-cache", "other_db", "100%-acme", "ACME-web", "zeta"}[i]
		if i%2 == 1 {
			a.Plan = "test"
		}
	})
	ctx := context.Background()
	if _, err := db.Update(ctx, all[1].ID, func(ctx context.Context, a *addon.Addon) error {
		return a.Transition(time.Now(), addon.StateFailed, "broken")
	}); err != nil {
		t.Fatal(err)
	}
	names := func(f addon.Filter) []string {
		page, next, err := db.List(ctx, f, addon.Range{})
		if err != nil || next != nil {
			t.Fatalf("List(%+v): next=%v err=%v", f, next, err)
		}
		var out []string
		for _, a := range page {
			out = append(out, a.Name)
		}
		sort.Strings(out)
		return out
	}
	tests := []struct {
		name string
		f    addon.Filter
		want []string
	}{
		{"no filter", addon.Filter{}, []string{"100%-acme", "ACME-web", "acme-cache", "acme-db", "other_db", "zeta"}},
		{"state", addon.Filter{State: addon.StateFailed}, []string{"acme-cache"}},
		{"plan", addon.Filter{Plan: "test"}, []string{"100%-acme", "acme-cache", "zeta"}},
		{"name", addon.Filter{Name: "acme-db"}, []string{"acme-db"}},
		{"name contains, any case", addon.Filter{NameContains: "acme"}, []string{"100%-acme", "ACME-web", "acme-cache", "acme-db"}},
		{"name contains a LIKE wildcard literally", addon.Filter{NameContains: "%"}, []string{"100%-acme"}},
		{"name contains an underscore literally", addon.Filter{NameContains: "_"}, []string{"other_db"}},
		{"all at once", addon.Filter{State: addon.StateProvisioning, Plan: "basic", NameContains: "acme"}, []string{"ACME-web", "acme-db"}},
		{"nothing matches", addon.Filter{Plan: "nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := names(tt.f); !slices.Equal(got, tt.want) {
				t.Errorf("names = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestListRefusesBadRanges(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	for _, r := range []addon.Range{
		{Field: "name"},
		{Max: -1},
		{Max: addon.MaxRangeMax + 1},
		{Start: "not-a-uuid"},
		{Field: addon.RangeCreatedAt, Start: "yesterday"},
		{Field: addon.RangeCreatedAt, Start: "2026-01-02T03:04:05Z/nope"},
	} {
		_, _, err := db.List(context.Background(), addon.Filter{}, r)
		if addon.ErrorCode(err) != addon.EINVALID {
			t.Errorf("List(%+v) error = %v, want EINVALID", r, err)
		}
	}
}

func TestFindByName(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	ctx := context.Background()
	gone := func(a *addon.Addon) {
		t.Helper()
		if _, err := db.Update(ctx, a.ID, func(ctx context.Context, a *addon.Addon) error {
			if err := a.Transition(time.Now(), addon.StateDeprovisioning, "test"); err != nil {
				return err
			}
			return a.Transition(time.Now(), addon.StateDeprovisioned, "test")
		}); err != nil {
			t.Fatal(err)
		}
	}
	all := seed(t, db, 6, func(i int, a *addon.Addon) {
		a.Name = []string{"reused", "reused", "old", "old", "twin", "twin"}[i]
		a.CreatedAt = a.CreatedAt.Add(time.Duration(i) * time.Millisecond) // no ties: "newest" is defined
	})
	gone(all[0]) // "reused": the live one wins over the older, gone one
	gone(all[2]) // "old": only gone ones: the newest
	gone(all[3])

	tests := []struct {
		name, lookup string
		wantID       addon.ID
		wantCode     string
	}{
		{"live one wins", "reused", all[1].ID, ""},
		{"newest gone one", "old", all[3].ID, ""},
		{"two live ones", "twin", "", addon.ECONFLICT},
		{"unknown", "nope", "", addon.ENOTFOUND},
		{"empty", "", "", addon.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := db.FindByName(ctx, tt.lookup)
			if tt.wantCode != "" {
				wantCode(t, err, tt.wantCode)
				return
			}
			if err != nil || a.ID != tt.wantID {
				t.Fatalf("FindByName(%q) = %v, %v; want %s", tt.lookup, a, err, tt.wantID)
			}
		})
	}
}

func TestCreatedAtCursorRoundTrips(t *testing.T) {
	id := addon.ID(uuid.NewString())
	at := time.Date(2026, 3, 3, 18, 0, 0, 123456000, time.FixedZone("x", 3600))
	// An operator may send the id back in upper case.
	for _, cursor := range []string{addon.CreatedAtCursor(at, id), strings.ToUpper(addon.CreatedAtCursor(at, id))} {
		got, gotID, err := addon.ParseCreatedAtCursor(cursor)
		if err != nil || !got.Equal(at) || gotID != id {
			t.Errorf("round trip of %q = %v %q %v; want %v %q", cursor, got, gotID, err, at, id)
		}
	}
}

func TestStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := newStore(t)
	raw := rawDB(t, url)

	ago := func(d time.Duration) time.Time { return time.Now().Add(-d) }
	rows := []struct {
		name    string
		state   addon.State
		updated time.Time
	}{
		{"provisioning-2h", addon.StateProvisioning, ago(2 * time.Hour)},
		{"provisioned-3h", addon.StateProvisioned, ago(3 * time.Hour)},
		{"deprovisioning-1h", addon.StateDeprovisioning, ago(1 * time.Hour)},
		{"failed-4h", addon.StateFailed, ago(4 * time.Hour)},
		{"deprovisioned-5h", addon.StateDeprovisioned, ago(5 * time.Hour)},
		{"provisioning-now", addon.StateProvisioning, time.Now()},
		{"deprovisioning-90m", addon.StateDeprovisioning, ago(90 * time.Minute)},
		// Provisioned add-ons with work left: a plan change recorded while
		// provisioning, and rotated credentials not yet pushed to Heroku.
		{"pending-plan-150m", addon.StateProvisioned, ago(150 * time.Minute)},
		{"unpushed-100m", addon.StateProvisioned, ago(100 * time.Minute)},
		{"pushed-100m", addon.StateProvisioned, ago(100 * time.Minute)},
	}
	ids := map[string]addon.ID{}
	for _, r := range rows {
		a := newAddon(now())
		a.Name = r.name
		a.State = r.state
		switch r.name {
		case "pending-plan-150m":
			a.PendingPlan = "pro"
		case "unpushed-100m", "pushed-100m":
			a.Tokens = &addon.Tokens{Access: "a", Refresh: "r", ExpiresAt: now().Add(time.Hour)}
			if r.name == "pushed-100m" {
				a.ConfigPushedAt = now()
			}
		}
		if _, _, err := db.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.ExecContext(ctx, "UPDATE addons SET updated_at = $1 WHERE id = $2", r.updated, a.ID); err != nil {
			t.Fatal(err)
		}
		ids[r.name] = a.ID
	}

	tests := []struct {
		name  string
		from  string // the add-on the page starts after
		limit int
		want  []string
	}{
		{"all stale, oldest first", "", 10, []string{"pending-plan-150m", "provisioning-2h", "unpushed-100m", "deprovisioning-90m", "deprovisioning-1h"}},
		{"limited", "", 2, []string{"pending-plan-150m", "provisioning-2h"}},
		{"the next page", "provisioning-2h", 2, []string{"unpushed-100m", "deprovisioning-90m"}},
		{"the last page", "deprovisioning-90m", 2, []string{"deprovisioning-1h"}},
		{"no limit means default batch", "", 0, []string{"pending-plan-150m", "provisioning-2h", "unpushed-100m", "deprovisioning-90m", "deprovisioning-1h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var from addon.StaleFrom
			if tt.from != "" {
				a, err := db.Get(ctx, ids[tt.from])
				if err != nil {
					t.Fatal(err)
				}
				from = addon.StaleFrom{UpdatedAt: a.UpdatedAt, ID: a.ID}
			}
			got, err := db.Stale(ctx, ago(30*time.Minute), from, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range got {
				names = append(names, a.Name)
				if a.ID != ids[a.Name] {
					t.Errorf("add-on %s has id %s, want %s", a.Name, a.ID, ids[a.Name])
				}
			}
			if fmt.Sprint(names) != fmt.Sprint(tt.want) {
				t.Errorf("Stale = %v, want %v", names, tt.want)
			}
		})
	}
}

// TestStalePagesThroughTies: add-ons last updated at the same instant are
// paged by id, none skipped and none twice.
func TestStalePagesThroughTies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := newStore(t)
	raw := rawDB(t, url)
	at := time.Now().Add(-time.Hour)
	want := map[addon.ID]bool{}
	for range 3 {
		a := newAddon(now())
		if _, _, err := db.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.ExecContext(ctx, "UPDATE addons SET updated_at = $1 WHERE id = $2", at, a.ID); err != nil {
			t.Fatal(err)
		}
		want[a.ID] = true
	}
	var from addon.StaleFrom
	got := map[addon.ID]bool{}
	for page := 1; page <= 4; page++ {
		list, err := db.Stale(ctx, time.Now(), from, 1)
		if err != nil {
			t.Fatal(err)
		}
		if page == 4 {
			if len(list) != 0 {
				t.Errorf("a fourth page of one holds %d add-ons, want none", len(list))
			}
			break
		}
		if len(list) != 1 || got[list[0].ID] {
			t.Fatalf("page %d holds %d add-ons (or one listed before); want one not listed before", page, len(list))
		}
		got[list[0].ID] = true
		from = addon.StaleFrom{UpdatedAt: list[0].UpdatedAt, ID: list[0].ID}
	}
	for id := range want {
		if !got[id] {
			t.Errorf("%s never paged", id)
		}
	}
}

// TestRequeued lists the add-ons flagged for the outbox sweep, oldest
// update first, and only those.
func TestRequeued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := newStore(t)
	raw := rawDB(t, url)
	var flagged []addon.ID
	for i := range 4 {
		a := newAddon(now())
		a.Requeue = i%2 == 0
		if _, _, err := db.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		// Older first in creation order, so "oldest first" is testable.
		if _, err := raw.ExecContext(ctx, "UPDATE addons SET updated_at = now() - $1 * interval '1 minute' WHERE id = $2", 10-i, a.ID); err != nil {
			t.Fatal(err)
		}
		if a.Requeue {
			flagged = append(flagged, a.ID)
		}
	}
	tests := []struct {
		name  string
		limit int
		want  []addon.ID
	}{
		{"all, oldest first", 10, flagged},
		{"no limit means default batch", 0, flagged},
		{"limited", 1, flagged[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Requeued(ctx, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var ids []addon.ID
			for _, a := range got {
				ids = append(ids, a.ID)
				if !a.Requeue {
					t.Errorf("add-on %s is listed but not flagged", a.ID)
				}
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("Requeued = %v, want %v", ids, tt.want)
			}
		})
	}
}
