package account_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestAuthenticateTenant: the URL's credentials open the account with its
// plan and times; "last used" is written at most once a minute; a wrong,
// rotated-out or destroyed key is EUNAUTHORIZED.
func TestAuthenticateTenant(t *testing.T) {
	d, dbURL := setup(t, "https://kiln.example.com")
	raw := rawDB(t, dbURL)
	ctx := context.Background()
	r, name, key := newAccount(t, d, "basic")
	id := r.ID
	lastUsed := func() time.Time {
		var at time.Time
		if err := raw.QueryRowContext(ctx, "SELECT coalesce(last_used_at, 'epoch') FROM accounts WHERE id = $1", id).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}

	tn, err := d.AuthenticateTenant(ctx, name, key)
	if err != nil {
		t.Fatal(err)
	}
	if tn.AddonID != addon.ID(id) || tn.Name != name || tn.Plan.Slug != "basic" || tn.CreatedAt.IsZero() || tn.LastUsedAt.IsZero() {
		t.Errorf("tenant = %+v", tn)
	}
	first := lastUsed()
	if first.Unix() == 0 {
		t.Fatal("the first use was not recorded")
	}
	if _, err := d.AuthenticateTenant(ctx, name, key); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(first) {
		t.Errorf("a second use within a minute rewrote last_used_at (%v -> %v)", first, got)
	}
	if _, err := raw.ExecContext(ctx, "UPDATE accounts SET last_used_at = now() - interval '2 minutes' WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
	old := lastUsed()
	if _, err := d.AuthenticateTenant(ctx, name, key); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.After(old.Add(time.Minute)) {
		t.Errorf("a use two minutes after the last was not recorded (%v -> %v)", old, got)
	}

	for _, tt := range []struct{ name, account, key string }{
		{"wrong key", name, key + "x"},
		{"unknown account", "acct-000000000000", key},
		{"empty key", name, ""},
	} {
		if _, err := d.AuthenticateTenant(ctx, tt.account, tt.key); addon.ErrorCode(err) != addon.EUNAUTHORIZED {
			t.Errorf("%s: %v, want EUNAUTHORIZED", tt.name, err)
		}
	}
	if _, err := d.RotateKey(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AuthenticateTenant(ctx, name, key); addon.ErrorCode(err) != addon.EUNAUTHORIZED {
		t.Errorf("rotated-out key: %v, want EUNAUTHORIZED", err)
	}
}
