package addon_test

import (
	"context"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
)

type tenantDriver struct {
	addon.Driver
	got string
}

func (d *tenantDriver) Name() string { return "tenants" }
func (d *tenantDriver) Catalog() addon.Catalog {
	return addon.Catalog{"test": {Slug: "test", Name: "Test", Limits: map[string]int64{addon.TenantRateLimit: 1}}}
}
func (d *tenantDriver) AuthenticateTenant(ctx context.Context, account, key string) (addon.Tenant, error) {
	d.got = account + ":" + key
	return addon.Tenant{AddonID: "x", Plan: addon.Plan{Slug: "test"}}, nil
}

type noTenants struct{ addon.Driver }

func (noTenants) Name() string { return "plain" }

func TestServiceTenant(t *testing.T) {
	ctx := context.Background()
	d := &tenantDriver{}
	tn, err := addon.NewService(addon.Deps{Driver: d, Tenants: d}, addon.Options{}).Tenant(ctx, "acct", "key")
	if err != nil {
		t.Fatal(err)
	}
	if d.got != "acct:key" || tn.Plan.Name != "Test" || tn.Plan.Limits[addon.TenantRateLimit] != 1 {
		t.Errorf("tenant = %+v (driver saw %q), want the plan filled from the catalog", tn, d.got)
	}
	if _, err := addon.NewService(addon.Deps{Driver: d, Tenants: d}, addon.Options{}).Tenant(ctx, "acct", ""); addon.ErrorCode(err) != addon.EUNAUTHORIZED {
		t.Errorf("empty key: %v", err)
	}
	if _, err := addon.NewService(addon.Deps{Driver: noTenants{}}, addon.Options{}).Tenant(ctx, "acct", "key"); addon.ErrorCode(err) != addon.ENOTFOUND {
		t.Errorf("driver without accounts: %v", err)
	}
}
