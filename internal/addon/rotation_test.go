package addon_test

// Tests that a credential rotation never leaves the customer with dead
// credentials when its caller goes away or its lease is taken over while
// the driver rotates: once the driver has rotated, the new credentials are
// the only working ones, so they must be recorded and pushed.

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestRotationInterrupted(t *testing.T) {
	tests := []struct {
		name string
		// interrupt runs while the driver rotates.
		interrupt func(tb testing.TB, w *world, id addon.ID, cancel context.CancelFunc)
	}{
		{"request cancelled", func(_ testing.TB, _ *world, _ addon.ID, cancel context.CancelFunc) { cancel() }},
		{"lease taken over", func(tb testing.TB, w *world, id addon.ID, _ context.CancelFunc) { w.takeOver(tb, id) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.rebuild(func(_ *addon.Deps, o *addon.Options) { o.LeaseTTL = 300 * time.Millisecond })
			id := w.provisioned(t, "test")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w.drv.onRotate = func(id addon.ID) { tt.interrupt(t, w, id, cancel) }
			_, err := w.svc.RotateCredentials(ctx, id)
			w.drv.onRotate = nil
			w.st.failRenew.Store(false)
			t.Logf("RotateCredentials: %v", err)
			if a := w.get(t, id); a.Vars["URL"] != w.drv.url(id) {
				t.Fatalf("stored %q, the driver's live credentials are %q", a.Vars["URL"], w.drv.url(id))
			}
			if err != nil {
				// The push was handed to a job.
				if err := w.svc.PushConfigJob(context.Background(), id); err != nil {
					t.Fatalf("PushConfigJob: %v", err)
				}
			}
			w.consistent(t, id)
		})
	}
}

// takeOver lets the add-on's current lease lapse (renewals fail) and claims
// and frees it as another writer, so the fence moves on under the holder.
func (w *world) takeOver(tb testing.TB, id addon.ID) {
	tb.Helper()
	w.st.failRenew.Store(true)
	ctx := context.Background()
	deadline := time.Now().Add(wait)
	for {
		_, l, err := w.st.DB.Acquire(ctx, id, "other", time.Minute)
		if err == nil {
			if err := w.st.DB.Release(ctx, l); err != nil {
				tb.Fatal(err)
			}
			return
		}
		if !addon.IsBusy(err) || time.Now().After(deadline) {
			tb.Fatalf("take over the lease: %v", err)
		}
		<-time.After(addon.RetryAfter(err))
	}
}
