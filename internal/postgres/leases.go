package postgres

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// This file is the store's side of "one writer per add-on" (addon.Lease):
// a lease column pair (lease_owner, lease_until) and a fencing version
// (fence) on the add-on's row, migration 00006. Leases use the database's
// clock, so dynos whose clocks drift still agree on when one lapsed.

// claimAddon takes the lease when it is free or lapsed, bumping the fence, and
// returns the row as the claim found it: one statement, one round trip.
const claimAddon = "UPDATE addons SET lease_owner = $2, lease_until = clock_timestamp() + $3 * interval '1 microsecond', fence = fence + 1 " +
	"WHERE id = $1 AND (lease_until IS NULL OR lease_until <= clock_timestamp()) RETURNING " + addonColumns

// Acquire takes the add-on's writer lease for ttl. When another writer holds
// it, the error is addon.Busy (EUNAVAILABLE, with how long the lease has
// left as RetryAfter); an unknown add-on is addon.NotFound.
func (db *DB) Acquire(ctx context.Context, id addon.ID, owner string, ttl time.Duration) (*addon.Addon, addon.Lease, error) {
	if !addon.ValidID(string(id)) {
		return nil, addon.Lease{}, addon.NotFound(id)
	}
	var row addonRow
	err := scanRow(db.gorm.WithContext(ctx).Raw(claimAddon, id, owner, ttl.Microseconds()).Row(), &row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, addon.Lease{}, db.busy(ctx, id)
	}
	if err != nil {
		return nil, addon.Lease{}, dbError(err, id)
	}
	a, err := db.addon(&row)
	if err != nil {
		return nil, addon.Lease{}, err
	}
	return a, addon.Lease{AddonID: a.ID, Owner: owner, Fence: row.Fence, Until: a.LeaseUntil}, nil
}

// busy explains a refused claim: the add-on does not exist, or who holds it
// and for how long.
func (db *DB) busy(ctx context.Context, id addon.ID) error {
	var owner string
	var left sql.NullFloat64
	err := db.gorm.WithContext(ctx).
		Raw("SELECT lease_owner, extract(epoch FROM lease_until - clock_timestamp())::float8 FROM addons WHERE id = $1", id).
		Row().Scan(&owner, &left)
	if errors.Is(err, sql.ErrNoRows) {
		return addon.NotFound(id)
	}
	if err != nil {
		return dbError(err, id)
	}
	d := time.Duration(left.Float64 * float64(time.Second))
	return addon.Busy(id, owner, d)
}

// Renew extends a lease this writer still holds; addon.LeaseLost when the
// fence moved on (the lease lapsed and another writer claimed the add-on)
// or the lease was released. Matching the owner and a held lease, not only
// the fence, keeps a renewal that waited on the row lock behind the
// writer's own final Record or Release from taking the freed lease again.
func (db *DB) Renew(ctx context.Context, l addon.Lease, ttl time.Duration) (addon.Lease, error) {
	var until time.Time
	err := db.gorm.WithContext(ctx).
		Raw("UPDATE addons SET lease_until = clock_timestamp() + $3 * interval '1 microsecond' "+
			"WHERE id = $1 AND fence = $2 AND lease_owner = $4 AND lease_until IS NOT NULL RETURNING lease_until",
			l.AddonID, l.Fence, ttl.Microseconds(), l.Owner).
		Row().Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return l, addon.LeaseLost(l.AddonID)
	}
	if err != nil {
		return l, dbError(err, l.AddonID)
	}
	l.Until = until.UTC()
	return l, nil
}

// releaseLease frees a lease if it is still this writer's; a lease already
// taken over is left alone.
const releaseLease = "UPDATE addons SET lease_owner = '', lease_until = NULL WHERE id = $1 AND fence = $2"

// Release frees the lease so the next writer need not wait for it to
// lapse. Releasing a lease that was taken over is not an error.
func (db *DB) Release(ctx context.Context, l addon.Lease) error {
	if err := db.gorm.WithContext(ctx).Exec(releaseLease, l.AddonID, l.Fence).Error; err != nil {
		return dbError(err, l.AddonID)
	}
	return nil
}

// Record is Update for the holder of a lease: under the row lock it first
// checks that the fence is still the lease's (addon.LeaseLost otherwise,
// and nothing is written), then runs fn and saves, and with release frees
// the lease in the same transaction.
func (db *DB) Record(ctx context.Context, l addon.Lease, release bool, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	if !addon.ValidID(string(l.AddonID)) {
		return nil, addon.NotFound(l.AddonID)
	}
	return db.update(ctx, l.AddonID, &fencing{fence: l.Fence, release: release}, fn)
}

// fencing is what Record adds to an update: the fence the row must still
// carry, and whether to free the lease on commit.
type fencing struct {
	fence   int64
	release bool
}
