package addon_test

import (
	"context"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestKeeperDeprovisionJob: with asynchronous deprovisioning, a deprovision
// Heroku asked for ends by telling Heroku (actions/deprovision) once the
// resource is gone; any other goes as it would without it.
func TestKeeperDeprovisionJob(t *testing.T) {
	const (
		destroy = "Destroy #1 basic"
		mark    = "MarkDeprovisioned #1 access-1"
		done    = "state deprovisioned: resource destroyed"
	)
	asked := inState(addon.StateDeprovisioning, "deprovision requested by Heroku")
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		setup  func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID)
		code   string
		state  addon.State
		marked bool // the Link records Heroku was told
		calls  []string
	}{
		{
			name:  "Heroku asked: destroyed, Heroku told, recorded",
			shape: []func(a *addon.Addon){provisioned, asked},
			state: addon.StateDeprovisioned, marked: true,
			calls: []string{destroy, mark, destroy},
		},
		{
			name:  "Heroku was told before a crash: not told again",
			shape: []func(a *addon.Addon){provisioned, asked},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.MarkedDeprovisionedAt = t0 })
			},
			state: addon.StateDeprovisioned, marked: true,
			calls: []string{destroy},
		},
		{
			name:  "asynchronous deprovisioning is off",
			shape: []func(a *addon.Addon){provisioned, asked},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) { k.AsyncDeprovision = false },
			state: addon.StateDeprovisioned,
			calls: []string{destroy},
		},
		{
			name:  "removed on Heroku: Heroku is not told",
			shape: []func(a *addon.Addon){provisioned, inState(addon.StateDeprovisioning, addon.ReasonRemovedOnHeroku)},
			state: addon.StateDeprovisioned,
			calls: []string{destroy},
		},
		{
			name:  "forced by an operator: Heroku is not told",
			shape: []func(a *addon.Addon){provisioned, inState(addon.StateDeprovisioning, addon.ForcedPrefix+": abuse")},
			state: addon.StateDeprovisioned,
			calls: []string{destroy},
		},
		{
			name:  "without Platform API access Heroku cannot be told",
			shape: []func(a *addon.Addon){provisioned, asked, func(a *addon.Addon) { a.Tokens = nil }},
			state: addon.StateDeprovisioned,
			calls: []string{destroy},
		},
		{
			name:  "not deprovisioning",
			shape: []func(a *addon.Addon){provisioned},
			state: addon.StateProvisioned,
		},
		{
			name:  "Heroku is down: retried",
			shape: []func(a *addon.Addon){provisioned, asked},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.platform.MarkDeprovisionedFn = func(ctx context.Context, token string, id addon.ID) error {
					f.called("MarkDeprovisioned %s %s", short(id), token)
					return addon.Errorf(addon.EUNAVAILABLE, "Down.")
				}
			},
			code: addon.EUNAVAILABLE, state: addon.StateDeprovisioning,
			calls: []string{destroy, mark},
		},
		{
			name:  "Heroku refuses (it finished already): recorded all the same",
			shape: []func(a *addon.Addon){provisioned, asked},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.platform.MarkDeprovisionedFn = func(ctx context.Context, token string, id addon.ID) error {
					f.called("MarkDeprovisioned %s %s", short(id), token)
					return addon.Errorf(addon.EGONE, "Gone.")
				}
			},
			state: addon.StateDeprovisioned, marked: true,
			calls: []string{destroy, mark, destroy},
		},
		{
			name:  "the resource cannot be destroyed: Heroku is not told",
			shape: []func(a *addon.Addon){provisioned, asked},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.driver.DestroyFn = func(context.Context, addon.Resource) error { f.called("Destroy"); return errRefused }
			},
			code: addon.EINTERNAL, state: addon.StateDeprovisioning,
			calls: []string{"Destroy"},
		},
		{
			name:  "another writer holds it",
			shape: []func(a *addon.Addon){provisioned, asked},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) { f.holdLease(t, id) },
			code:  addon.EUNAVAILABLE, state: addon.StateDeprovisioning,
		},
		{
			name:  "deprovisioned by the time the claim is taken",
			shape: []func(a *addon.Addon){provisioned, asked},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				once(f, "Acquire", func() {
					f.update(t, id, func(a *addon.Addon) { a.State, a.Tokens = addon.StateDeprovisioned, nil })
				})
			},
			state: addon.StateDeprovisioned, marked: false,
		},
		{
			name:  "the link cannot be read",
			shape: []func(a *addon.Addon){provisioned, asked},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.links.Before = func(string, addon.ID) error { return errDown }
			},
			code: addon.EUNAVAILABLE, state: addon.StateDeprovisioning,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, k, id := arrangeKeeper(t, tt.shape, tt.setup, func(k *addon.Keeper) { k.AsyncDeprovision = true })
			wantCode(t, k.DeprovisionJob(context.Background(), id), tt.code)
			f.store.Before, f.links.Before = nil, nil
			if a := f.get(t, id); a.State != tt.state {
				t.Errorf("state %s, want %s", a.State, tt.state)
			}
			if marked := !f.link(t, id).MarkedDeprovisionedAt.IsZero(); marked != tt.marked {
				t.Errorf("Heroku told %v, want %v", marked, tt.marked)
			}
			f.wantCalls(t, tt.calls...)
			if tt.state == addon.StateDeprovisioned && tt.calls != nil {
				f.wantEvents(t, id, done)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		f := newFixture(t)
		k := f.keeper(func(k *addon.Keeper) { k.AsyncDeprovision = true })
		wantCode(t, k.DeprovisionJob(context.Background(), f.nextID()), addon.ENOTFOUND)
	})
}

// TestKeeperTellsHeroku: Heroku's DELETE is answered 202 only when Kiln
// can finish it with actions/deprovision.
func TestKeeperTellsHeroku(t *testing.T) {
	tests := []struct {
		name  string
		async bool
		shape []func(a *addon.Addon)
		known bool
		want  bool
	}{
		{"asynchronous, with Platform API access", true, []func(a *addon.Addon){provisioned}, true, true},
		{"asynchronous, without", true, []func(a *addon.Addon){synchronous}, true, false},
		{"asynchronous, an unknown add-on", true, nil, false, false},
		{"synchronous", false, []func(a *addon.Addon){provisioned}, true, false},
		{"asynchronous, deprovisioning at Heroku's request", true,
			[]func(a *addon.Addon){provisioned, inState(addon.StateDeprovisioning, "deprovision requested by Heroku")}, true, true},
		{"asynchronous, an operator forcing it out already", true,
			[]func(a *addon.Addon){provisioned, inState(addon.StateDeprovisioning, addon.ForcedPrefix+": test")}, true, false},
		{"asynchronous, removed on Heroku already", true,
			[]func(a *addon.Addon){provisioned, inState(addon.StateDeprovisioning, addon.ReasonRemovedOnHeroku)}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			k := f.keeper(func(k *addon.Keeper) { k.AsyncDeprovision = tt.async })
			id := f.nextID()
			if tt.known {
				id = f.add(t, tt.shape...)
			}
			if got := k.TellsHeroku(context.Background(), id); got != tt.want {
				t.Errorf("TellsHeroku = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDeprovisionDuringTheExchange: Heroku's DELETE is recorded while the
// grant is being exchanged, with no tokens held yet. The tokens the
// exchange then brings are not kept, so Heroku's answer (asked after the
// record) is the synchronous 204, as the deprovision job's choice not to
// call actions/deprovision is: a 202 would leave Heroku waiting for a
// "done" that never comes.
func TestDeprovisionDuringTheExchange(t *testing.T) {
	f := newFixture(t)
	k := f.keeper(func(k *addon.Keeper) { k.AsyncDeprovision = true })
	id := f.add(t)
	ctx := context.Background()
	exchanging(f, func() {
		if err := f.svc.Deprovision(ctx, id); err != nil {
			t.Error(err)
		}
	}, nil)
	if err := f.svc.GrantJob(ctx, id); err != nil {
		t.Fatalf("GrantJob = %v", err)
	}
	if a := f.get(t, id); a.Tokens != nil || a.Grant != nil || a.State != addon.StateDeprovisioning {
		t.Errorf("state %s, tokens %v, grant %v; want deprovisioning with neither", a.State, a.Tokens, a.Grant)
	}
	if k.TellsHeroku(ctx, id) {
		t.Error("Heroku's DELETE would be answered 202")
	}
	if err := k.DeprovisionJob(ctx, id); err != nil {
		t.Fatalf("DeprovisionJob = %v", err)
	}
	f.wantState(t, id, addon.StateDeprovisioned, "resource destroyed")
	if !f.link(t, id).MarkedDeprovisionedAt.IsZero() {
		t.Error("Heroku was told of a deprovision answered 204")
	}
}
