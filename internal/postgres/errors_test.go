package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/postgres/pgtest"
)

// TestUnstorableTextIsInvalidInput: text Postgres refuses (a NUL byte in a
// text column or in the jsonb options, bytes that are not UTF-8) is the
// caller's mistake, EINVALID (422), never a 500, even if it gets past the
// web adapter's own check.
func TestUnstorableTextIsInvalidInput(t *testing.T) {
	db, _ := pgtest.Store(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, tt := range []struct {
		name   string
		change func(a *addon.Addon)
	}{
		{"NUL in name", func(a *addon.Addon) { a.Name = "acme\x00primary" }},
		{"NUL in region", func(a *addon.Addon) { a.Region = "us\x00east" }},
		{"NUL in an option", func(a *addon.Addon) { a.Options = map[string]string{"key": "va\x00lue"} }},
		{"invalid UTF-8 in name", func(a *addon.Addon) { a.Name = "acme\xff\xfe" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newAddon(now)
			tt.change(a)
			_, _, err := db.Create(ctx, a)
			if code := addon.ErrorCode(err); code != addon.EINVALID {
				t.Fatalf("Create = %v (code %q), want %q", err, code, addon.EINVALID)
			}
		})
	}
}
