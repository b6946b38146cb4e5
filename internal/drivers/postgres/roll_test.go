package postgres

import (
	"testing"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestRollThenRevoke: a roll moves the app to the other login role while
// the current credentials keep working, keeps the add-on's other vars, and
// Revoke then ends the old ones; a roll of a missing database is ENOTFOUND.
func TestRollThenRevoke(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	r := resource(t, d, "basic")
	first := create(t, d, r)
	first["EXTRA"] = "kept"
	r.Vars = first
	ctx := ctxFor(t)
	n, _ := namesFor(r.ID)

	for i, want := range []string{n.role + loginA, n.role + loginB} {
		next, err := d.Roll(ctx, r)
		if err != nil {
			t.Fatalf("roll %d: %v", i+1, err)
		}
		if user, _ := userOf(t, next["URL"]); user != want {
			t.Errorf("roll %d logs in as %q, want %q", i+1, user, want)
		}
		if next["EXTRA"] != "kept" || r.Vars["URL"] == next["URL"] {
			t.Errorf("roll %d vars = %v; want a new URL and the other vars kept", i+1, next)
		}
		mustDial(t, next["URL"])
		mustDial(t, r.Vars["URL"]) // the current credentials still work
		if err := d.Revoke(ctx, addon.Resource{ID: r.ID, Plan: r.Plan, Vars: next}, r.Vars); err != nil {
			t.Fatalf("revoke after roll %d: %v", i+1, err)
		}
		if _, err := dial(ctx, r.Vars["URL"]); err == nil {
			t.Errorf("the credentials revoked after roll %d still log in", i+1)
		}
		r.Vars = next
	}

	if _, err := d.Roll(ctx, addon.Resource{ID: uuid.NewString(), Plan: r.Plan}); addon.ErrorCode(err) != addon.ENOTFOUND {
		t.Errorf("roll a missing database: %v; want ENOTFOUND", err)
	}
}
