package mock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

// StoreContract checks the parts of the addon.Store contract the service
// relies on for correctness (a duplicate create, an update that fails,
// leases and fences, sign-ins that leave the add-on alone, the listings
// of the reconciler and the outbox), on stores newStore makes (each
// subtest gets an empty one). Store runs it in its own test, and so can
// the Postgres store: a unit test on the in-memory Store is only worth
// what this contract makes it worth.
func StoreContract(t *testing.T, newStore func(t *testing.T) addon.Store) {
	ctx := context.Background()
	// seed stores an add-on in state, changed by mods.
	seed := func(t *testing.T, s addon.Store, state addon.State, mods ...func(a *addon.Addon)) *addon.Addon {
		t.Helper()
		a := &addon.Addon{ID: addon.ID(uuid.NewString()), Name: "acme", Plan: "test", State: state,
			Vars: addon.Vars{"URL": "fake://one"}, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
		for _, m := range mods {
			m(a)
		}
		a.Note(a.CreatedAt, "state", "provision requested")
		stored, created, err := s.Create(ctx, a)
		if err != nil || !created {
			t.Fatalf("Create = %v, %v", created, err)
		}
		return stored
	}
	events := func(t *testing.T, s addon.Store, id addon.ID) []string {
		t.Helper()
		ev, err := s.Events(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ev {
			out = append(out, e.Kind+": "+e.Message)
		}
		return out
	}

	t.Run("Create decides duplicates by id", func(t *testing.T) {
		s := newStore(t)
		first := seed(t, s, addon.StateProvisioning)
		dup := &addon.Addon{ID: first.ID, Name: "other", Plan: "basic", State: addon.StateProvisioning}
		dup.Note(time.Now(), "state", "a second request")
		stored, created, err := s.Create(ctx, dup)
		if err != nil || created || stored.Name != "acme" {
			t.Fatalf("duplicate Create = %+v, %v, %v; want the first add-on, created false", stored, created, err)
		}
		if got := events(t, s, first.ID); len(got) != 1 {
			t.Errorf("events after a duplicate = %q, want only the first add-on's", got)
		}
		if _, err := s.Get(ctx, addon.ID(uuid.NewString())); addon.ErrorCode(err) != addon.ENOTFOUND {
			t.Errorf("Get of an unknown add-on = %v, want not found", err)
		}
	})

	t.Run("Update saves nothing when fn fails", func(t *testing.T) {
		s := newStore(t)
		a := seed(t, s, addon.StateProvisioning)
		refused := errors.New("refused")
		_, err := s.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
			a.Reason = "changed"
			a.Note(time.Now(), "step", "not saved")
			return refused
		})
		if err != refused {
			t.Fatalf("Update = %v, want fn's error as it is", err)
		}
		saved, err := s.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
			if a.Reason != "" {
				t.Errorf("a failed update was saved: reason %q", a.Reason)
			}
			a.Vars["URL"] = "fake://two"
			a.Note(time.Now(), "step", "saved")
			return nil
		})
		if err != nil || saved.Vars["URL"] != "fake://two" || !saved.UpdatedAt.After(a.UpdatedAt) {
			t.Fatalf("Update = %+v, %v", saved, err)
		}
		saved.Vars["URL"] = "changed by the caller"
		if got, _ := s.Get(ctx, a.ID); got.Vars["URL"] != "fake://two" {
			t.Errorf("the caller's copy changed the stored add-on: %q", got.Vars["URL"])
		}
		if got := events(t, s, a.ID); len(got) != 2 || got[1] != "step: saved" {
			t.Errorf("events = %q, want the first and the saved update's", got)
		}
		if _, err := s.Update(ctx, addon.ID(uuid.NewString()), func(context.Context, *addon.Addon) error { return nil }); addon.ErrorCode(err) != addon.ENOTFOUND {
			t.Errorf("Update of an unknown add-on = %v, want not found", err)
		}
	})

	t.Run("leases and fences", func(t *testing.T) {
		s := newStore(t)
		a := seed(t, s, addon.StateProvisioning)
		if _, _, err := s.Acquire(ctx, addon.ID(uuid.NewString()), "w", time.Minute); addon.ErrorCode(err) != addon.ENOTFOUND {
			t.Fatalf("Acquire of an unknown add-on = %v, want not found", err)
		}
		got, first, err := s.Acquire(ctx, a.ID, "first", time.Minute)
		if err != nil || got.ID != a.ID || first.Owner != "first" || first.Until.IsZero() {
			t.Fatalf("Acquire = %+v, %+v, %v", got, first, err)
		}
		if _, _, err := s.Acquire(ctx, a.ID, "second", time.Minute); !addon.IsBusy(err) || addon.RetryAfter(err) <= 0 {
			t.Fatalf("Acquire of a held add-on = %v, want busy with a retry hint", err)
		}
		if first, err = s.Renew(ctx, first, time.Minute); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		if _, err := s.Record(ctx, first, nil, true, func(_ context.Context, a *addon.Addon) error {
			a.Reason = "recorded"
			return nil
		}); err != nil {
			t.Fatalf("Record with release: %v", err)
		}
		if _, err := s.Renew(ctx, first, time.Minute); !errors.Is(err, addon.ErrLeaseLost) {
			t.Errorf("Renew after release = %v, want lease lost", err)
		}
		_, second, err := s.Acquire(ctx, a.ID, "second", 20*time.Millisecond)
		if err != nil || second.Fence <= first.Fence {
			t.Fatalf("Acquire after release = %+v, %v; want a higher fence than %d", second, err, first.Fence)
		}
		time.Sleep(60 * time.Millisecond) // the 20 ms lease lapses
		_, third, err := s.Acquire(ctx, a.ID, "third", time.Minute)
		if err != nil || third.Fence <= second.Fence {
			t.Fatalf("Acquire of a lapsed lease = %+v, %v", third, err)
		}
		called := false
		if _, err := s.Record(ctx, second, nil, false, func(context.Context, *addon.Addon) error { called = true; return nil }); !errors.Is(err, addon.ErrLeaseLost) || called {
			t.Errorf("Record with a stale fence = %v (fn called %v), want lease lost", err, called)
		}
		if err := s.Release(ctx, second); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Acquire(ctx, a.ID, "fourth", time.Minute); !addon.IsBusy(err) {
			t.Errorf("a stale Release freed the current lease: %v", err)
		}
		if _, err := s.Record(ctx, third, nil, false, func(_ context.Context, a *addon.Addon) error {
			a.LeaseOwner, a.Fence = "forged", 99
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, a.ID); got.Reason != "recorded" || got.LeaseOwner != "third" || got.Fence != third.Fence {
			t.Errorf("after Record: reason %q, lease %q/%d; want recorded, third/%d (fn cannot move the lease)", got.Reason, got.LeaseOwner, got.Fence, third.Fence)
		}
	})

	t.Run("Record from what the writer saw", func(t *testing.T) {
		s := newStore(t)
		a := seed(t, s, addon.StateProvisioning)
		claimed, l, err := s.Acquire(ctx, a.ID, "w", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		// The writer is the add-on's only writer: its copy is current.
		runs := 0
		saved, err := s.Record(ctx, l, claimed, false, func(_ context.Context, a *addon.Addon) error {
			runs++
			a.Reason = "one"
			now := time.Now()
			a.Note(now, "step", "first")
			a.Note(now, "step", "second")
			a.Note(now, "step", "third")
			return nil
		})
		if err != nil || saved.Reason != "one" || !saved.UpdatedAt.After(claimed.UpdatedAt) || saved.LeaseOwner != "w" {
			t.Fatalf("Record from a current copy = %+v, %v; want reason one, a later updated_at, lease kept", saved, err)
		}
		if got, want := events(t, s, a.ID), []string{"state: provision requested", "step: first", "step: second", "step: third"}; !slices.Equal(got, want) {
			t.Errorf("events = %q, want %q (in order)", got, want)
		}
		if got, _ := s.Get(ctx, a.ID); got.Reason != "one" || !got.UpdatedAt.Equal(saved.UpdatedAt) {
			t.Errorf("stored = %q at %v, want one at %v (the returned add-on is the stored one)", got.Reason, got.UpdatedAt, saved.UpdatedAt)
		}

		// Someone else (a plain Update: Heroku's plan change) wrote since:
		// the copy is stale, and fn must see the stored add-on, whose
		// change survives.
		if _, err := s.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error { a.PendingPlan = "premium"; return nil }); err != nil {
			t.Fatal(err)
		}
		var sawPending []string
		saved, err = s.Record(ctx, l, saved, false, func(_ context.Context, a *addon.Addon) error {
			sawPending = append(sawPending, a.PendingPlan)
			a.Reason = "two"
			return nil
		})
		if err != nil || saved.Reason != "two" || saved.PendingPlan != "premium" {
			t.Fatalf("Record from a stale copy = %+v, %v; want reason two over the stored pending plan", saved, err)
		}
		if n := len(sawPending); n == 0 || sawPending[n-1] != "premium" {
			t.Errorf("fn saw pending plans %q; its last run must see the stored add-on", sawPending)
		}
		if got, _ := s.Get(ctx, a.ID); got.PendingPlan != "premium" || got.Reason != "two" {
			t.Errorf("stored pending %q reason %q, want premium and two", got.PendingPlan, got.Reason)
		}

		// fn's refusal of the stored add-on is the answer; nothing saved.
		refusal := errors.New("refused")
		if _, err := s.Record(ctx, l, saved, false, func(context.Context, *addon.Addon) error { return refusal }); !errors.Is(err, refusal) {
			t.Errorf("Record whose fn refuses = %v, want fn's error", err)
		}

		// A renewal moves only the lease: the copy is still current, and
		// what Record returns carries the renewed lease, as a read would.
		if l, err = s.Renew(ctx, l, time.Hour); err != nil {
			t.Fatal(err)
		}
		if saved, err = s.Record(ctx, l, saved, false, func(_ context.Context, a *addon.Addon) error { a.Reason = "renewed"; return nil }); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, a.ID); !saved.LeaseUntil.Equal(got.LeaseUntil) || saved.LeaseOwner != got.LeaseOwner || got.Reason != "renewed" {
			t.Errorf("Record after a renewal returned lease %q until %v; stored %q until %v (reason %q)", saved.LeaseOwner, saved.LeaseUntil, got.LeaseOwner, got.LeaseUntil, got.Reason)
		}

		// Release through the copy frees the lease; a copy under a lease
		// taken over saves nothing.
		if saved, err = s.Record(ctx, l, saved, true, func(_ context.Context, a *addon.Addon) error { a.Reason = "three"; return nil }); err != nil || saved.LeaseOwner != "" {
			t.Fatalf("Record with release = %+v, %v; want the lease freed", saved, err)
		}
		_, next, err := s.Acquire(ctx, a.ID, "next", time.Minute)
		if err != nil {
			t.Fatalf("Acquire after a release through the copy: %v", err)
		}
		if _, err := s.Record(ctx, l, saved, false, func(_ context.Context, a *addon.Addon) error { a.Reason = "stale"; return nil }); !errors.Is(err, addon.ErrLeaseLost) {
			t.Errorf("Record under a lease taken over = %v, want lease lost", err)
		}
		if got, _ := s.Get(ctx, a.ID); got.Reason != "three" || got.LeaseOwner != "next" || got.Fence != next.Fence {
			t.Errorf("stored reason %q lease %q/%d, want three and next/%d", got.Reason, got.LeaseOwner, got.Fence, next.Fence)
		}
	})

	t.Run("AcquireExchange marks the exchange's start once", func(t *testing.T) {
		s := newStore(t)
		grant := &addon.Addon{ID: addon.ID(uuid.NewString()), Name: "acme", Plan: "test", State: addon.StateProvisioning,
			Grant: &addon.Grant{Code: "code", ExpiresAt: time.Now().Add(5 * time.Minute)}, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
		created, _, err := s.Create(ctx, grant)
		if err != nil {
			t.Fatal(err)
		}
		a, l, started, err := s.AcquireExchange(ctx, created.ID, "w", time.Minute)
		if err != nil || !started || a.ExchangeStartedAt.IsZero() || !a.UpdatedAt.After(created.UpdatedAt) || l.Owner != "w" {
			t.Fatalf("first AcquireExchange = %+v, started %v, %v; want the start marked, updated_at moved, the lease held", a, started, err)
		}
		if got, _ := s.Get(ctx, a.ID); !got.ExchangeStartedAt.Equal(a.ExchangeStartedAt) || !got.UpdatedAt.Equal(a.UpdatedAt) {
			t.Errorf("stored start %v updated %v; want what the claim returned, %v and %v", got.ExchangeStartedAt, got.UpdatedAt, a.ExchangeStartedAt, a.UpdatedAt)
		}
		// The claim's copy is the row: a record from it is the one-statement
		// kind (fn runs once, on the copy), and fn sees the mark.
		runs := 0
		saved, err := s.Record(ctx, l, a, true, func(_ context.Context, b *addon.Addon) error {
			runs++
			if b.ExchangeStartedAt.IsZero() {
				return errors.New("the mark is missing")
			}
			b.Reason = "recorded"
			return nil
		})
		if err != nil || saved.Reason != "recorded" || runs != 1 {
			t.Fatalf("Record after AcquireExchange = %+v, %v (fn ran %d times, want once)", saved, err, runs)
		}
		again, _, started, err := s.AcquireExchange(ctx, a.ID, "w2", time.Minute)
		if err != nil || started || !again.ExchangeStartedAt.Equal(a.ExchangeStartedAt) || !again.UpdatedAt.Equal(saved.UpdatedAt) {
			t.Errorf("second AcquireExchange = start %v updated %v, started %v, %v; want the first start kept, nothing written, started false",
				again.ExchangeStartedAt, again.UpdatedAt, started, err)
		}

		// A mark cleared (a definite refusal ends the attempt) is set again
		// by the next claim, which then started it.
		if _, err := s.Update(ctx, a.ID, func(_ context.Context, b *addon.Addon) error { b.ExchangeStartedAt = time.Time{}; return nil }); err != nil {
			t.Fatal(err)
		}
		cleared, _ := s.Get(ctx, a.ID)
		if err := s.Release(ctx, addon.Lease{AddonID: a.ID, Fence: cleared.Fence}); err != nil {
			t.Fatal(err)
		}
		if re, _, started, err := s.AcquireExchange(ctx, a.ID, "w3", time.Minute); err != nil || !started || re.ExchangeStartedAt.IsZero() || !re.UpdatedAt.After(cleared.UpdatedAt) {
			t.Errorf("AcquireExchange after the mark was cleared = start %v, started %v, %v; want it marked again", re.ExchangeStartedAt, started, err)
		}

		// An add-on that owes no exchange is claimed unmarked.
		plain := seed(t, s, addon.StateProvisioning) // no grant
		b, _, started, err := s.AcquireExchange(ctx, plain.ID, "w", time.Minute)
		if err != nil || started || !b.ExchangeStartedAt.IsZero() || !b.UpdatedAt.Equal(plain.UpdatedAt) {
			t.Errorf("AcquireExchange without a grant = start %v updated %v, started %v, %v; want no mark", b.ExchangeStartedAt, b.UpdatedAt, started, err)
		}
		if _, _, _, err := s.AcquireExchange(ctx, plain.ID, "other", time.Minute); !addon.IsBusy(err) {
			t.Errorf("AcquireExchange of a held add-on = %v, want busy", err)
		}
	})

	t.Run("sign-ins leave the add-on alone", func(t *testing.T) {
		s := newStore(t)
		a := seed(t, s, addon.StateProvisioned)
		if err := s.RecordSignIn(ctx, a.ID, time.Now(), "signed in"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, a.ID); !got.UpdatedAt.Equal(a.UpdatedAt) {
			t.Errorf("a sign-in moved updated_at from %v to %v", a.UpdatedAt, got.UpdatedAt)
		}
		if got := events(t, s, a.ID); len(got) != 2 || got[1] != "sso: signed in" {
			t.Errorf("events = %q", got)
		}
		gone := seed(t, s, addon.StateDeprovisioning)
		if err := s.RecordSignIn(ctx, gone.ID, time.Now(), "signed in"); addon.ErrorCode(err) != addon.EFORBIDDEN {
			t.Errorf("sign-in to a deprovisioning add-on = %v, want forbidden", err)
		}
	})

	// The reconciler enqueues a.NextJob() for what Stale lists, and the
	// Postgres store states that rule again in SQL (an indexed WHERE): both
	// must list exactly the add-ons NextJob owes a job.
	t.Run("Stale lists exactly what Addon.NextJob owes a job", func(t *testing.T) {
		s := newStore(t)
		exchanged := time.Now().UTC().Truncate(time.Microsecond)
		tokens := &addon.Tokens{Access: "access", Refresh: "refresh", ExpiresAt: exchanged.Add(time.Hour)}
		grant := &addon.Grant{Code: "code", ExpiresAt: exchanged.Add(5 * time.Minute)}
		type shape struct {
			state   addon.State
			grant   bool
			tokens  bool
			pushed  bool
			pending string
			halted  addon.JobKind
		}
		var shapes []shape
		for _, st := range []addon.State{addon.StateProvisioning, addon.StateProvisioned, addon.StateDeprovisioning, addon.StateDeprovisioned, addon.StateFailed} {
			for _, grant := range []bool{false, true} {
				for _, tok := range []bool{false, true} {
					for _, pushed := range []bool{false, true} {
						for _, pending := range []string{"", "pro"} {
							for _, halted := range []addon.JobKind{"", addon.JobPlanChange, addon.JobPushConfig} {
								shapes = append(shapes, shape{st, grant, tok, pushed, pending, halted})
							}
						}
					}
				}
			}
		}
		owed := map[addon.ID]shape{}
		all := map[addon.ID]shape{}
		for _, sh := range shapes {
			a := &addon.Addon{ID: addon.ID(uuid.NewString()), Name: "acme", Plan: "test", State: sh.state,
				PendingPlan: sh.pending, Halted: sh.halted, CreatedAt: exchanged}
			if sh.halted != "" {
				a.HaltReason = "refused"
			}
			if sh.grant {
				a.Grant = grant
			}
			if sh.tokens {
				a.Tokens, a.GrantExchangedAt = tokens, exchanged
			}
			if sh.pushed {
				a.ConfigPushedAt = exchanged
			}
			stored, _, err := s.Create(ctx, a)
			if err != nil {
				t.Fatalf("Create %+v: %v", sh, err)
			}
			all[stored.ID] = sh
			if _, ok := stored.NextJob(); ok {
				owed[stored.ID] = sh
			}
		}
		stale, err := s.Stale(ctx, time.Now().Add(time.Hour), addon.StaleFrom{}, len(shapes)+1)
		if err != nil {
			t.Fatal(err)
		}
		listed := map[addon.ID]bool{}
		for _, a := range stale {
			listed[a.ID] = true
			if _, ok := owed[a.ID]; !ok {
				t.Errorf("Stale lists %+v, which Addon.NextJob owes nothing", all[a.ID])
			}
		}
		for id, sh := range owed {
			if !listed[id] {
				t.Errorf("Stale misses %+v, which Addon.NextJob owes a job", sh)
			}
		}
		// Page by page, each from after the last of the one before, the
		// same add-ons in the same order.
		var paged []*addon.Addon
		var from addon.StaleFrom
		for range len(shapes) + 1 {
			page, err := s.Stale(ctx, time.Now().Add(time.Hour), from, 2)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, page...)
			if len(page) < 2 {
				break
			}
			from = addon.StaleFrom{UpdatedAt: page[1].UpdatedAt, ID: page[1].ID}
		}
		if fmt.Sprint(ids(paged)) != fmt.Sprint(ids(stale)) {
			t.Errorf("Stale in pages of 2 = %v, want %v", ids(paged), ids(stale))
		}
	})

	t.Run("listings for the reconciler and the outbox", func(t *testing.T) {
		s := newStore(t)
		working := seed(t, s, addon.StateProvisioning)
		seed(t, s, addon.StateProvisioned) // nothing left to do
		leased := seed(t, s, addon.StateDeprovisioning)
		if _, _, err := s.Acquire(ctx, leased.ID, "w", time.Minute); err != nil {
			t.Fatal(err)
		}
		flagged, err := s.Update(ctx, working.ID, func(_ context.Context, a *addon.Addon) error { a.Requeue = true; return nil })
		if err != nil {
			t.Fatal(err)
		}
		stale, err := s.Stale(ctx, time.Now().Add(time.Hour), addon.StaleFrom{}, 10)
		if err != nil || len(stale) != 1 || stale[0].ID != working.ID {
			t.Errorf("Stale = %v, %v; want only the unleased add-on with work left", ids(stale), err)
		}
		if stale, _ := s.Stale(ctx, flagged.UpdatedAt, addon.StaleFrom{}, 10); len(stale) != 0 {
			t.Errorf("Stale before its last update = %v, want none", ids(stale))
		}
		if req, err := s.Requeued(ctx, 10); err != nil || len(req) != 1 || req[0].ID != working.ID {
			t.Errorf("Requeued = %v, %v", ids(req), err)
		}
		counts, err := s.CountByState(ctx)
		if err != nil || counts[addon.StateProvisioning] != 1 || counts[addon.StateProvisioned] != 1 || counts[addon.StateDeprovisioning] != 1 {
			t.Errorf("CountByState = %v, %v", counts, err)
		}
	})

	t.Run("Leftovers lists failed add-ons that may hold a resource, or hold tokens, by request", func(t *testing.T) {
		s := newStore(t)
		now := time.Now()
		withResource := func(a *addon.Addon) { a.Vars, a.ResourceCreatedAt = addon.Vars{"URL": "fake://one"}, a.CreatedAt }
		withTokens := func(a *addon.Addon) { a.Tokens = &addon.Tokens{Access: "a", Refresh: "r"} }
		lostGrant := func(a *addon.Addon) { a.Grant = &addon.Grant{Code: "g", ExpiresAt: a.CreatedAt.Add(5 * time.Minute)} }
		noGrant := func(*addon.Addon) {} // a failed request's clean-up may have failed too
		requested := func(ago time.Duration) func(a *addon.Addon) {
			return func(a *addon.Addon) { a.CreatedAt = now.Add(-ago).UTC().Truncate(time.Microsecond) }
		}
		third := seed(t, s, addon.StateFailed, requested(12*time.Hour+time.Minute), noGrant)
		second := seed(t, s, addon.StateFailed, requested(13*time.Hour), withTokens)
		first := seed(t, s, addon.StateFailed, requested(14*time.Hour), withResource)
		seed(t, s, addon.StateFailed, requested(14*time.Hour), lostGrant)                     // nothing was made
		seed(t, s, addon.StateFailed, requested(time.Hour), withResource)                     // requested too recently
		seed(t, s, addon.StateProvisioned, requested(14*time.Hour), withResource, withTokens) // not failed
		got, err := s.Leftovers(ctx, now.Add(-12*time.Hour), 10)
		if want := []addon.ID{first.ID, second.ID, third.ID}; err != nil || fmt.Sprint(ids(got)) != fmt.Sprint(want) {
			t.Errorf("Leftovers = %v, %v; want %v, oldest request first", ids(got), err, want)
		}
		if got, _ := s.Leftovers(ctx, now.Add(-12*time.Hour), 1); len(got) != 1 || got[0].ID != first.ID {
			t.Errorf("Leftovers limited to 1 = %v, want the oldest", ids(got))
		}
	})
}

func ids(as []*addon.Addon) []addon.ID {
	out := make([]addon.ID, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

// LinksContract checks the parts of the addon.LinkStore contract the
// keeper relies on, on link stores newStores makes beside the store their
// add-ons live in (each subtest gets empty ones): an unknown add-on has no
// Link, a failed update saves nothing, a webhook event applies once, the
// sync and log listings find what is due, and the log cursor reads the
// events past it and only ever moves forward.
func LinksContract(t *testing.T, newStores func(t *testing.T) (addon.Store, addon.LinkStore)) {
	ctx := context.Background()
	seed := func(t *testing.T, s addon.Store) *addon.Addon {
		t.Helper()
		a := &addon.Addon{ID: addon.ID(uuid.NewString()), Name: "acme", Plan: "test", State: addon.StateProvisioned,
			Tokens: &addon.Tokens{Access: "a", Refresh: "r"}, LogInputURL: "https://logs.example/1"}
		a.Note(time.Now(), "state", "provision requested")
		stored, _, err := s.Create(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}

	t.Run("Links belong to add-ons and save nothing when fn fails", func(t *testing.T) {
		s, links := newStores(t)
		a := seed(t, s)
		if _, err := links.Link(ctx, addon.ID(uuid.NewString())); addon.ErrorCode(err) != addon.ENOTFOUND {
			t.Errorf("Link of an unknown add-on = %v, want not found", err)
		}
		if _, err := links.UpdateLink(ctx, addon.ID(uuid.NewString()), func(*addon.Link) error { return nil }); addon.ErrorCode(err) != addon.ENOTFOUND {
			t.Errorf("UpdateLink of an unknown add-on = %v, want not found", err)
		}
		if l, err := links.Link(ctx, a.ID); err != nil || l.AddonID != a.ID || l.AppName != "" {
			t.Fatalf("Link before any update = %+v, %v; want a zero Link", l, err)
		}
		refused := addon.Errorf(addon.EINVALID, "refused")
		if _, err := links.UpdateLink(ctx, a.ID, func(l *addon.Link) error { l.AppName = "lost"; return refused }); err != refused {
			t.Errorf("UpdateLink = %v, want fn's error", err)
		}
		if _, err := links.UpdateLink(ctx, a.ID, func(l *addon.Link) error {
			if l.AppName != "" {
				t.Errorf("a failed update was saved: %q", l.AppName)
			}
			l.AppName, l.RetiredVars = "app", addon.Vars{"URL": "old"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		got, err := links.Links(ctx, []addon.ID{a.ID, addon.ID(uuid.NewString())})
		if err != nil || len(got) != 1 || got[a.ID].AppName != "app" || got[a.ID].RetiredVars["URL"] != "old" {
			t.Errorf("Links = %v, %v", got, err)
		}
	})

	t.Run("a webhook event applies once", func(t *testing.T) {
		s, links := newStores(t)
		a := seed(t, s)
		n := 0
		for range 2 {
			if _, err := links.ApplyEvent(ctx, a.ID, uuid.NewString(), func(l *addon.Link) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		event := uuid.NewString()
		first, err1 := links.ApplyEvent(ctx, a.ID, event, func(l *addon.Link) error { l.AppName = "renamed"; return nil })
		again, err2 := links.ApplyEvent(ctx, a.ID, event, func(l *addon.Link) error { t.Error("applied twice"); return nil })
		if err1 != nil || err2 != nil || !first || again {
			t.Errorf("ApplyEvent = %v, %v then %v, %v; want applied once", first, err1, again, err2)
		}
		if n != 2 {
			t.Errorf("two distinct events applied %d times", n)
		}
	})

	t.Run("what is due", func(t *testing.T) {
		s, links := newStores(t)
		fresh := seed(t, s)
		later := seed(t, s)
		now := time.Now().UTC()
		if _, err := links.UpdateLink(ctx, later.ID, func(l *addon.Link) error {
			l.NextSyncAt, l.RetireAt = now.Add(time.Hour), now.Add(-time.Minute)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if due, err := links.DueForSync(ctx, now, 10); err != nil || len(due) != 1 || due[0] != fresh.ID {
			t.Errorf("DueForSync = %v, %v; want only the add-on without a sync slot", due, err)
		}
		if due, err := links.DueForRetire(ctx, now, 10); err != nil || len(due) != 1 || due[0] != later.ID {
			t.Errorf("DueForRetire = %v, %v", due, err)
		}
		ev, err := links.EventsToLog(ctx, fresh.ID, 10)
		if err != nil || len(ev) != 1 {
			t.Fatalf("EventsToLog = %v, %v", ev, err)
		}
		if err := links.AdvanceLogCursor(ctx, fresh.ID, ev[0].ID); err != nil {
			t.Fatal(err)
		}
		if ids, err := links.LogBacklog(ctx, now.Add(-time.Hour), now, 10); err != nil || len(ids) != 1 || ids[0] != later.ID {
			t.Errorf("LogBacklog = %v, %v; want only the add-on whose events were not written", ids, err)
		}
		if ids, err := links.LogBacklog(ctx, now.Add(-time.Hour), now.Add(-time.Minute), 10); err != nil || len(ids) != 0 {
			t.Errorf("LogBacklog until a minute ago = %v, %v; want none: the events are newer", ids, err)
		}
	})

	t.Run("the log cursor: events past it in one read, advanced in one write, never back", func(t *testing.T) {
		s, links := newStores(t)
		a := seed(t, s)
		if _, err := s.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
			for _, m := range []string{"one", "two", "three"} {
				a.Note(time.Now(), "step", m)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		messages := func(t *testing.T, limit int) []string {
			t.Helper()
			ev, err := links.EventsToLog(ctx, a.ID, limit)
			if err != nil {
				t.Fatal(err)
			}
			out := []string{}
			for i, e := range ev {
				if i > 0 && e.ID <= ev[i-1].ID {
					t.Errorf("event ids not increasing: %d after %d", e.ID, ev[i-1].ID)
				}
				out = append(out, e.Message)
			}
			return out
		}
		all, err := links.EventsToLog(ctx, a.ID, 10)
		if err != nil || len(all) != 4 {
			t.Fatalf("EventsToLog without a Link = %v, %v; want all four events", all, err)
		}
		if _, err := links.UpdateLink(ctx, a.ID, func(l *addon.Link) error { l.AppName = "app"; return nil }); err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			name    string
			advance int64 // 0: none
			limit   int
			cursor  int64
			want    string
		}{
			{"from the start, limited", 0, 2, 0, "[provision requested one]"},
			{"advanced past the second", all[1].ID, 10, all[1].ID, "[two three]"},
			{"never back", all[0].ID, 10, all[1].ID, "[two three]"},
			{"the same again", all[1].ID, 10, all[1].ID, "[two three]"},
			{"to the last", all[3].ID, 10, all[3].ID, "[]"},
		}
		for _, st := range steps {
			if st.advance != 0 {
				if err := links.AdvanceLogCursor(ctx, a.ID, st.advance); err != nil {
					t.Fatalf("%s: AdvanceLogCursor: %v", st.name, err)
				}
			}
			if got := fmt.Sprint(messages(t, st.limit)); got != st.want {
				t.Errorf("%s: EventsToLog = %s, want %s", st.name, got, st.want)
			}
			l, err := links.Link(ctx, a.ID)
			if err != nil || l.LogCursor != st.cursor || l.AppName != "app" {
				t.Errorf("%s: Link = %+v, %v; want cursor %d and the rest kept", st.name, l, err, st.cursor)
			}
		}

		unknown := addon.ID(uuid.NewString())
		if err := links.AdvanceLogCursor(ctx, unknown, 1); addon.ErrorCode(err) != addon.ENOTFOUND {
			t.Errorf("AdvanceLogCursor of an unknown add-on = %v, want not found", err)
		}
		if ev, err := links.EventsToLog(ctx, unknown, 10); err != nil || len(ev) != 0 {
			t.Errorf("EventsToLog of an unknown add-on = %v, %v; want none", ev, err)
		}
	})

	t.Run("the log cursor starts a Link", func(t *testing.T) {
		s, links := newStores(t)
		a := seed(t, s)
		ev, err := links.EventsToLog(ctx, a.ID, 10)
		if err != nil || len(ev) != 1 {
			t.Fatalf("EventsToLog = %v, %v", ev, err)
		}
		if err := links.AdvanceLogCursor(ctx, a.ID, ev[0].ID); err != nil {
			t.Fatal(err)
		}
		if got, err := links.Links(ctx, []addon.ID{a.ID}); err != nil || got[a.ID] == nil || got[a.ID].LogCursor != ev[0].ID {
			t.Errorf("Links after the first advance = %v, %v; want a Link with the cursor", got, err)
		}
	})
}
