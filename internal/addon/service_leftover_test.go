package addon_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestRemoveLeftover: a failed add-on that Heroku removed at its 12-hour
// limit and that still holds a resource or tokens is deprovisioned (the
// deprovision job destroys the resource and drops the tokens); anything
// else is left as it is, a lost grant's failure included, which operators
// alert on.
func TestRemoveLeftover(t *testing.T) {
	failed := inState(addon.StateFailed, "boom")
	withResource := func(a *addon.Addon) { a.Vars, a.ResourceCreatedAt = addon.Vars{"URL": "fake://basic"}, a.CreatedAt }
	removed := []string{
		"removed: not provisioned within 12 hours of Heroku's request, so Heroku removed it; what it holds goes",
		"state deprovisioning: " + addon.ReasonRemovedOnHeroku,
	}
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		after  time.Duration // from the request
		listed bool          // by Leftovers
		state  addon.State
		reason string
		calls  []string
		events []string
	}{
		{"a resource and tokens, a second past the limit", []func(a *addon.Addon){exchanged, withResource, failed}, addon.HerokuLimit + time.Second, true,
			addon.StateDeprovisioning, addon.ReasonRemovedOnHeroku, []string{"Enqueue addon:deprovision #1"}, removed},
		{"tokens only (the resource refused)", []func(a *addon.Addon){exchanged, failed}, 13 * time.Hour, true,
			addon.StateDeprovisioning, addon.ReasonRemovedOnHeroku, []string{"Enqueue addon:deprovision #1"}, removed},
		{"a resource, no tokens", []func(a *addon.Addon){withResource, failed}, 13 * time.Hour, true,
			addon.StateDeprovisioning, addon.ReasonRemovedOnHeroku, []string{"Enqueue addon:deprovision #1"}, removed},
		{"a resource and tokens, at the limit", []func(a *addon.Addon){exchanged, withResource, failed}, addon.HerokuLimit, false,
			addon.StateFailed, "boom", nil, nil},
		{"nothing held (a lost grant)", []func(a *addon.Addon){inState(addon.StateFailed, addon.GrantLostReason)}, 13 * time.Hour, false,
			addon.StateFailed, addon.GrantLostReason, nil, nil},
		{"provisioned", []func(a *addon.Addon){provisioned}, 13 * time.Hour, false,
			addon.StateProvisioned, "", nil, nil},
		{"still provisioning", []func(a *addon.Addon){exchanged, withResource}, 13 * time.Hour, false,
			addon.StateProvisioning, "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			id := f.add(t, tt.shape...)
			f.advance(tt.after)
			left, err := f.svc.Leftovers(ctx, 10)
			if err != nil || (len(left) == 1 && left[0].ID == id) != tt.listed || len(left) > 1 {
				t.Errorf("Leftovers = %d add-ons, %v; want listed %v", len(left), err, tt.listed)
			}
			if err := f.svc.RemoveLeftover(ctx, id); err != nil {
				t.Fatal(err)
			}
			f.wantState(t, id, tt.state, tt.reason)
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
			if tt.state != addon.StateDeprovisioning {
				return
			}
			// The deprovision job finishes it: the resource destroyed, no
			// secret kept, and Heroku (which removed it) not told.
			if err := f.svc.DeprovisionJob(ctx, id); err != nil {
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
