package mock

import (
	"context"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.Tenants = (*Tenants)(nil)

// Tenants is the account driver's authentication, answering through
// AuthenticateTenantFn.
type Tenants struct {
	AuthenticateTenantFn func(ctx context.Context, account, key string) (addon.Tenant, error)
}

// AuthenticateTenant calls AuthenticateTenantFn.
func (t *Tenants) AuthenticateTenant(ctx context.Context, account, key string) (addon.Tenant, error) {
	if t.AuthenticateTenantFn == nil {
		panic(unset("AuthenticateTenant"))
	}
	return t.AuthenticateTenantFn(ctx, account, key)
}
