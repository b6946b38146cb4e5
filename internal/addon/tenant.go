package addon

import (
	"context"
	"time"
)

// TenantRateLimit names the plan limit (Plan.Limits) the tenant API
// enforces per account: requests a second, sustained, with bursts of as
// many.
const TenantRateLimit = "requests_per_second"

// TenantMonthlyQuota names the plan limit of requests an account may make
// in a calendar month (UTC); the tenant API enforces it too.
const TenantMonthlyQuota = "requests_per_month"

// Tenant is a customer's account on a service Kiln itself runs (the
// account driver): what the tenant API tells an app about the account its
// URL opens. It never holds the key.
type Tenant struct {
	AddonID    ID
	Name       string // the user name of the URL
	Plan       Plan   // with its limits
	CreatedAt  time.Time
	LastUsedAt time.Time // zero until first used
}

// Tenants is what a driver whose resources are accounts served by Kiln's
// own web process (the account driver) adds, so the credentials in
// <PREFIX>_URL lead somewhere. The wiring hands it to the Service
// explicitly (Service.Tenants), beside the driver.
type Tenants interface {
	// AuthenticateTenant checks an account name and key (the user and
	// password of the URL), in constant time, and records the use (cheaply:
	// not on every call). Any failure of the credentials is EUNAUTHORIZED,
	// whether the account is unknown, deleted or the key wrong.
	AuthenticateTenant(ctx context.Context, account, key string) (Tenant, error)
}

// Tenant returns the account that an add-on's URL credentials open, with
// its plan's limits, for the tenant API. Without Tenants (the driver's
// resources live elsewhere) it answers ENOTFOUND.
func (s *Service) Tenant(ctx context.Context, account, key string) (*Tenant, error) {
	if s.tenants == nil {
		return nil, Errorf(ENOTFOUND, "The %s driver serves no tenant API.", s.driver.Name())
	}
	if account == "" || key == "" {
		return nil, Errorf(EUNAUTHORIZED, "Authentication required: use the credentials of the add-on's URL.")
	}
	t, err := s.tenants.AuthenticateTenant(ctx, account, key)
	if err != nil {
		return nil, err
	}
	if p, err := s.driver.Catalog().Lookup(t.Plan.Slug); err == nil {
		t.Plan = p
	}
	return &t, nil
}
