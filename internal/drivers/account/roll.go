package account

import (
	"context"
	"crypto/sha256"

	"github.com/kiln-dev/kiln/internal/addon"
)

// The account driver keeps two keys per account so a credential roll does
// not break a running app: Roll makes a new key and keeps the current one
// (the key in r.Vars) as the previous key, accepted by verify beside the
// new one; Revoke forgets the previous key when the roll's grace ends.

// Roll makes a new key and returns the new URL; the key in r.Vars keeps
// working. A repeat before the new URL was recorded (a crash) finds the
// current key as the previous one and makes another new key, so the key
// the app uses is never lost.
func (d *Driver) Roll(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	if !addon.ValidID(r.ID) {
		return nil, notFound(r.ID)
	}
	_, current, ok := credentials(r.Vars)
	if !ok {
		return nil, addon.Errorf(addon.EINVALID, "Add-on %s has no account key to roll.", r.ID)
	}
	curHash := sha256.Sum256([]byte(current))
	key, hash, err := newKey()
	if err != nil {
		return nil, err
	}
	var names []string
	err = d.db.WithContext(ctx).Raw(
		`UPDATE accounts SET prev_key_hash = ?, key_hash = ?, updated_at = now()
		 WHERE id = ? AND deleted_at IS NULL AND (key_hash = ? OR prev_key_hash = ?) RETURNING name`,
		curHash[:], hash, r.ID, curHash[:], curHash[:]).Scan(&names).Error
	if err != nil {
		return nil, dbError("roll key", err)
	}
	if len(names) == 0 {
		return nil, addon.Errorf(addon.ECONFLICT, "The key of add-on %s is not the account's current key; nothing was rolled.", r.ID)
	}
	return d.vars(names[0], key)
}

// Revoke stops accepting the old key. The current key is never touched.
func (d *Driver) Revoke(ctx context.Context, r addon.Resource, old addon.Vars) error {
	if !addon.ValidID(r.ID) {
		return nil
	}
	_, key, ok := credentials(old)
	if !ok {
		return nil
	}
	h := sha256.Sum256([]byte(key))
	err := d.db.WithContext(ctx).Exec(
		"UPDATE accounts SET prev_key_hash = NULL, updated_at = now() WHERE id = ? AND prev_key_hash = ?", r.ID, h[:]).Error
	if err != nil {
		return dbError("revoke old key", err)
	}
	return nil
}
