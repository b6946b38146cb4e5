package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/jobs"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/secret"
)

// hookQueue runs after between an enqueue and the outbox sweep clearing
// the flag, to force a writer in there.
type hookQueue struct {
	addon.Queue
	after func(kind addon.JobKind, id addon.ID)
}

func (q *hookQueue) Enqueue(ctx context.Context, kind addon.JobKind, id addon.ID) error {
	err := q.Queue.Enqueue(ctx, kind, id)
	if q.after != nil {
		q.after(kind, id)
	}
	return err
}

// TestOutboxSweepKeepsANewerFlag: a writer that flags the add-on again
// (its own enqueue failed) after the outbox sweep listed it must keep its
// flag; clearing it would lose that job until the slow stale sweep.
func TestOutboxSweepKeepsANewerFlag(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	svc, _, id := e.acceptedWhileDown(t)
	q := &hookQueue{Queue: e.queue}
	q.after = func(addon.JobKind, addon.ID) {
		q.after = nil
		// Another writer records work whose enqueue failed.
		if _, err := e.db.Update(ctx, id, func(_ context.Context, a *addon.Addon) error {
			a.Requeue = true
			a.Reason = "newer work"
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	rec := jobs.NewReconciler(svc, q, jobs.ReconcilerOptions{Log: e.log})
	if n, err := rec.SweepOutbox(ctx); err != nil || n != 1 {
		t.Fatalf("SweepOutbox = %d, %v; want 1", n, err)
	}
	if a := e.state(t, id); !a.Requeue {
		t.Error("the outbox sweep cleared a flag set after it listed the add-on")
	}
	// The next sweep enqueues again and clears it.
	if n, err := rec.SweepOutbox(ctx); err != nil || n != 1 {
		t.Fatalf("second SweepOutbox = %d, %v; want 1", n, err)
	}
	if a := e.state(t, id); a.Requeue {
		t.Error("the flag is still set after the second sweep")
	}
}

// TestOutboxSweepDrainsABacklog: a backlog larger than a page (Limit) is
// enqueued page after page in one sweep, not a page per OutboxInterval (a
// long outage leaves thousands, their grants dying five minutes after each
// request); once OutboxInterval has passed the sweep starts no new page
// and the next tick goes on.
func TestOutboxSweepDrainsABacklog(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		every time.Duration // OutboxInterval: the sweep's time budget
		want  int           // enqueued by the sweep
	}{
		{"every page in one sweep", time.Minute, 5},
		{"no page after the interval", time.Nanosecond, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			svc, _, first := e.acceptedWhileDown(t)
			ids := append([]addon.ID{first}, e.accept(t, svc, 4)...)
			rec := jobs.NewReconciler(svc, e.queue, jobs.ReconcilerOptions{Log: e.log, Limit: 2, OutboxInterval: tt.every})
			if n, err := rec.SweepOutbox(ctx); err != nil || n != tt.want {
				t.Fatalf("SweepOutbox = %d, %v; want %d", n, err, tt.want)
			}
			flagged := 0
			for _, id := range ids {
				if e.state(t, id).Requeue {
					flagged++
				}
			}
			if flagged != len(ids)-tt.want {
				t.Errorf("%d add-ons still flagged, want %d", flagged, len(ids)-tt.want)
			}
			if got := pending(t, e.in, jobs.QueueGrant); len(got) != tt.want {
				t.Errorf("%d grant tasks pending, want %d", len(got), tt.want)
			}
		})
	}
}

// TestOutboxSweepSkipsUnreadable: a flagged add-on sealed with a key no
// longer in ENCRYPTION_KEY is left out, and the sweep
// enqueues the rest: one such row must not hold up work accepted while
// Redis was down, for every add-on.
func TestOutboxSweepSkipsUnreadable(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	svc, _, good := e.acceptedWhileDown(t)
	ring, err := secret.New([][]byte{[]byte("another key, 32 bytes long!!!!!!")})
	if err != nil {
		t.Fatal(err)
	}
	other, err := postgres.Open(ctx, e.url, ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	now := time.Now().Add(-time.Minute)
	bad := &addon.Addon{
		ID: addon.ID(uuid.NewString()), Name: "sealed-elsewhere", Plan: "test", Region: "us",
		State: addon.StateProvisioning, Requeue: true, Deadline: now.Add(time.Hour),
		Grant:     &addon.Grant{Code: "grant-sealed-elsewhere", ExpiresAt: now.Add(5 * time.Minute)},
		CreatedAt: now, UpdatedAt: now,
	}
	if _, _, err := other.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	rec := jobs.NewReconciler(svc, e.queue, jobs.ReconcilerOptions{Log: e.log})
	if n, err := rec.SweepOutbox(ctx); err != nil || n != 1 {
		t.Fatalf("SweepOutbox = %d, %v; want the readable add-on enqueued", n, err)
	}
	if e.state(t, good).Requeue {
		t.Error("the readable add-on is still flagged")
	}
	if got := pending(t, e.in, jobs.QueueGrant); len(got) != 1 || got[0].ID != "addon:grant:"+string(good) {
		t.Errorf("pending grant tasks %v, want the readable add-on's", got)
	}
}
