package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestEventsInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, a, t0 := storedAddon(t)
	_, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
		a.Note(t0.Add(time.Second), "step", "OAuth grant exchanged")
		a.Note(t0.Add(2*time.Second), "step", "resource created")
		return a.Transition(t0.Add(3*time.Second), addon.StateProvisioned, "")
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
		return a.Transition(t0.Add(4*time.Second), addon.StateDeprovisioning, "deprovision requested")
	})
	if err != nil {
		t.Fatal(err)
	}

	got, err := db.Events(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []addon.Event{
		{Kind: "state", State: addon.StateProvisioning, Message: "provision requested on plan basic", At: t0},
		{Kind: "step", State: addon.StateProvisioning, Message: "OAuth grant exchanged", At: t0.Add(time.Second)},
		{Kind: "step", State: addon.StateProvisioning, Message: "resource created", At: t0.Add(2 * time.Second)},
		{Kind: "state", State: addon.StateProvisioned, Message: "", At: t0.Add(3 * time.Second)},
		{Kind: "state", State: addon.StateDeprovisioning, Message: "deprovision requested", At: t0.Add(4 * time.Second)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.AddonID != a.ID || g.Kind != w.Kind || g.State != w.State || g.Message != w.Message || !g.At.Equal(w.At) {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
		if i > 0 && g.ID <= got[i-1].ID {
			t.Errorf("event ids not increasing: %d after %d", g.ID, got[i-1].ID)
		}
	}
}

// TestEventsToLog pages through the audit trail by the add-on's log
// cursor, as the log stream does: one statement reads the cursor (none
// without a Link) and the events past it, and another add-on's events
// never show.
func TestEventsToLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, a, t0 := storedAddon(t)
	if _, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
		for i := range 3 {
			a.Note(t0.Add(time.Duration(i+1)*time.Second), "step", fmt.Sprint("step ", i+1))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	other := newAddon(t0)
	if _, _, err := db.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	all, err := db.Events(ctx, a.ID)
	if err != nil || len(all) != 4 {
		t.Fatalf("Events = %+v, %v", all, err)
	}
	tests := []struct {
		name   string
		cursor int64 // advanced to before the read; 0: no Link yet
		limit  int
		want   []addon.Event
	}{
		{"without a Link: from the start", 0, 10, all},
		{"limited", 0, 2, all[:2]},
		{"after the second", all[1].ID, 10, all[2:]},
		{"after the last", all[3].ID, 10, []addon.Event{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cursor != 0 {
				if err := db.AdvanceLogCursor(ctx, a.ID, tt.cursor); err != nil {
					t.Fatal(err)
				}
			}
			got, err := db.EventsToLog(ctx, a.ID, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("EventsToLog(%d) after cursor %d = %+v, want %+v", tt.limit, tt.cursor, got, tt.want)
			}
		})
	}
	_, err = db.EventsToLog(ctx, "not-a-uuid", 10)
	wantCode(t, err, addon.ENOTFOUND)
}
