package addon_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/addon/mock"
)

// TestExclusive: one writer per add-on, through the service's own lease
// (writer.go): held while fn runs, released after, refused to a second
// writer.
func TestExclusive(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id := f.add(t)
	fnErr := errors.New("fn failed")
	err := f.svc.Exclusive(ctx, id, 0, func(ctx context.Context, c *addon.Claim) error {
		l := c.Lease()
		if !strings.HasPrefix(l.Owner, "test.1/") || l.AddonID != id {
			t.Errorf("lease %+v, want one owned by this process (test.1/...)", l)
		}
		if a := f.get(t, id); a.LeaseOwner != l.Owner || a.Fence != l.Fence {
			t.Errorf("stored lease %q/%d, want the claim's %q/%d", a.LeaseOwner, a.Fence, l.Owner, l.Fence)
		}
		if c.Addon().ID != id {
			t.Errorf("claim's add-on %s", c.Addon().ID)
		}
		inner := f.svc.Exclusive(ctx, id, 0, func(context.Context, *addon.Claim) error {
			t.Error("a second writer ran")
			return nil
		})
		if !addon.IsBusy(inner) || addon.ErrorCode(inner) != addon.EUNAVAILABLE {
			t.Errorf("a second writer got %v, want busy", inner)
		}
		return fnErr
	})
	if err != fnErr {
		t.Errorf("Exclusive = %v, want fn's error as it is", err)
	}
	f.wantFree(t, id)
	wantCode(t, f.svc.Exclusive(ctx, f.nextID(), 0, func(context.Context, *addon.Claim) error { return nil }), addon.ENOTFOUND)

	// Without Options.Owner, the host names the lease holder.
	host, _ := os.Hostname()
	svc := addon.NewService(addon.Deps{Store: f.store, Queue: f.queue, Platform: f.platform, Driver: f.driver}, addon.Options{})
	if err := svc.Exclusive(ctx, id, 0, func(ctx context.Context, c *addon.Claim) error {
		if owner := c.Lease().Owner; !strings.HasPrefix(owner, host+"/") {
			t.Errorf("lease owner %q, want one starting with the host name %q", owner, host)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestExclusiveWaits: a busy add-on is tried again until wait is over, and
// no longer than the caller's context allows.
func TestExclusiveWaits(t *testing.T) {
	ctx := context.Background()
	t.Run("freed while waiting", func(t *testing.T) {
		f := newFixture(t)
		id := f.add(t)
		other := f.holdLease(t, id)
		var tries atomic.Int32
		f.store.Before = func(op string, _ addon.ID) error {
			if op == "Acquire" && tries.Add(1) == 2 {
				return f.store.Release(ctx, other)
			}
			return nil
		}
		ran := false
		err := f.svc.Exclusive(ctx, id, 5*time.Second, func(context.Context, *addon.Claim) error { ran = true; return nil })
		if err != nil || !ran || tries.Load() != 2 {
			t.Errorf("Exclusive = %v (ran %v, %d tries), want success on the second try", err, ran, tries.Load())
		}
	})
	t.Run("still busy when the wait is over", func(t *testing.T) {
		f := newFixture(t)
		id := f.add(t)
		f.holdLease(t, id)
		start := time.Now()
		err := f.svc.Exclusive(ctx, id, 150*time.Millisecond, func(context.Context, *addon.Claim) error {
			t.Error("ran while another writer held the add-on")
			return nil
		})
		if !addon.IsBusy(err) || addon.RetryAfter(err) <= 0 {
			t.Errorf("Exclusive = %v, want busy with a retry hint", err)
		}
		if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
			t.Errorf("gave up after %v, want about the wait (150ms)", d)
		}
	})
	t.Run("the caller gives up first", func(t *testing.T) {
		f := newFixture(t)
		id := f.add(t)
		f.holdLease(t, id)
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := f.svc.Exclusive(cctx, id, time.Minute, func(context.Context, *addon.Claim) error { return nil })
		if !addon.IsBusy(err) || time.Since(start) > 5*time.Second {
			t.Errorf("Exclusive = %v after %v, want busy as soon as the caller's context ends", err, time.Since(start))
		}
	})
}

// TestExclusiveLeaseTakenOver: the claim renews its lease while fn runs;
// when renewal finds it taken over, fn's context is cancelled with
// LeaseLost and Exclusive says so.
func TestExclusiveLeaseTakenOver(t *testing.T) {
	f := newFixture(t, func(o *addon.Options) { o.LeaseTTL = 30 * time.Millisecond })
	id := f.add(t)
	err := f.svc.Exclusive(context.Background(), id, 0, func(ctx context.Context, c *addon.Claim) error {
		f.advance(time.Minute)
		f.holdLease(t, id)
		lostLease(t, ctx)
		_, rerr := c.Record(ctx, func(a *addon.Addon, now time.Time) error {
			t.Error("recorded under a lost lease")
			return nil
		})
		if !errors.Is(rerr, addon.ErrLeaseLost) {
			t.Errorf("Record = %v, want lease lost", rerr)
		}
		return ctx.Err()
	})
	if !errors.Is(err, addon.ErrLeaseLost) || !errors.Is(err, context.Canceled) {
		t.Errorf("Exclusive = %v, want fn's error and lease lost", err)
	}
	if a := f.get(t, id); a.LeaseOwner != "other-writer" {
		t.Errorf("the new writer's lease was freed: owner %q", a.LeaseOwner)
	}
}

// TestExclusiveRenewal: renewal keeps a long writer's lease; renewals the
// store fails are retried soon, not a lost lease; a release the store
// fails is left to lapse.
func TestExclusiveRenewal(t *testing.T) {
	f := newFixture(t, func(o *addon.Options) { o.LeaseTTL = 300 * time.Millisecond })
	id := f.add(t)
	var renewals atomic.Int32
	f.store.Before = func(op string, _ addon.ID) error {
		switch {
		case op == "Renew" && renewals.Add(1) <= 2:
			return errDown
		case op == "Release":
			return errDown
		}
		return nil
	}
	err := f.svc.Exclusive(context.Background(), id, 0, func(ctx context.Context, c *addon.Claim) error {
		deadline := time.Now().Add(10 * time.Second)
		for renewals.Load() < 4 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if ctx.Err() != nil {
			t.Errorf("work cancelled after failed renewals: %v", context.Cause(ctx))
		}
		_, err := c.Record(ctx, func(a *addon.Addon, now time.Time) error { a.Reason = "recorded"; return nil })
		return err
	})
	if err != nil || renewals.Load() < 4 {
		t.Fatalf("Exclusive = %v after %d renewals", err, renewals.Load())
	}
	if a := f.get(t, id); a.Reason != "recorded" || a.LeaseOwner == "" {
		t.Errorf("reason %q, lease %q: want recorded, the lease left to lapse", a.Reason, a.LeaseOwner)
	}
}

// unrenewable holds Renew until its context ends, as a starved pool or an
// unreachable database would.
type unrenewable struct{ *mock.Store }

func (s unrenewable) Renew(ctx context.Context, l addon.Lease, ttl time.Duration) (addon.Lease, error) {
	<-ctx.Done()
	return l, addon.Errorf(addon.EUNAVAILABLE, "The database did not answer.")
}

// TestExclusiveRenewalFails: a writer that cannot renew its lease for two
// thirds of its life (each renewal failing, or hanging until its own time
// runs out) stops before the lease can lapse and another writer claim the
// add-on: its work's context is cancelled with LeaseLost, so it makes no
// more calls to Heroku or the driver (its records are still fenced).
func TestExclusiveRenewalFails(t *testing.T) {
	tests := []struct {
		name  string
		store func(f *fixture) addon.Store
	}{
		{"renewals fail", func(f *fixture) addon.Store {
			f.failing("Renew", -1)
			return f.store
		}},
		{"renewals hang", func(f *fixture) addon.Store { return unrenewable{f.store} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(o *addon.Options) { o.LeaseTTL = 60 * time.Millisecond })
			f.rebuild(func(d *addon.Deps) { d.Store = tt.store(f) })
			id := f.add(t)
			err := f.svc.Exclusive(context.Background(), id, 0, func(ctx context.Context, c *addon.Claim) error {
				lostLease(t, ctx)
				return ctx.Err()
			})
			if !errors.Is(err, addon.ErrLeaseLost) {
				t.Errorf("Exclusive = %v, want lease lost", err)
			}
		})
	}
}

// TestSaveInHand: something only this process holds is saved with retries
// on transient failures, for a budget, on a context of its own.
func TestSaveInHand(t *testing.T) {
	tests := []struct {
		name     string
		fails    []error // what the attempts return before success
		code     string
		min, max int // how many attempts
	}{
		{"saved at once", nil, "", 1, 1},
		{"transient failures are retried", []error{errDown, errDown}, "", 3, 3},
		{"a refusal is not", []error{errRefused}, addon.EINVALID, 1, 1},
		{"nor a lost lease", []error{addon.LeaseLost("x")}, addon.EUNAVAILABLE, 1, 1},
		{"the budget ends the retries", slices.Repeat([]error{errDown}, 8), addon.EUNAVAILABLE, 2, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(o *addon.Options) { o.InHandBudget = 250 * time.Millisecond })
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // the caller is gone: the save goes on
			tries := 0
			err := f.svc.SaveInHand(ctx, "test", "x", func(ctx context.Context) error {
				tries++
				if tries == 1 && ctx.Err() != nil {
					t.Error("the save runs on the caller's cancelled context")
				}
				if tries <= len(tt.fails) {
					return tt.fails[tries-1]
				}
				return nil
			})
			wantCode(t, err, tt.code)
			if tries < tt.min || tries > tt.max {
				t.Errorf("%d attempts, want %d to %d", tries, tt.min, tt.max)
			}
		})
	}
}
