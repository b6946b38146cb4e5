package addon_test

// Tests that a job halted for good stops only its own kind: a halted plan
// change must not keep a rotation's credentials from reaching Heroku, and a
// plan change halts only while the plan that failed is still the one
// Heroku asked for.

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// halt records kind as halted on id and sets vars that Heroku has not got,
// as a rotation whose push failed leaves them.
func (w *world) halt(tb testing.TB, id addon.ID, kind addon.JobKind, pending string) {
	tb.Helper()
	if _, err := w.st.DB.Update(context.Background(), id, func(_ context.Context, a *addon.Addon) error {
		a.Halted, a.HaltReason = kind, "refused"
		a.PendingPlan = pending
		a.Vars = addon.Vars{"URL": "fake://new"}
		a.ConfigPushedAt = time.Time{}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

// stale reports whether the reconciler would pick id up now.
func (w *world) stale(tb testing.TB, id addon.ID) bool {
	tb.Helper()
	list, err := w.st.DB.Stale(context.Background(), time.Now().Add(time.Hour), addon.StaleFrom{}, 0)
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range list {
		if a.ID == id {
			return true
		}
	}
	return false
}

func TestHaltStopsOnlyItsKind(t *testing.T) {
	tests := []struct {
		name       string
		halted     addon.JobKind
		pending    string
		wantPushed bool // the push job reaches Heroku
		wantStale  bool // the reconciler revives something
	}{
		{"halted plan change, unpushed vars", addon.JobPlanChange, "pro", true, true},
		{"halted push", addon.JobPushConfig, "", false, false},
		{"halted push, pending plan", addon.JobPushConfig, "pro", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			id := w.provisioned(t, "test")
			w.halt(t, id, tt.halted, tt.pending)
			if got := w.stale(t, id); got != tt.wantStale {
				t.Errorf("listed by the reconciler = %v, want %v", got, tt.wantStale)
			}
			if err := w.svc.PushConfigJob(ctx, id); err != nil {
				t.Fatal(err)
			}
			h, _ := w.sim.Addon(string(id))
			if pushed := h.Config["KILN_URL"] == "fake://new"; pushed != tt.wantPushed {
				t.Errorf("Heroku has %q; pushed = %v, want %v", h.Config["KILN_URL"], pushed, tt.wantPushed)
			}
			if a := w.get(t, id); a.Halted != tt.halted {
				t.Errorf("halted %q, want %q kept until an operator retries", a.Halted, tt.halted)
			}
		})
	}
}

// TestRotationClearsHaltedPush: a rotation owes Heroku new vars; an older
// halted push must not keep their push from being retried.
func TestRotationClearsHaltedPush(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	id := w.provisioned(t, "test")
	w.halt(t, id, addon.JobPushConfig, "")
	if _, err := w.svc.RotateCredentials(ctx, id); err != nil {
		t.Fatal(err)
	}
	if a := w.get(t, id); a.Halted != "" {
		t.Errorf("halted %q after a rotation", a.Halted)
	}
	w.consistent(t, id)
}

// TestPlanChangeFailingForAnOlderTargetDoesNotHalt: a plan change that
// fails for good while Heroku already asked for another plan tries the
// newer plan instead of halting both.
func TestPlanChangeFailingForAnOlderTargetDoesNotHalt(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	id := w.provisioned(t, "test")
	if _, err := w.st.DB.Update(ctx, id, func(_ context.Context, a *addon.Addon) error { a.PendingPlan = "basic"; return nil }); err != nil {
		t.Fatal(err)
	}
	var refused error = addon.Errorf(addon.ECONFLICT, "refused for good")
	w.drv.changeErr.Store(&refused)
	w.drv.beforeChange = func(id addon.ID) {
		w.drv.beforeChange = nil
		// Heroku asks for pro while the driver is failing basic.
		if _, err := w.st.DB.Update(ctx, id, func(_ context.Context, a *addon.Addon) error { a.PendingPlan = "pro"; return nil }); err != nil {
			t.Error(err)
		}
	}
	if err := w.svc.PlanChangeJob(ctx, id); err != nil {
		t.Fatalf("PlanChangeJob: %v", err)
	}
	a := w.get(t, id)
	if a.Halted != "" || a.Plan != "pro" || a.PendingPlan != "" {
		t.Errorf("halted %q plan %q pending %q; want pro applied, nothing halted", a.Halted, a.Plan, a.PendingPlan)
	}
	w.consistent(t, id)
}
