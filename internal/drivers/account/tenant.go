package account

import (
	"context"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.Tenants = (*Driver)(nil)

// lastUsedEvery is how stale "API key last used" may get: a use is
// recorded only when the recorded one is older, so a busy account costs
// one row write a minute, not one a request.
const lastUsedEvery = time.Minute

// AuthenticateTenant checks the credentials of an account's URL and
// returns the account, for Kiln's tenant API (GET /api/v1/account). It
// costs one read; it writes "last used" at most once a minute per account.
func (d *Driver) AuthenticateTenant(ctx context.Context, account, key string) (addon.Tenant, error) {
	row, err := d.verify(ctx, account, key)
	if err != nil {
		return addon.Tenant{}, err
	}
	t := addon.Tenant{AddonID: row.ID, Name: row.Name, Plan: addon.Plan{Slug: row.Plan}, CreatedAt: row.CreatedAt.UTC()}
	if row.LastUsedAt != nil {
		t.LastUsedAt = row.LastUsedAt.UTC()
	}
	now := time.Now().UTC()
	if t.LastUsedAt.IsZero() || now.Sub(t.LastUsedAt) >= lastUsedEvery {
		// The condition is repeated in SQL so that concurrent requests on
		// several dynos write once.
		err := d.db.WithContext(ctx).Exec(
			"UPDATE accounts SET last_used_at = now() WHERE id = ? AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", row.ID).Error
		if err != nil {
			return addon.Tenant{}, dbError("record account use", err)
		}
		t.LastUsedAt = now
	}
	return t, nil
}
