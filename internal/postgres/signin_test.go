package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestRecordSignIn: a sign-in is one line of the audit trail and nothing
// else (updated_at stays), refused for an add-on on its way out and
// unknown for an add-on that does not exist.
func TestRecordSignIn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := newStore(t)
	raw := rawDB(t, url)
	tests := []struct {
		name  string
		state addon.State // "" for an add-on that does not exist
		id    addon.ID    // instead of a created add-on's, when set
		code  string      // "" for success
	}{
		{"provisioned", addon.StateProvisioned, "", ""},
		{"provisioning", addon.StateProvisioning, "", ""},
		{"deprovisioning", addon.StateDeprovisioning, "", addon.EFORBIDDEN},
		{"deprovisioned", addon.StateDeprovisioned, "", addon.EFORBIDDEN},
		{"unknown", "", addon.ID(uuid.NewString()), addon.ENOTFOUND},
		{"not a uuid", "", "not-a-uuid", addon.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.id
			if tt.state != "" {
				a := newAddon(now())
				if _, _, err := db.Create(ctx, a); err != nil {
					t.Fatal(err)
				}
				if _, err := raw.ExecContext(ctx, "UPDATE addons SET state = $1 WHERE id = $2", string(tt.state), a.ID); err != nil {
					t.Fatal(err)
				}
				id = a.ID
			}
			var before *addon.Addon
			if tt.code == "" {
				var err error
				if before, err = db.Get(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			at := now().Add(-time.Minute)
			err := db.RecordSignIn(ctx, id, at, "signed in as user@example.com")
			if tt.code != "" {
				wantCode(t, err, tt.code)
				if tt.state != "" {
					if ev, err := db.Events(ctx, id); err != nil || len(ev) != 1 {
						t.Errorf("a refused sign-in left events %+v, %v; want only the creation's", ev, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ev, err := db.Events(ctx, id)
			if err != nil || len(ev) != 2 {
				t.Fatalf("events = %+v, %v; want the creation's and the sign-in", ev, err)
			}
			if got := ev[1]; got.Kind != "sso" || got.State != tt.state || got.Message != "signed in as user@example.com" || !got.At.Equal(at) {
				t.Errorf("sign-in event = %+v", got)
			}
			after, err := db.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !after.UpdatedAt.Equal(before.UpdatedAt) {
				t.Errorf("updated_at moved from %v to %v: a sign-in is not work on the add-on", before.UpdatedAt, after.UpdatedAt)
			}
		})
	}
}
