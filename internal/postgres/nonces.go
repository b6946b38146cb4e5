package postgres

import (
	"context"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.Nonces = (*DB)(nil)

// purgeBatch bounds how many expired nonces one claim deletes, so a backlog
// never makes a sign-in slow.
const purgeBatch = 100

// Claim records key as used until the given time. INSERT ... ON CONFLICT
// decides, so concurrent claims of one key on several web dynos succeed
// exactly once. A key whose time has passed is taken over (it can no longer
// be replayed). Each claim also deletes a batch of expired keys: SSO is rare
// enough that no separate sweeper is needed.
func (db *DB) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	if key == "" {
		return false, addon.Errorf(addon.EINTERNAL, "An empty nonce cannot be claimed.")
	}
	res := db.gorm.WithContext(ctx).Exec(`
		INSERT INTO nonces (key, expires_at) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at
		WHERE nonces.expires_at < clock_timestamp()`, key, until.UTC())
	if res.Error != nil {
		return false, dbError(res.Error, "")
	}
	// Best effort: a failed purge is retried by the next claim.
	_ = db.gorm.WithContext(ctx).Exec(`
		DELETE FROM nonces WHERE key IN (
			SELECT key FROM nonces WHERE expires_at < clock_timestamp() LIMIT $1
			FOR UPDATE SKIP LOCKED)`, purgeBatch).Error
	return res.RowsAffected == 1, nil
}

// Unclaim deletes key's claim, whatever its time, so the next Claim of key
// wins: a sign-in that failed after claiming its token gives it back this
// way. Deleting a key that is not there is not an error.
func (db *DB) Unclaim(ctx context.Context, key string) error {
	if key == "" {
		return addon.Errorf(addon.EINTERNAL, "An empty nonce cannot be unclaimed.")
	}
	if err := db.gorm.WithContext(ctx).Exec(`DELETE FROM nonces WHERE key = $1`, key).Error; err != nil {
		return dbError(err, "")
	}
	return nil
}
