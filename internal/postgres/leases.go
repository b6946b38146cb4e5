package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// This file is the store's side of "one writer per add-on" (addon.Lease):
// a lease column pair (lease_owner, lease_until) and a fencing version
// (fence) on the add-on's row, migration 00006. Leases use the database's
// clock, so dynos whose clocks drift still agree on when one lapsed.

// claimAddon takes the lease when it is free or lapsed, bumping the fence, and
// returns the row as the claim found it: one statement, one round trip.
const claimAddon = "UPDATE addons SET " + takeLease + " WHERE id = $1 AND " + leaseFree + " RETURNING " + addonColumns + ", false"

// claimForExchange is claimAddon for the grant exchange: when the add-on
// owes one (provisioning, a grant held, none exchanged) it also records
// that an exchange starts (exchange_started_at, kept when an earlier
// attempt set it; updated_at moves only when it is set here), and its last
// column says whether this claim set it: whether the row, as locked (prev,
// which takes the row lock first, so it is the version the UPDATE then
// changes), had no mark. The SET expressions read the row before the
// update, RETURNING after it.
const claimForExchange = "WITH prev AS (SELECT exchange_started_at IS NULL AS unmarked FROM addons WHERE id = $1 FOR NO KEY UPDATE) " +
	"UPDATE addons SET " + takeLease + ", " +
	"exchange_started_at = CASE WHEN " + owesExchange + " THEN coalesce(exchange_started_at, statement_timestamp()) ELSE exchange_started_at END, " +
	"updated_at = CASE WHEN " + owesExchange + " AND exchange_started_at IS NULL THEN " + nextUpdatedAt + " ELSE updated_at END " +
	"FROM prev WHERE id = $1 AND " + leaseFree + " RETURNING " + addonColumns + ", " +
	"coalesce(" + owesExchange + " AND prev.unmarked, false)"

const (
	takeLease    = "lease_owner = $2, lease_until = clock_timestamp() + $3 * interval '1 microsecond', fence = fence + 1"
	leaseFree    = "(lease_until IS NULL OR lease_until <= clock_timestamp())"
	owesExchange = "(state = 'provisioning' AND grant_exchanged_at IS NULL AND grant_code IS NOT NULL)"
)

// Acquire takes the add-on's writer lease for ttl. When another writer holds
// it, the error is addon.Busy (EUNAVAILABLE, with how long the lease has
// left as RetryAfter); an unknown add-on is addon.NotFound.
func (db *DB) Acquire(ctx context.Context, id addon.ID, owner string, ttl time.Duration) (*addon.Addon, addon.Lease, error) {
	a, l, _, err := db.acquire(ctx, claimAddon, id, owner, ttl)
	return a, l, err
}

// AcquireExchange is Acquire for the grant job, with the "exchange
// started" mark in the claim's own statement (claimForExchange): one write
// fewer per add-on than a claim and a record.
func (db *DB) AcquireExchange(ctx context.Context, id addon.ID, owner string, ttl time.Duration) (*addon.Addon, addon.Lease, bool, error) {
	return db.acquire(ctx, claimForExchange, id, owner, ttl)
}

func (db *DB) acquire(ctx context.Context, claim string, id addon.ID, owner string, ttl time.Duration) (*addon.Addon, addon.Lease, bool, error) {
	if !addon.ValidID(string(id)) {
		return nil, addon.Lease{}, false, addon.NotFound(id)
	}
	var row addonRow
	var started bool
	err := db.gorm.WithContext(ctx).Raw(claim, id, owner, ttl.Microseconds()).Row().Scan(append(row.targets(), &started)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, addon.Lease{}, false, db.busy(ctx, id)
	}
	if err != nil {
		return nil, addon.Lease{}, false, dbError(err, id)
	}
	a, err := db.addon(&row)
	if err != nil {
		return nil, addon.Lease{}, false, err
	}
	return a, addon.Lease{AddonID: a.ID, Owner: owner, Fence: row.Fence, Until: a.LeaseUntil}, started, nil
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
//
// With seen (the add-on as this writer last claimed or recorded it), the
// usual case, a writer who is the add-on's only writer, costs one
// statement, not a transaction of two round trips: fn runs on a copy of
// seen and the row is written only if it still carries the lease's fence
// and seen's updated_at (recordSeen). Otherwise (the row changed since:
// a plain Update such as Heroku's DELETE or a recorded plan, the lease
// lapsed, or fn refused the copy) it falls back to the locked transaction,
// and fn runs again, on the row as stored now.
func (db *DB) Record(ctx context.Context, l addon.Lease, seen *addon.Addon, release bool, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	if !addon.ValidID(string(l.AddonID)) {
		return nil, addon.NotFound(l.AddonID)
	}
	if seen != nil && seen.ID == l.AddonID && !seen.UpdatedAt.IsZero() {
		saved, err := db.recordSeen(ctx, l, seen, release, fn)
		if saved != nil || err != nil {
			return saved, err
		}
	}
	return db.update(ctx, l.AddonID, &fencing{fence: l.Fence, release: release}, fn)
}

// recordSeen is Record's one-statement path: it saves fn's change to a
// copy of seen with recordSeenSQL, which writes only while the row's fence
// is the lease's and its updated_at is seen's. Every write of an add-on's
// data sets updated_at after waiting for the row lock, to a value the row
// never had (nextUpdatedAt), so a row written by anyone since seen was
// read carries another updated_at. (Releases of Kiln before this one
// wrote clock_timestamp(), which repeats only if the database's clock
// steps back; no new column was needed.) It returns nil and no error when
// nothing was written (stale, or fn refused the copy): the caller takes
// the locked path.
func (db *DB) recordSeen(ctx context.Context, l addon.Lease, seen *addon.Addon, release bool, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	a := seen.Clone()
	if err := fn(ctx, a); err != nil {
		return nil, nil // maybe a refusal of a stale copy: ask the row
	}
	events := a.TakeEvents()
	if len(events) > maxSeenEvents {
		return nil, nil
	}
	args := make([]any, 1, 3+addonWriteCount+4*len(events))
	args[0] = l.AddonID
	args, err := db.appendValues(args, a)
	if err != nil {
		return nil, err
	}
	args = append(args, l.Fence, seen.UpdatedAt.UTC())
	for _, e := range events {
		args = appendEvent(args, e)
	}
	var updatedAt time.Time
	var leaseUntil *time.Time
	if err = db.gate.enter(ctx); err == nil {
		err = hotRow(ctx, db.gorm, recordSeenSQL[boolIndex(release)][len(events)], args...).Scan(&updatedAt, &a.LeaseOwner, &leaseUntil)
		db.gate.leave()
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil // the row changed since seen, or the lease moved on
	}
	if err != nil {
		return nil, dbError(err, l.AddonID)
	}
	a.LeaseUntil, a.Fence = timeOf(leaseUntil), l.Fence // as renewals left them, or freed
	return written(a, a.CreatedAt, updatedAt), nil
}

// maxSeenEvents is how many events recordSeen writes in its statement; a
// record with more (none in Kiln today) takes the locked path.
const maxSeenEvents = 4

// recordSeenSQL[release][n] is recordSeen's statement for n events: the
// fenced, version-checked UPDATE (freeing the lease with release), then
// each event inserted only for a row actually updated. Each event's
// insert reads the one before it (e2 FROM e1), so their ids are drawn in
// order; the sub-statements of a WITH otherwise run in no promised order.
var recordSeenSQL = func() (q [2][maxSeenEvents + 1]string) {
	for r, free := range []string{"", "lease_owner = '', lease_until = NULL, "} {
		for n := 0; n <= maxSeenEvents; n++ {
			var b strings.Builder
			b.WriteString("WITH up AS (UPDATE addons SET updated_at = " + nextUpdatedAt + ", " + free + "(" + addonWrites + ") = ROW(")
			b.WriteString(placeholders(2, addonWriteCount))
			p := 2 + addonWriteCount // the fence, then seen's updated_at
			fmt.Fprintf(&b, ") WHERE id = $1 AND fence = $%d AND updated_at = $%d::timestamptz RETURNING id, updated_at, lease_owner, lease_until)", p, p+1)
			from := "up"
			for e := 1; e <= n; e++ {
				k := p + 2 + 4*(e-1)
				fmt.Fprintf(&b, ", e%d AS ("+insertEventInto+
					"SELECT id, $%d, $%d, $%d, $%d::timestamptz FROM %s RETURNING addon_id AS id)", e, k, k+1, k+2, k+3, from)
				from = fmt.Sprintf("e%d", e)
			}
			b.WriteString(" SELECT updated_at, lease_owner, lease_until FROM up")
			q[r][n] = b.String()
		}
	}
	return q
}()

// boolIndex is 1 for true, 0 for false.
func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fencing is what Record adds to an update: the fence the row must still
// carry, and whether to free the lease on commit.
type fencing struct {
	fence   int64
	release bool
}
