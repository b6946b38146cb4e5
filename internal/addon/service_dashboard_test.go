package addon_test

// What the dashboard, the tenant API and the operators read through the
// service: sign-ins, tenants, the driver's panel, listings and the
// driver's description.

import (
	"context"
	"maps"
	"reflect"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestSignIn(t *testing.T) {
	tests := []struct {
		name  string
		shape []func(a *addon.Addon)
		code  string
	}{
		{"provisioned", []func(a *addon.Addon){provisioned}, ""},
		{"provisioning", nil, ""},
		{"deprovisioning: its dashboard would show credentials that are going", []func(a *addon.Addon){inState(addon.StateDeprovisioning, "")}, addon.EFORBIDDEN},
		{"deprovisioned", []func(a *addon.Addon){inState(addon.StateDeprovisioned, "")}, addon.EFORBIDDEN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			id := f.add(t, tt.shape...)
			before := f.get(t, id)
			a, err := f.svc.SignIn(context.Background(), id, "u-1", " ann@example.com\n")
			wantCode(t, err, tt.code)
			if tt.code != "" {
				f.wantEvents(t, id)
				return
			}
			if a == nil || a.ID != id {
				t.Errorf("answered %+v", a)
			}
			if got := f.get(t, id); !got.UpdatedAt.Equal(before.UpdatedAt) {
				t.Error("a sign-in moved updated_at (the reconciler reads it as recent work)")
			}
			f.wantEvents(t, id, "sso: signed in through Heroku: ann@example.com (user u-1)")
		})
	}
	t.Run("unknown", func(t *testing.T) {
		f := newFixture(t)
		_, err := f.svc.SignIn(context.Background(), f.nextID(), "u-1", "")
		wantCode(t, err, addon.ENOTFOUND)
	})
}

func TestTenant(t *testing.T) {
	tests := []struct {
		name         string
		account, key string
		auth         func(ctx context.Context, account, key string) (addon.Tenant, error)
		code         string
		want         addon.Plan
	}{
		{
			name: "the account's plan comes with the catalog's limits", account: "acct", key: "k",
			auth: func(ctx context.Context, account, key string) (addon.Tenant, error) {
				return addon.Tenant{AddonID: "a", Name: account, Plan: addon.Plan{Slug: "pro"}}, nil
			},
			want: catalog()["pro"],
		},
		{
			name: "a plan that left the catalog is shown as the account has it", account: "acct", key: "k",
			auth: func(ctx context.Context, account, key string) (addon.Tenant, error) {
				return addon.Tenant{Name: account, Plan: addon.Plan{Slug: "gold", Name: "Gold"}}, nil
			},
			want: addon.Plan{Slug: "gold", Name: "Gold"},
		},
		{
			name: "wrong credentials", account: "acct", key: "wrong",
			auth: func(ctx context.Context, account, key string) (addon.Tenant, error) {
				return addon.Tenant{}, addon.Errorf(addon.EUNAUTHORIZED, "Wrong.")
			},
			code: addon.EUNAUTHORIZED,
		},
		{name: "no account: the tenants are not asked", key: "k", code: addon.EUNAUTHORIZED},
		{name: "no key: the tenants are not asked", account: "acct", code: addon.EUNAUTHORIZED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.tenants.AuthenticateTenantFn = tt.auth // nil: a call panics
			got, err := f.svc.Tenant(context.Background(), tt.account, tt.key)
			wantCode(t, err, tt.code)
			if err == nil && (got.Name != tt.account || !reflect.DeepEqual(got.Plan, tt.want)) {
				t.Errorf("tenant %+v, want %s on %+v", got, tt.account, tt.want)
			}
		})
	}
	t.Run("a driver without tenants", func(t *testing.T) {
		f := newFixture(t)
		svc := addon.NewService(addon.Deps{Store: f.store, Queue: f.queue, Platform: f.platform, Driver: f.driver}, addon.Options{})
		_, err := svc.Tenant(context.Background(), "acct", "k")
		wantCode(t, err, addon.ENOTFOUND)
	})
}

func TestPanel(t *testing.T) {
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		setup  func(f *fixture)
		code   string
		fields []addon.PanelField
		calls  []string
	}{
		{
			name: "a provisioned add-on's panel", shape: []func(a *addon.Addon){provisioned},
			fields: []addon.PanelField{{Label: "Plan", Value: "Basic"}}, calls: []string{"Panel #1 basic"},
		},
		{
			name: "a driver without a panel", shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture) {
				f.driver.AbilitiesFn = func() addon.Abilities { return addon.Abilities{Rotate: true} }
			},
		},
		{name: "no resource yet"},
		{name: "no resource any more", shape: []func(a *addon.Addon){provisioned, inState(addon.StateDeprovisioning, "")}},
		{
			name: "a plan that left the catalog", shape: []func(a *addon.Addon){provisioned, func(a *addon.Addon) { a.Plan = "gold" }},
			code: addon.EINVALID,
		},
		{
			name: "the driver fails", shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture) {
				f.driver.PanelFn = func(context.Context, addon.Resource) ([]addon.PanelField, error) {
					f.called("Panel")
					return nil, addon.Errorf(addon.EUNAVAILABLE, "Down.")
				}
			},
			code: addon.EUNAVAILABLE, calls: []string{"Panel"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			a := f.get(t, f.add(t, tt.shape...))
			fields, err := f.svc.Panel(context.Background(), a)
			wantCode(t, err, tt.code)
			if !reflect.DeepEqual(fields, tt.fields) {
				t.Errorf("fields %v, want %v", fields, tt.fields)
			}
			f.wantCalls(t, tt.calls...)
		})
	}
}

// TestQueries: the operators' reads go to the store, unchanged.
func TestQueries(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id := f.add(t, provisioned)
	f.add(t, inState(addon.StateFailed, addon.GrantLostReason))
	if a, err := f.svc.Get(ctx, id); err != nil || a.ID != id {
		t.Errorf("Get = %v, %v", a, err)
	}
	if _, err := f.svc.Get(ctx, f.nextID()); addon.ErrorCode(err) != addon.ENOTFOUND {
		t.Errorf("Get of an unknown add-on = %v", err)
	}
	if err := f.svc.Deprovision(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ev, err := f.svc.Events(ctx, id); err != nil || len(ev) != 1 || ev[0].State != addon.StateDeprovisioning {
		t.Errorf("Events = %+v, %v", ev, err)
	}
	if page, next, err := f.svc.List(ctx, addon.Filter{State: addon.StateFailed}, addon.Range{}); err != nil || len(page) != 1 || next != nil {
		t.Errorf("List = %d add-ons, %v, %v", len(page), next, err)
	}
	if _, _, err := f.svc.List(ctx, addon.Filter{}, addon.Range{Max: addon.MaxRangeMax + 1}); addon.ErrorCode(err) != addon.EINVALID {
		t.Errorf("List with a page too large = %v, want invalid", err)
	}
	if a, err := f.svc.FindByName(ctx, "acme"); addon.ErrorCode(err) != addon.ECONFLICT {
		t.Errorf("FindByName of a name two live add-ons share = %v, %v", a, err)
	}
	counts, err := f.svc.CountByState(ctx)
	if want := map[addon.State]int64{addon.StateDeprovisioning: 1, addon.StateFailed: 1}; err != nil || !maps.Equal(counts, want) {
		t.Errorf("CountByState = %v, %v; want %v", counts, err, want)
	}
	if n, err := f.svc.CountLostGrants(ctx); err != nil || n != 1 {
		t.Errorf("CountLostGrants = %d, %v", n, err)
	}
}

// TestDriverDescription: what the service says about its driver and
// configuration.
func TestDriverDescription(t *testing.T) {
	f := newFixture(t)
	if f.svc.DriverName() != "fake" || f.svc.Prefix() != "KILN" || !reflect.DeepEqual(f.svc.Catalog(), catalog()) {
		t.Errorf("driver %q, prefix %q, catalog %v", f.svc.DriverName(), f.svc.Prefix(), f.svc.Catalog())
	}
	if ab := f.svc.Abilities(); !ab.Rotate || !ab.Panel || ab.Roll {
		t.Errorf("abilities %+v", ab)
	}
	if p, err := f.svc.Plan("pro"); err != nil || p.Limits["requests_per_second"] != 50 {
		t.Errorf("Plan(pro) = %+v, %v", p, err)
	}
	if _, err := f.svc.Plan("gold"); addon.ErrorCode(err) != addon.EINVALID {
		t.Errorf("Plan(gold) = %v, want invalid", err)
	}
	if got := f.svc.Config(&addon.Addon{Vars: addon.Vars{"URL": "u", "API_KEY": "k"}}); !maps.Equal(got, map[string]string{"KILN_URL": "u", "KILN_API_KEY": "k"}) {
		t.Errorf("Config = %v", got)
	}
	tests := []struct {
		name  string
		shape func(a *addon.Addon)
		want  bool
	}{
		{"provisioned", provisioned, true},
		{"provisioning", exchanged, false},
		{"without Platform API access", func(a *addon.Addon) { provisioned(a); a.Tokens = nil }, false},
	}
	for _, tt := range tests {
		a := &addon.Addon{CreatedAt: t0, Plan: "basic"}
		tt.shape(a)
		if got := f.svc.CanRotate(a); got != tt.want {
			t.Errorf("CanRotate(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
