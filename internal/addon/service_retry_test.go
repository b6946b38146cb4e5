package addon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestRetry(t *testing.T) {
	const retried = "state provisioning: retried by an operator"
	failed := inState(addon.StateFailed, "boom")
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		code   string
		state  addon.State
		calls  []string
		events []string
	}{
		{"failed before its grant was exchanged: the grant job again", []func(a *addon.Addon){failed}, "",
			addon.StateProvisioning, []string{"Enqueue addon:grant #1"}, []string{retried}},
		{"failed after the exchange: the provision job", []func(a *addon.Addon){exchanged, failed}, "",
			addon.StateProvisioning, []string{"Enqueue addon:provision #1"}, []string{retried}},
		{"failed without a grant: its config could not reach the app", []func(a *addon.Addon){synchronous, failed}, addon.EINVALID,
			addon.StateFailed, nil, nil},
		{"a halted plan change", []func(a *addon.Addon){provisioned, pending("pro"), haltedPlan}, "",
			addon.StateProvisioned, []string{"Enqueue addon:plan #1"}, []string{"halted: addon:plan retried by an operator"}},
		{"a halted config push", []func(a *addon.Addon){provisioned, unpushed, haltedPush}, "",
			addon.StateProvisioned, []string{"Enqueue addon:config #1"}, []string{"halted: addon:config retried by an operator"}},
		{"a halted config push whose config was pushed since: the halt is lifted, nothing is owed", []func(a *addon.Addon){provisioned, haltedPush}, "",
			addon.StateProvisioned, nil, []string{"halted: addon:config retried by an operator"}},
		{"a halted config push with a plan change pending: the plan job pushes the new plan's config", []func(a *addon.Addon){provisioned, unpushed, pending("pro"), haltedPush}, "",
			addon.StateProvisioned, []string{"Enqueue addon:plan #1"}, []string{"halted: addon:config retried by an operator"}},
		{"provisioning", nil, addon.ECONFLICT, addon.StateProvisioning, nil, nil},
		{"provisioned with nothing halted", []func(a *addon.Addon){provisioned}, addon.ECONFLICT, addon.StateProvisioned, nil, nil},
		{"deprovisioned", []func(a *addon.Addon){inState(addon.StateDeprovisioned, "")}, addon.ECONFLICT, addon.StateDeprovisioned, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(o *addon.Options) { o.Deadline = 2 * time.Hour })
			id := f.add(t, tt.shape...)
			before := f.get(t, id)
			f.advance(time.Hour)
			a, err := f.svc.Retry(context.Background(), id)
			wantCode(t, err, tt.code)
			got := f.get(t, id)
			if got.State != tt.state {
				t.Errorf("state %s, want %s", got.State, tt.state)
			}
			if err == nil && (a == nil || a.State != tt.state || a.Halted != "" || got.Halted != "") {
				t.Errorf("answered %+v, stored halted %q; want the retried add-on, nothing halted", a, got.Halted)
			}
			if err != nil && got.Halted != before.Halted {
				t.Errorf("a refused retry changed halted from %q to %q", before.Halted, got.Halted)
			}
			wantDeadline := before.Deadline
			if before.State == addon.StateFailed && err == nil {
				wantDeadline = t0.Add(2 * time.Hour) // from Heroku's request, not from the retry
			}
			if !got.Deadline.Equal(wantDeadline) {
				t.Errorf("deadline %v, want %v", got.Deadline, wantDeadline)
			}
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
		})
	}
	t.Run("unknown", func(t *testing.T) {
		f := newFixture(t)
		_, err := f.svc.Retry(context.Background(), f.nextID())
		wantCode(t, err, addon.ENOTFOUND)
	})
}

// TestRetryDeadline: a retried add-on's deadline counts from Heroku's
// request, as Heroku's own 12-hour limit does, so a retry past it is
// refused rather than left to work on an add-on Heroku has removed.
func TestRetryDeadline(t *testing.T) {
	failed := inState(addon.StateFailed, "boom")
	tests := []struct {
		name     string
		shape    []func(a *addon.Addon)
		after    time.Duration // from the request to the retry
		code     string
		state    addon.State
		deadline time.Time
		calls    []string
	}{
		{"inside the deadline", []func(a *addon.Addon){exchanged, failed}, time.Hour, "",
			addon.StateProvisioning, t0.Add(2 * time.Hour), []string{"Enqueue addon:provision #1"}},
		{"a deadline an older release's retry set from its own time: back to the request's", []func(a *addon.Addon){exchanged, failed, func(a *addon.Addon) { a.Deadline = t0.Add(20 * time.Hour) }}, time.Hour, "",
			addon.StateProvisioning, t0.Add(2 * time.Hour), []string{"Enqueue addon:provision #1"}},
		{"at the deadline", []func(a *addon.Addon){exchanged, failed}, 2 * time.Hour, addon.EINVALID,
			addon.StateFailed, t0.Add(time.Hour), nil},
		{"past Heroku's limit, with a deadline an older release's retry set", []func(a *addon.Addon){exchanged, failed, func(a *addon.Addon) { a.Deadline = t0.Add(20 * time.Hour) }}, 13 * time.Hour, addon.EINVALID,
			addon.StateFailed, t0.Add(20 * time.Hour), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(o *addon.Options) { o.Deadline = 2 * time.Hour })
			id := f.add(t, tt.shape...)
			f.advance(tt.after)
			_, err := f.svc.Retry(context.Background(), id)
			wantCode(t, err, tt.code)
			got := f.get(t, id)
			if got.State != tt.state || !got.Deadline.Equal(tt.deadline) {
				t.Errorf("state %s, deadline %v; want %s, %v", got.State, got.Deadline, tt.state, tt.deadline)
			}
			if err != nil && !strings.Contains(addon.ErrorMessage(err), "create it again") {
				t.Errorf("refusal %q does not say what to do", addon.ErrorMessage(err))
			}
			f.wantCalls(t, tt.calls...)
		})
	}
}

// TestOutbox: the outbox sweep lists flagged add-ons and clears a flag
// only if the add-on did not change after it was listed (the flag may
// then stand for a newer failed enqueue).
func TestOutbox(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	flagged := func(a *addon.Addon) { a.Requeue = true }
	first := f.add(t, flagged)
	second := f.add(t, flagged)
	f.add(t)
	listed, err := f.svc.Requeued(ctx, 10)
	if err != nil || len(listed) != 2 {
		t.Fatalf("Requeued = %d add-ons, %v; want the 2 flagged", len(listed), err)
	}
	f.update(t, second, func(a *addon.Addon) { a.Reason = "changed since" })
	for _, a := range listed {
		cleared, err := f.svc.Unflag(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if want := a.ID == first; cleared != want {
			t.Errorf("Unflag(%s) cleared = %v, want %v", a.ID, cleared, want)
		}
	}
	if f.get(t, first).Requeue {
		t.Error("an unchanged add-on kept its flag")
	}
	if !f.get(t, second).Requeue {
		t.Error("an add-on changed since it was listed lost its flag")
	}
	_, err = f.svc.Unflag(ctx, &addon.Addon{ID: f.nextID()})
	wantCode(t, err, addon.ENOTFOUND)
}

// TestStale: the reconciler's listing is the store's.
func TestStale(t *testing.T) {
	f := newFixture(t)
	id := f.add(t)
	f.add(t, provisioned)
	stale, err := f.svc.Stale(context.Background(), t0.Add(time.Minute), addon.StaleFrom{}, 10)
	if err != nil || len(stale) != 1 || stale[0].ID != id {
		t.Errorf("Stale = %v, %v; want the provisioning add-on", stale, err)
	}
}
