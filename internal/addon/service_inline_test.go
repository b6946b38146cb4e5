package addon_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// creating makes the driver's Create, logged as the fixture's is, answer
// what fn does (fn may act as another writer while the call is out).
func creating(f *fixture, fn func(ctx context.Context) (addon.Vars, error)) {
	f.driver.CreateFn = func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
		f.called("Create %s %s", short(addon.ID(r.ID)), r.Plan.Slug)
		return fn(ctx)
	}
}

// inline lets slots grant jobs at once go on to provision, each for at
// most budget (0: the default).
func inline(slots int, budget time.Duration) []func(o *addon.Options) {
	return []func(o *addon.Options){inlineSlots(slots), func(o *addon.Options) { o.InlineBudget = budget }}
}

// inlineSlots lets n grant jobs at once go on to provision.
func inlineSlots(n int) func(o *addon.Options) {
	return func(o *addon.Options) { o.InlineProvisions = n }
}

// TestGrantJobInline: with a slot free and the grant exchanged promptly,
// the grant job provisions the add-on it exchanged for under its own
// claim; whatever stops it part way leaves the add-on as recorded for the
// provision job, or fails it as the provision job would.
func TestGrantJobInline(t *testing.T) {
	const (
		exchange  = "ExchangeGrant grant-1"
		create    = "Create #1 basic"
		push      = "SetConfig #1 access-1 KILN_URL=fake://basic"
		mark      = "MarkProvisioned #1 access-1"
		next      = "Enqueue addon:provision #1"
		gotTokens = "step: OAuth grant exchanged"
		created   = "step: resource created by driver fake"
	)
	down := addon.Errorf(addon.EUNAVAILABLE, "Down for a moment.")
	tests := []jobCase{
		{
			name: "a slot is free: provisioned in the grant job", opts: inline(1, 0),
			state:  addon.StateProvisioned,
			calls:  []string{exchange, create, push, mark},
			events: []string{gotTokens, created, "step: config vars pushed", "state provisioned: "},
		},
		{
			name: "no slots: handed on to the provision job", opts: inline(0, 0),
			state:  addon.StateProvisioning,
			calls:  []string{exchange, next},
			events: []string{gotTokens},
		},
		{
			name: "the grant waited in the queue (a burst): handed on", opts: inline(1, 0),
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.advance(addon.InlineWithin + time.Millisecond)
			},
			state:  addon.StateProvisioning,
			calls:  []string{exchange, next},
			events: []string{gotTokens},
		},
		{
			name: "the grant job started just in time: provisioned in it", opts: inline(1, 0),
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.advance(addon.InlineWithin)
			},
			state:  addon.StateProvisioned,
			calls:  []string{exchange, create, push, mark},
			events: []string{gotTokens, created, "step: config vars pushed", "state provisioned: "},
		},
		{
			name: "the driver fails for a moment: handed on", opts: inline(1, 0),
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				creating(f, func(ctx context.Context) (addon.Vars, error) {
					return nil, down
				})
			},
			state:  addon.StateProvisioning,
			calls:  []string{exchange, create, next},
			events: []string{gotTokens},
		},
		{
			name: "the driver refuses for good: failed, as the provision job would", opts: inline(1, 0),
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				creating(f, func(ctx context.Context) (addon.Vars, error) {
					return nil, errRefused
				})
			},
			code:  addon.EINVALID,
			state: addon.StateFailed, reason: "Refused for good.",
			calls:  []string{exchange, create},
			events: []string{gotTokens, "state failed: Refused for good."},
		},
		{
			name: "Heroku refuses the push for a moment: the resource is kept, handed on", opts: inline(1, 0),
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.platform.SetConfigFn = func(ctx context.Context, token string, id addon.ID, vars map[string]*string) error {
					f.called("SetConfig %s %s %s", short(id), token, config(vars))
					return down
				}
			},
			state:  addon.StateProvisioning,
			calls:  []string{exchange, create, push, next},
			events: []string{gotTokens, created},
		},
		{
			name: "Heroku's rate limit: the grant job retries after it, then hands on", opts: inline(1, 0),
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.platform.SetConfigFn = func(ctx context.Context, token string, id addon.ID, vars map[string]*string) error {
					f.called("SetConfig %s %s %s", short(id), token, config(vars))
					return &addon.Error{Code: addon.ERATELIMIT, Message: "Slow down.", RetryAfter: time.Minute}
				}
			},
			code:   addon.ERATELIMIT,
			state:  addon.StateProvisioning,
			calls:  []string{exchange, create, push},
			events: []string{gotTokens, created},
		},
		{
			name: "the budget ends as Heroku takes the provision: recorded all the same", opts: inline(1, time.Millisecond),
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.platform.MarkProvisionedFn = func(ctx context.Context, token string, id addon.ID) error {
					f.called("MarkProvisioned %s %s", short(id), token)
					<-ctx.Done()                // InlineBudget is a millisecond here
					f.store.CheckContext = true // from here on, as Postgres would
					return nil
				}
			},
			state:  addon.StateProvisioned,
			calls:  []string{exchange, create, push, mark},
			events: []string{gotTokens, created, "step: config vars pushed", "state provisioned: "},
		},
		{
			name: "the budget ends while the driver polls (a hint with it): handed on", opts: inline(1, time.Millisecond),
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				creating(f, func(ctx context.Context) (addon.Vars, error) {
					<-ctx.Done() // as the http driver's poll202 answers its budget's end
					return nil, &addon.Error{Code: addon.EUNAVAILABLE, Message: "Still creating.", RetryAfter: 15 * time.Second}
				})
			},
			state:  addon.StateProvisioning,
			calls:  []string{exchange, create, next},
			events: []string{gotTokens},
		},
		{
			name: "the resource outlasts the inline budget: handed on", opts: inline(1, time.Millisecond),
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				creating(f, func(ctx context.Context) (addon.Vars, error) {
					<-ctx.Done() // InlineBudget is a millisecond here
					return nil, ctx.Err()
				})
			},
			state:  addon.StateProvisioning,
			calls:  []string{exchange, create, next},
			events: []string{gotTokens},
		},
		{
			name: "deprovisioned while the resource is made: handed to the deprovision job", opts: inline(1, 0),
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				creating(f, func(ctx context.Context) (addon.Vars, error) {
					f.update(t, id, func(a *addon.Addon) { a.State = addon.StateDeprovisioning })
					return addon.Vars{"URL": "fake://basic"}, nil
				})
			},
			state:  addon.StateDeprovisioning,
			calls:  []string{exchange, create, "Enqueue addon:deprovision #1"},
			events: []string{gotTokens, created},
		},
		{
			// The tokens are saved all the same (outside the fence), but
			// a claim that lost its lease calls the driver no more.
			name: "the lease is taken over during the exchange: nothing made", opts: inline(1, 0),
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				exchanging(f, func() { f.takeOver(t, id) }, nil)
			},
			state:  addon.StateProvisioning,
			calls:  []string{exchange, next},
			events: []string{gotTokens},
			held:   true,
		},
	}
	for i := range tests {
		tests[i].check = func(t *testing.T, a *addon.Addon) {
			if a.Tokens == nil || a.Tokens.Access != "access-1" {
				t.Errorf("tokens %+v, want the exchanged ones saved", a.Tokens)
			}
		}
	}
	runJobCases(t, tests, (*addon.Service).GrantJob)
}

// TestGrantJobInlineSlots: grant jobs provision inline only while a slot
// is free; the others hand on at once, and a finished job frees its slot.
func TestGrantJobInlineSlots(t *testing.T) {
	f := newFixture(t, inlineSlots(1))
	first, second, third := f.add(t), f.add(t), f.add(t)
	inCreate, release := make(chan struct{}), make(chan struct{})
	f.driver.CreateFn = func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
		f.called("Create %s", short(addon.ID(r.ID)))
		if addon.ID(r.ID) == first {
			close(inCreate)
			<-release
		}
		return addon.Vars{"URL": "fake://basic"}, nil
	}
	done := make(chan error, 1)
	go func() { done <- f.svc.GrantJob(context.Background(), first) }()
	<-inCreate // the first holds the only slot
	f.wantCalls(t, "ExchangeGrant grant-1", "Create #1")
	if err := f.svc.GrantJob(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "ExchangeGrant grant-1", "Enqueue addon:provision #2")
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "SetConfig #1 access-1 KILN_URL=fake://basic", "MarkProvisioned #1 access-1")
	if err := f.svc.GrantJob(context.Background(), third); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "ExchangeGrant grant-1", "Create #3", "SetConfig #3 access-1 KILN_URL=fake://basic", "MarkProvisioned #3 access-1")
	f.wantState(t, first, addon.StateProvisioned, "")
	f.wantState(t, second, addon.StateProvisioning, "")
	f.wantState(t, third, addon.StateProvisioned, "")
}

// TestGrantJobInlineCancelled: a grant job whose context ended during the
// exchange saves the tokens and calls nothing more.
func TestGrantJobInlineCancelled(t *testing.T) {
	f := newFixture(t, inlineSlots(1))
	id := f.add(t)
	ctx, cancel := context.WithCancel(context.Background())
	exchanging(f, cancel, nil)
	if err := f.svc.GrantJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "ExchangeGrant grant-1", "Enqueue addon:provision #1")
	if a := f.wantState(t, id, addon.StateProvisioning, ""); a.Tokens == nil {
		t.Error("the tokens were not saved")
	}
	f.wantFree(t, id)
}
