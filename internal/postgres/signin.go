package postgres

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// RecordSignIn appends a sign-in to the add-on's audit trail in one
// statement that leaves the add-on's row alone: a sign-in is not a change
// to the add-on, so updated_at (which the reconciler reads as "last
// worked on") must not move, and no row lock is taken. An add-on being or
// already deprovisioned is refused (EFORBIDDEN), an unknown one is
// ENOTFOUND.
func (db *DB) RecordSignIn(ctx context.Context, id addon.ID, at time.Time, message string) error {
	if !addon.ValidID(string(id)) {
		return addon.NotFound(id)
	}
	res := db.gorm.WithContext(ctx).Exec(insertEventInto+`
		SELECT id, 'sso', state, $2, $3 FROM addons
		WHERE id = $1::uuid AND state NOT IN ('deprovisioning', 'deprovisioned')`,
		id, message, at.UTC())
	if res.Error != nil {
		return dbError(res.Error, id)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var state string
	err := db.gorm.WithContext(ctx).Raw("SELECT state FROM addons WHERE id = $1::uuid", id).Row().Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return addon.NotFound(id)
	}
	if err != nil {
		return dbError(err, id)
	}
	return addon.Errorf(addon.EFORBIDDEN, "Add-on %s was deprovisioned.", id)
}
