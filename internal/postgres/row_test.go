package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/secret"
)

func TestSecretsEncryptedAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := newStore(t)
	t0 := now()
	a := newAddon(t0)
	full(a, t0)
	if _, _, err := db.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	secrets := []string{"grant-code-secret", "access-token-secret", "refresh-token-secret", "vars-secret", "api-key-secret", "logplex-secret", "drain-secret"}

	raw := rawDB(t, url)
	// The whole row as text: bytea shows as hex, so look for both forms.
	var row string
	if err := raw.QueryRowContext(ctx, "SELECT row_to_json(a)::text FROM addons a WHERE id = $1", a.ID).Scan(&row); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(row, s) || strings.Contains(row, fmt.Sprintf("%x", s)) {
			t.Errorf("raw row contains %q in plaintext: %s", s, row)
		}
	}
	// And the secret columns as raw bytes.
	var cols [7][]byte
	err := raw.QueryRowContext(ctx, `SELECT grant_code, access_token, refresh_token, vars, log_input_url, log_drain_token, convert_to(coalesce(options::text, ''), 'UTF8')
		FROM addons WHERE id = $1`, a.ID).Scan(&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6])
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cols[:6] {
		if len(c) == 0 {
			t.Errorf("secret column %d is empty: the test would prove nothing", i)
		}
		for _, s := range secrets {
			if strings.Contains(string(c), s) {
				t.Errorf("secret column %d contains %q in plaintext", i, s)
			}
		}
	}
	if !strings.Contains(string(cols[6]), "bar") {
		t.Errorf("options are not plain jsonb: %q", cols[6])
	}

	// Decrypted through the store, they come back.
	got, err := db.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, a)
}

func TestKeyRotationAndRemovedKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migrated(t)
	oldKey, newKey := kilntest.Key(), kilntest.Key()
	a := newAddon(now())
	a.Tokens = &addon.Tokens{Access: "access", Refresh: "refresh"}
	if _, _, err := open(t, url, keyring(t, oldKey)).Create(ctx, a); err != nil {
		t.Fatal(err)
	}

	t.Run("old key still in the list", func(t *testing.T) {
		got, err := open(t, url, keyring(t, newKey, oldKey)).Get(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Tokens == nil || got.Tokens.Access != "access" {
			t.Errorf("tokens = %+v", got.Tokens)
		}
	})
	t.Run("old key removed", func(t *testing.T) {
		_, err := open(t, url, keyring(t, newKey)).Get(ctx, a.ID)
		wantCode(t, err, addon.EINTERNAL)
		if !errors.Is(err, secret.ErrUndecryptable) || !strings.Contains(addon.ErrorMessage(err), "ENCRYPTION_KEY") {
			t.Errorf("error does not explain the removed key: %v", err)
		}
	})
}

// TestSealedValuesBoundToTheirRow copies one add-on's sealed access token
// onto another's row, and into another column: neither decrypts, so someone
// who can write the database cannot hand one customer another's token.
func TestSealedValuesBoundToTheirRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := newStore(t)
	t0 := now()
	a, b := newAddon(t0), newAddon(t0)
	full(a, t0)
	full(b, t0)
	for _, x := range []*addon.Addon{a, b} {
		if _, _, err := db.Create(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	raw := rawDB(t, url)
	tests := []struct{ name, sql string }{
		{"another row", "UPDATE addons SET access_token = (SELECT access_token FROM addons WHERE id = $1) WHERE id = $2"},
		{"another column", "UPDATE addons SET refresh_token = (SELECT access_token FROM addons WHERE id = $1) WHERE id = $2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newAddon(t0)
			full(c, t0)
			if _, _, err := db.Create(ctx, c); err != nil {
				t.Fatal(err)
			}
			if _, err := raw.ExecContext(ctx, tt.sql, a.ID, c.ID); err != nil {
				t.Fatal(err)
			}
			_, err := db.Get(ctx, c.ID)
			wantCode(t, err, addon.EINTERNAL)
		})
	}
	if _, err := db.Get(ctx, b.ID); err != nil {
		t.Errorf("an untouched row no longer opens: %v", err)
	}
}

// TestListingsSkipUnreadable: a row sealed with a key no longer in the
// list is left out of the sweeps' listings, named in an
// addon.UnreadableError, and the rest come back: one such row must not
// stop every sweep.
func TestListingsSkipUnreadable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migrated(t)
	oldKey, newKey := kilntest.Key(), kilntest.Key()
	created := now().Add(-13 * time.Hour)
	add := func(keys *secret.Keyring) addon.ID {
		a := newAddon(created)
		a.State, a.Requeue = addon.StateFailed, true
		a.ResourceCreatedAt = created
		a.Tokens = &addon.Tokens{Access: "access", Refresh: "refresh"}
		if _, _, err := open(t, url, keys).Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	bad := add(keyring(t, oldKey))
	good := add(keyring(t, newKey))
	db := open(t, url, keyring(t, newKey))
	tests := []struct {
		name string
		list func() ([]*addon.Addon, error)
	}{
		{"Requeued", func() ([]*addon.Addon, error) { return db.Requeued(ctx, 10) }},
		{"Leftovers", func() ([]*addon.Addon, error) { return db.Leftovers(ctx, now(), 10) }},
		{"Stale", func() ([]*addon.Addon, error) {
			if _, err := rawDB(t, url).Exec(`UPDATE addons SET state = 'provisioning'`); err != nil {
				t.Fatal(err)
			}
			return db.Stale(ctx, now(), addon.StaleFrom{}, 10)
		}},
	}
	for _, tt := range tests { // in order: Stale changes the rows
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.list()
			ids, only := addon.Unreadable(err)
			if !only || len(ids) != 1 || ids[0] != bad {
				t.Errorf("error %v, want an UnreadableError naming %s", err, bad)
			}
			if !errors.Is(err, secret.ErrUndecryptable) {
				t.Errorf("error %v does not say why", err)
			}
			if len(got) != 1 || got[0].ID != good {
				t.Errorf("listed %d add-ons, want only the readable %s", len(got), good)
			}
		})
	}
}
