package addon_test

// Tests of Heroku's plan change call when recording what the driver did
// fails: the resource is on the new plan, so Kiln must end there too.

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
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
			w.svc.InHandBudget = 300 * time.Millisecond
			ctx := context.Background()
			id := w.provisioned(t, "test")
			w.drv.onChange = func(string) { w.st.failRecord.Store(tt.failures) }
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
				if a.PendingPlan != "pro" || !slices.Contains(w.q.jobs, string(addon.JobPlanChange)+" "+id) {
					t.Fatalf("pending %q, jobs %v; want pro pending and a plan change job", a.PendingPlan, w.q.jobs)
				}
				if err := w.svc.ChangePlanJob(ctx, id); err != nil {
					t.Fatalf("ChangePlanJob: %v", err)
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
