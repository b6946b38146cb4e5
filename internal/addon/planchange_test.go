package addon_test

// Tests of Heroku's plan change call when recording what the driver did
// fails: the resource is on the new plan, so Kiln must end there too.

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

func TestSyncPlanChangeRecordFails(t *testing.T) {
	tests := []struct {
		name      string
		failures  int32 // saves that fail after the driver changed the plan
		wantAsync bool  // the change continues in a job
	}{
		{"one failed save is retried in hand", 1, false},
		{"saves failing past the budget hand it to a job", 1 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.rebuild(func(_ *addon.Deps, o *addon.Options) { o.InHandBudget = 300 * time.Millisecond })
			ctx := context.Background()
			id := w.provisioned(t, "test")
			w.drv.onChange = func(addon.ID) { w.st.failRecord.Store(tt.failures) }
			pc, err := w.svc.ChangePlan(ctx, id, "pro")
			w.drv.onChange = nil
			w.st.failRecord.Store(0)
			if err != nil {
				t.Fatalf("ChangePlan = %v; the driver moved to pro, Heroku must not be told it failed", err)
			}
			if pc.Async != tt.wantAsync {
				t.Fatalf("async = %v, want %v", pc.Async, tt.wantAsync)
			}
			if tt.wantAsync {
				a := w.get(t, id)
				if a.PendingPlan != "pro" || !slices.Contains(w.q.jobs, string(addon.JobPlanChange)+" "+string(id)) {
					t.Fatalf("pending %q, jobs %v; want pro pending and a plan change job", a.PendingPlan, w.q.jobs)
				}
				if err := w.svc.PlanChangeJob(ctx, id); err != nil {
					t.Fatalf("PlanChangeJob: %v", err)
				}
			}
			if a := w.get(t, id); a.Plan != "pro" || a.PendingPlan != "" {
				t.Errorf("Kiln has plan %q (pending %q), the resource is on pro", a.Plan, a.PendingPlan)
			}
			if !tt.wantAsync {
				return
			}
			w.consistent(t, id)
		})
	}
}

// TestPlanChangeDuringFinalPush: a PUT arriving while PlanChangeJob pushes
// its last change is recorded for a job whose enqueue asynq deduplicates
// against the running one; the job must ask to be retried soon instead of
// leaving the change to the reconciler's slow sweep.
func TestPlanChangeDuringFinalPush(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	id := w.provisioned(t, "test")
	if _, err := w.st.DB.Update(ctx, id, func(_ context.Context, a *addon.Addon) error { a.PendingPlan = "basic"; return nil }); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	w.sim.Inject(herokusim.Fault{Kind: herokusim.KindConfig, Hold: hold, Times: 1})
	job := async(func() error { return w.svc.PlanChangeJob(ctx, id) })
	if err := w.sim.Wait(ctx, func() bool { return w.sim.Holding(herokusim.KindConfig) == 1 }); err != nil {
		t.Fatal(err)
	}
	if pc, err := w.svc.ChangePlan(ctx, id, "pro"); err != nil || !pc.Async {
		t.Fatalf("ChangePlan(pro) during the push = %+v, %v; want async", pc, err)
	}
	close(hold)
	if err := recv(t, job, "the plan change job"); !addon.IsBusy(err) {
		t.Fatalf("PlanChangeJob with a change recorded meanwhile = %v, want busy (retry soon)", err)
	}
	if err := w.svc.PlanChangeJob(ctx, id); err != nil {
		t.Fatalf("retried PlanChangeJob: %v", err)
	}
	if a := w.get(t, id); a.Plan != "pro" || a.PendingPlan != "" {
		t.Errorf("plan %q pending %q, want pro", a.Plan, a.PendingPlan)
	}
	w.consistent(t, id)
}
