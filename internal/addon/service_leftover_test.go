package addon_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/addon/mock"
)

// TestRemoveLeftover: a failed add-on that Heroku removed at its 12-hour
// limit and that may still hold a resource, or holds tokens, is
// deprovisioned (the deprovision job destroys the resource and drops the
// tokens); anything else is left as it is, a lost grant's failure
// included, which operators alert on. With tokens and a recorded resource
// Heroku is asked first: one it has provisioned after all is kept.
func TestRemoveLeftover(t *testing.T) {
	failed := inState(addon.StateFailed, "boom")
	removed := []string{
		"removed: failed (boom) and not provisioned within 12 hours of Heroku's request, so Heroku removed it; what it holds goes",
		"state deprovisioning: " + addon.ReasonRemovedOnHeroku,
	}
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		after  time.Duration // from the request
		heroku func(ctx context.Context, token string, id addon.ID) (addon.HerokuAddon, error)
		listed bool // by Leftovers
		code   string
		state  addon.State
		reason string
		asked  bool
		events []string
	}{
		{"a resource and tokens, a second past the limit", []func(a *addon.Addon){exchanged, withResource, failed}, addon.HerokuLimit + time.Second, herokuSays("provisioning", nil), true, "",
			addon.StateDeprovisioning, addon.ReasonRemovedOnHeroku, true, removed},
		{"Heroku answers 404", []func(a *addon.Addon){exchanged, withResource, failed}, 13 * time.Hour, herokuSays("", addon.NotFound(addon.ID("x"))), true, "",
			addon.StateDeprovisioning, addon.ReasonRemovedOnHeroku, true, removed},
		{"tokens only (the resource refused): nothing Heroku could have marked", []func(a *addon.Addon){exchanged, failed}, 13 * time.Hour, nil, true, "",
			addon.StateDeprovisioning, addon.ReasonRemovedOnHeroku, false, removed},
		{"a resource, no tokens", []func(a *addon.Addon){withResource, failed}, 13 * time.Hour, nil, true, "",
			addon.StateDeprovisioning, addon.ReasonRemovedOnHeroku, false, removed},
		{"no grant (a failed request whose clean-up may have failed)", []func(a *addon.Addon){synchronous, failed}, 13 * time.Hour, nil, true, "",
			addon.StateDeprovisioning, addon.ReasonRemovedOnHeroku, false, removed},
		{"Heroku has it provisioned after all: recorded so, kept", []func(a *addon.Addon){exchanged, withResource, failed}, 13 * time.Hour, herokuSays("provisioned", nil), true, "",
			addon.StateProvisioned, "Heroku has it provisioned", true, []string{
				"heroku: failed (boom), but Heroku has it provisioned", "state provisioning: Heroku has it provisioned", "state provisioned: "}},
		{"Heroku unreachable: kept until the next sweep", []func(a *addon.Addon){exchanged, withResource, failed}, 13 * time.Hour, herokuSays("", errDown), true, addon.EUNAVAILABLE,
			addon.StateFailed, "boom", true, nil},
		{"a resource and tokens, at the limit", []func(a *addon.Addon){exchanged, withResource, failed}, addon.HerokuLimit, nil, false, "",
			addon.StateFailed, "boom", false, nil},
		{"a lost grant: nothing was made", []func(a *addon.Addon){inState(addon.StateFailed, addon.GrantLostReason)}, 13 * time.Hour, nil, false, "",
			addon.StateFailed, addon.GrantLostReason, false, nil},
		{"provisioned", []func(a *addon.Addon){provisioned}, 13 * time.Hour, nil, false, "",
			addon.StateProvisioned, "", false, nil},
		{"still provisioning", []func(a *addon.Addon){exchanged, withResource}, 13 * time.Hour, nil, false, "",
			addon.StateProvisioning, "", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			asked := false
			f.asking(&mock.Watcher{GetAddonFn: func(ctx context.Context, token string, id addon.ID) (addon.HerokuAddon, error) {
				asked = true
				if tt.heroku == nil {
					t.Fatal("Heroku asked about an add-on it cannot have marked provisioned")
				}
				return tt.heroku(ctx, token, id)
			}})
			id := f.add(t, tt.shape...)
			f.advance(tt.after)
			left, err := f.svc.Leftovers(ctx, 10)
			if err != nil || (len(left) == 1 && left[0].ID == id) != tt.listed || len(left) > 1 {
				t.Errorf("Leftovers = %d add-ons, %v; want listed %v", len(left), err, tt.listed)
			}
			moved, err := f.svc.RemoveLeftover(ctx, id)
			wantCode(t, err, tt.code)
			if want := tt.state == addon.StateDeprovisioning; moved != want {
				t.Errorf("moved %v, want %v", moved, want)
			}
			if asked != tt.asked {
				t.Errorf("Heroku asked %v, want %v", asked, tt.asked)
			}
			f.wantState(t, id, tt.state, tt.reason)
			// Twelve hours on, the tokens have expired: asking Heroku
			// refreshes them first.
			var calls, events []string
			if tt.asked {
				calls, events = []string{"RefreshTokens refresh-1"}, []string{"step: access token refreshed"}
			}
			f.wantEvents(t, id, append(events, tt.events...)...)
			f.wantFree(t, id)
			if !moved {
				f.wantCalls(t, calls...)
				return
			}
			f.wantCalls(t, append(calls, "Enqueue addon:deprovision #1")...)
			// The deprovision job finishes it: the resource destroyed, no
			// secret kept, and Heroku, which removed the add-on, not told
			// even with asynchronous deprovisioning on.
			k := f.keeper(func(k *addon.Keeper) { k.AsyncDeprovision = true })
			if k.TellsHeroku(ctx, id) {
				t.Error("a DELETE from Heroku now would be answered 202, as if Heroku were to be told")
			}
			if err := k.DeprovisionJob(ctx, id); err != nil {
				t.Fatal(err)
			}
			a := f.wantState(t, id, addon.StateDeprovisioned, "resource destroyed")
			if a.Tokens != nil || a.Vars != nil {
				t.Errorf("deprovisioned with tokens %v, vars %v; want none", a.Tokens != nil, a.Vars)
			}
			f.wantCalls(t, "Destroy "+short(id)+" basic")
		})
	}
}

// TestRemoveLeftoverAfterHerokusDelete: Heroku's DELETE lands while the
// leftover's removal asks Heroku about it; the removal, re-checking what
// it records, leaves the deprovision Heroku asked for as it is (its
// reason decides whether Heroku is told when it is done).
func TestRemoveLeftoverAfterHerokusDelete(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var id addon.ID
	f.asking(&mock.Watcher{GetAddonFn: func(ctx context.Context, token string, _ addon.ID) (addon.HerokuAddon, error) {
		if err := f.svc.Deprovision(ctx, id); err != nil {
			t.Fatal(err)
		}
		return addon.HerokuAddon{ID: string(id), State: "provisioning"}, nil
	}})
	id = f.add(t, exchanged, withResource, inState(addon.StateFailed, "boom"))
	f.advance(13 * time.Hour)
	moved, err := f.svc.RemoveLeftover(ctx, id)
	if err != nil || moved {
		t.Fatalf("RemoveLeftover = %v, %v; want nothing moved", moved, err)
	}
	f.wantState(t, id, addon.StateDeprovisioning, "deprovision requested by Heroku")
	f.wantEvents(t, id, "step: access token refreshed", "state deprovisioning: deprovision requested by Heroku")
	f.wantCalls(t, "RefreshTokens refresh-1", "Enqueue addon:deprovision #1")
}
