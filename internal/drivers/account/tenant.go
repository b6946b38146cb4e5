package account

import (
	"context"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.Tenants = (*Driver)(nil) // handed to the Service beside the driver

// lastUsedEvery is how stale "API key last used" may get: a use is
// recorded only when the recorded one is older, so a busy account costs
// one row write a minute, not one a request.
const lastUsedEvery = time.Minute

// AuthenticateTenant checks the credentials of an account's URL (with
// verify, the one place keys are checked) and returns the account, for
// Kiln's tenant API (GET /api/v1/account). It costs two indexed reads; it
// writes "last used" at most once a minute per account.
func (d *Driver) AuthenticateTenant(ctx context.Context, account, key string) (addon.Tenant, error) {
	id, err := d.verify(ctx, account, key)
	if err != nil {
		return addon.Tenant{}, err
	}
	a, err := d.Account(ctx, id)
	if addon.ErrorCode(err) == addon.ENOTFOUND {
		// Deleted between the two reads: the key opens nothing now.
		return addon.Tenant{}, addon.Errorf(addon.EUNAUTHORIZED, "Invalid account name or key.")
	}
	if err != nil {
		return addon.Tenant{}, err
	}
	t := addon.Tenant{AddonID: addon.ID(a.ID), Name: a.Name, Plan: addon.Plan{Slug: a.Plan}, CreatedAt: a.CreatedAt, LastUsedAt: a.LastUsedAt}
	now := time.Now().UTC()
	if t.LastUsedAt.IsZero() || now.Sub(t.LastUsedAt) >= lastUsedEvery {
		// The condition is repeated in SQL so that concurrent requests on
		// several dynos write once.
		err := d.db.WithContext(ctx).Exec(
			"UPDATE accounts SET last_used_at = now() WHERE id = ? AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", id).Error
		if err != nil {
			return addon.Tenant{}, dbError("record account use", err)
		}
		t.LastUsedAt = now
	}
	return t, nil
}
