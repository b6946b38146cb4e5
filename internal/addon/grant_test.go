package addon_test

// Tests of a grant job that timed out while it still saved its tokens in
// hand, racing the retried grant job that finds the grant spent: the
// add-on must end with its tokens, provisioning, not failed.

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

// onExchange is a Platform that runs a hook after each grant exchange
// Heroku answered, numbered from 1.
type onExchange struct {
	addon.Platform
	n    atomic.Int32
	hook func(n int32)
}

func (p *onExchange) ExchangeGrant(ctx context.Context, code string) (addon.Tokens, error) {
	tok, err := p.Platform.ExchangeGrant(ctx, code)
	p.hook(p.n.Add(1))
	return tok, err
}

func TestGrantRetryRacesTokensInHand(t *testing.T) {
	tests := []struct {
		name string
		// race runs inside the first exchange, after Heroku answered it.
		race func(tb testing.TB, w *world, id addon.ID)
	}{
		{
			// The retried job is refused and records the failure first;
			// the first job's save lands after.
			"retry fails the add-on, then the tokens are saved",
			func(tb testing.TB, w *world, id addon.ID) { w.retryGrant(tb, id) },
		},
		{
			// The first job's save (a plain update: its lease is lost)
			// lands while the retried job waits on Heroku's refusal.
			"tokens saved while the retry is refused",
			func(tb testing.TB, w *world, id addon.ID) {
				w.deps.Platform.(*onExchange).hook = func(n int32) {
					if n != 2 {
						return
					}
					if _, err := w.st.DB.Update(context.Background(), id, func(_ context.Context, a *addon.Addon) error {
						a.Tokens = &addon.Tokens{Access: "access", Refresh: "refresh", ExpiresAt: time.Now().Add(time.Hour)}
						a.Grant, a.GrantExchangedAt = nil, time.Now()
						return nil
					}); err != nil {
						tb.Error(err)
					}
				}
				w.retryGrant(tb, id)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.rebuild(func(_ *addon.Deps, o *addon.Options) { o.LeaseTTL = 300 * time.Millisecond })
			ctx := context.Background()
			id := addon.ID(uuid.NewString())
			g := w.sim.NewAddon(string(id))
			if _, _, err := w.svc.Provision(ctx, addon.ProvisionRequest{ID: id, Plan: "test", Grant: &g}); err != nil {
				t.Fatal(err)
			}
			p := &onExchange{Platform: w.deps.Platform}
			p.hook = func(n int32) {
				if n == 1 {
					tt.race(t, w, id)
				}
			}
			w.rebuild(func(d *addon.Deps, _ *addon.Options) { d.Platform = p })
			if err := w.svc.GrantJob(ctx, id); err != nil {
				t.Fatalf("first ExchangeGrant: %v", err)
			}
			a := w.get(t, id)
			if a.State != addon.StateProvisioning || a.Tokens == nil {
				t.Fatalf("state %s (%s), tokens %v; want provisioning with tokens", a.State, a.Reason, a.Tokens != nil)
			}
			if !slices.Contains(w.q.jobs, string(addon.JobProvision)+" "+string(id)) {
				t.Errorf("provision not enqueued: %v", w.q.jobs)
			}
		})
	}
}

// retryGrant runs the grant job again as asynq would after the first one
// timed out: once the first one's lease lapses (its renewals fail).
func (w *world) retryGrant(tb testing.TB, id addon.ID) {
	tb.Helper()
	w.st.failRenew.Store(true)
	defer w.st.failRenew.Store(false)
	deadline := time.Now().Add(wait)
	for {
		err := w.svc.GrantJob(context.Background(), id)
		if !addon.IsBusy(err) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("retried grant job: %v", err)
		}
		<-time.After(addon.RetryAfter(err))
	}
}
