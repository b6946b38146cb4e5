package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestLinkRoundTripAndSealing(t *testing.T) {
	db, url := newStore(t)
	ctx := context.Background()
	a := newAddon(now())
	if _, _, err := db.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	l, err := db.Link(ctx, a.ID)
	if err != nil || l.AddonID != a.ID || l.AppName != "" {
		t.Fatalf("Link of an add-on without one = %+v, %v; want a zero Link", l, err)
	}
	_, err = db.Link(ctx, addon.ID(uuid.NewString()))
	wantCode(t, err, addon.ENOTFOUND)
	_, err = db.UpdateLink(ctx, addon.ID(uuid.NewString()), func(l *addon.Link) error { return nil })
	wantCode(t, err, addon.ENOTFOUND)

	t0 := now()
	want := addon.Link{
		AddonID: a.ID, AppID: "app-1", AppName: "acme", HerokuState: "provisioned",
		SyncedAt: t0, NextSyncAt: t0.Add(time.Hour), AccessRefused: "refused", AccessRefusedAt: t0,
		WebhookID: "hook-1", WebhookSecret: "webhook-secret-value", SubscribedAt: t0,
		Attachments: []addon.Attachment{{ID: "at-1", Name: "KILN", AppID: "app-1", AppName: "acme"}},
		LogCursor:   42, MarkedDeprovisionedAt: t0,
		RetiredVars: addon.Vars{"URL": "postgres://u:retired-password@h/db"}, RetireAt: t0.Add(time.Hour),
	}
	if _, err := db.UpdateLink(ctx, a.ID, func(l *addon.Link) error { *l = want; return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := db.Link(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AppName != want.AppName || got.WebhookSecret != want.WebhookSecret || got.RetiredVars["URL"] != want.RetiredVars["URL"] ||
		!got.RetireAt.Equal(want.RetireAt) || got.LogCursor != 42 || len(got.Attachments) != 1 || got.Attachments[0] != want.Attachments[0] ||
		!got.NextSyncAt.Equal(want.NextSyncAt) || got.AccessRefused != "refused" || !got.MarkedDeprovisionedAt.Equal(t0) {
		t.Errorf("round trip: got %+v\nwant %+v", got, want)
	}
	var raw string
	if err := rawDB(t, url).QueryRow("SELECT row_to_json(l)::text FROM addon_links l WHERE addon_id = $1", a.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"webhook-secret-value", "retired-password"} {
		if strings.Contains(raw, secret) {
			t.Errorf("the addon_links row holds %q in the clear", secret)
		}
	}
	links, err := db.Links(ctx, []addon.ID{a.ID, addon.ID(uuid.NewString())})
	if err != nil || len(links) != 1 || links[a.ID].AppName != "acme" {
		t.Errorf("Links = %v, %v", links, err)
	}
}

func TestApplyEventOnce(t *testing.T) {
	db, _ := newStore(t)
	ctx := context.Background()
	a := newAddon(now())
	if _, _, err := db.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls, applied := 0, 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := db.ApplyEvent(ctx, a.ID, "event-1", func(l *addon.Link) error {
				mu.Lock()
				calls++
				mu.Unlock()
				l.LogCursor++
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				applied++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	l, _ := db.Link(ctx, a.ID)
	if applied != 1 || l.LogCursor != 1 {
		t.Errorf("8 concurrent deliveries of one event: applied %d times (fn called %d), counter %d; want once", applied, calls, l.LogCursor)
	}
	// An fn error rolls the event id back too, so a retry can apply it.
	_, err := db.ApplyEvent(ctx, a.ID, "event-2", func(l *addon.Link) error { return addon.Errorf(addon.EMALFORMED, "bad") })
	wantCode(t, err, addon.EMALFORMED)
	if ok, err := db.ApplyEvent(ctx, a.ID, "event-2", func(l *addon.Link) error { return nil }); !ok || err != nil {
		t.Errorf("event-2 after a failed attempt: applied %v, %v", ok, err)
	}
	if err := db.PruneEvents(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.ApplyEvent(ctx, a.ID, "event-1", func(l *addon.Link) error { return nil }); !ok {
		t.Error("a pruned event id is still remembered")
	}
}

// TestAdvanceLogCursor: the log job's one write. Concurrent advances of
// an add-on without a Link (each starting the row) end at the furthest;
// a cursor that is not further writes no new row version; the rest of the
// Link is kept; an unknown add-on is not found.
func TestAdvanceLogCursor(t *testing.T) {
	db, url := newStore(t)
	raw := rawDB(t, url)
	ctx := context.Background()
	a := newAddon(now())
	create(t, db, a)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.AdvanceLogCursor(ctx, a.ID, int64(i+1)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if l, err := db.Link(ctx, a.ID); err != nil || l.LogCursor != 8 {
		t.Fatalf("after 8 concurrent advances: Link = %+v, %v; want cursor 8", l, err)
	}
	if _, err := db.UpdateLink(ctx, a.ID, func(l *addon.Link) error { l.AppName = "acme"; return nil }); err != nil {
		t.Fatal(err)
	}
	version := func() string {
		t.Helper()
		var xmin string
		if err := raw.QueryRow("SELECT xmin::text FROM addon_links WHERE addon_id = $1", a.ID).Scan(&xmin); err != nil {
			t.Fatal(err)
		}
		return xmin
	}
	tests := []struct {
		name    string
		cursor  int64
		want    int64
		written bool // a new row version
	}{
		{"back: ignored", 3, 8, false},
		{"the same: ignored", 8, 8, false},
		{"forward", 12, 12, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := version()
			if err := db.AdvanceLogCursor(ctx, a.ID, tt.cursor); err != nil {
				t.Fatal(err)
			}
			l, err := db.Link(ctx, a.ID)
			if err != nil || l.LogCursor != tt.want || l.AppName != "acme" {
				t.Errorf("Link = %+v, %v; want cursor %d and the app name kept", l, err, tt.want)
			}
			if written := version() != before; written != tt.written {
				t.Errorf("a new row version written: %v, want %v", written, tt.written)
			}
		})
	}
	wantCode(t, db.AdvanceLogCursor(ctx, addon.ID(uuid.NewString()), 1), addon.ENOTFOUND)
	wantCode(t, db.AdvanceLogCursor(ctx, "not-a-uuid", 1), addon.ENOTFOUND)
}

func TestSweepQueries(t *testing.T) {
	db, _ := newStore(t)
	ctx := context.Background()
	t0 := now()
	mk := func(state addon.State, tokens bool) addon.ID {
		a := newAddon(t0)
		a.State = state
		if tokens {
			a.Tokens = &addon.Tokens{Access: "a", Refresh: "r", ExpiresAt: t0.Add(time.Hour)}
		}
		if _, _, err := db.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	live, due, later, noTokens, provisioning := mk(addon.StateProvisioned, true), mk(addon.StateProvisioned, true), mk(addon.StateProvisioned, true), mk(addon.StateProvisioned, false), mk(addon.StateProvisioning, true)
	set := func(id addon.ID, fn func(l *addon.Link)) {
		if _, err := db.UpdateLink(ctx, id, func(l *addon.Link) error { fn(l); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	set(due, func(l *addon.Link) { l.NextSyncAt = t0.Add(-time.Second); l.WebhookID = "h" })
	set(later, func(l *addon.Link) {
		l.NextSyncAt = t0.Add(time.Hour)
		l.RetiredVars = addon.Vars{"URL": "x"}
		l.RetireAt = t0.Add(-time.Minute)
	})
	ids, err := db.DueForSync(ctx, t0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(ids, live, due) {
		t.Errorf("DueForSync = %v, want the one without a slot (%s) and the due one (%s); not %s, %s or %s", ids, live, due, later, noTokens, provisioning)
	}
	ids, _ = db.Unsubscribed(ctx, time.Now().Add(time.Minute), t0.Add(-time.Hour), 100)
	if !sameSet(ids, live, later) {
		t.Errorf("Unsubscribed = %v, want %s and %s", ids, live, later)
	}
	// A subscription Heroku refused (SubscribedAt, no WebhookID) is asked
	// for again only once it was refused before refusedBefore.
	set(later, func(l *addon.Link) { l.SubscribedAt = t0.Add(-time.Minute) })
	ids, _ = db.Unsubscribed(ctx, time.Now().Add(time.Minute), t0.Add(-time.Hour), 100)
	if !sameSet(ids, live) {
		t.Errorf("Unsubscribed = %v, want %s only: %s was refused a minute ago", ids, live, later)
	}
	ids, _ = db.Unsubscribed(ctx, time.Now().Add(time.Minute), t0, 100)
	if !sameSet(ids, live, later) {
		t.Errorf("Unsubscribed = %v, want %s and %s (refused before refusedBefore)", ids, live, later)
	}
	ids, _ = db.DueForRetire(ctx, t0, 100)
	if !sameSet(ids, later) {
		t.Errorf("DueForRetire = %v, want %s", ids, later)
	}
	set(live, func(l *addon.Link) { l.AccessRefused = "revoked" })
	if n, err := db.CountAccessRefused(ctx); err != nil || n != 1 {
		t.Errorf("CountAccessRefused = %d, %v; want 1", n, err)
	}
}

func sameSet(got []addon.ID, want ...addon.ID) bool {
	if len(got) != len(want) {
		return false
	}
	m := map[addon.ID]bool{}
	for _, g := range got {
		m[g] = true
	}
	for _, w := range want {
		if !m[w] {
			return false
		}
	}
	return true
}
