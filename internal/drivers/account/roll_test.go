package account_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestRollKeepsTheOldKeyUntilRevoked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _ := setup(t, "https://kiln.example.com")
	id := uuid.NewString()
	v1, err := d.Create(ctx, resource(t, d, id, "basic", nil))
	if err != nil {
		t.Fatal(err)
	}
	name, k1 := creds(t, v1, "https", "kiln.example.com")
	works := func(key string) bool {
		t.Helper()
		got, err := d.Authenticate(ctx, name, key)
		if err != nil && addon.ErrorCode(err) != addon.EUNAUTHORIZED {
			t.Fatal(err)
		}
		return err == nil && got == id
	}
	// A roll whose result was lost (a crash before the domain recorded
	// it), then the retry: the key the app uses must survive both.
	lost, err := d.Roll(ctx, resource(t, d, id, "basic", v1))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := d.Roll(ctx, resource(t, d, id, "basic", v1))
	if err != nil {
		t.Fatal(err)
	}
	name2, k2 := creds(t, v2, "https", "kiln.example.com")
	_, kLost := creds(t, lost, "https", "kiln.example.com")
	if name2 != name || k2 == k1 {
		t.Fatalf("roll: name %s -> %s, key changed %v", name, name2, k2 != k1)
	}
	if !works(k1) || !works(k2) || works(kLost) {
		t.Errorf("after the roll: old key %v, new key %v, lost key %v; want true, true, false", works(k1), works(k2), works(kLost))
	}
	// Revoking the current key is a no-op; revoking the old one ends it.
	if err := d.Revoke(ctx, resource(t, d, id, "basic", v2), v2); err != nil {
		t.Fatal(err)
	}
	if !works(k2) {
		t.Error("Revoke of the current key took it away")
	}
	if err := d.Revoke(ctx, resource(t, d, id, "basic", v2), v1); err != nil {
		t.Fatal(err)
	}
	if works(k1) || !works(k2) {
		t.Errorf("after Revoke: old key %v, new key %v; want false, true", works(k1), works(k2))
	}
	if err := d.Revoke(ctx, resource(t, d, id, "basic", v2), v1); err != nil {
		t.Errorf("a repeated Revoke: %v", err)
	}
	// A roll from a key that is neither current nor previous is refused.
	_, err = d.Roll(ctx, resource(t, d, id, "basic", v1))
	wantCode(t, err, addon.ECONFLICT)
	// Destroy ends both keys.
	if _, err := d.Roll(ctx, resource(t, d, id, "basic", v2)); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(ctx, resource(t, d, id, "basic", v2)); err != nil {
		t.Fatal(err)
	}
	if works(k2) {
		t.Error("the previous key works after Destroy")
	}
}
