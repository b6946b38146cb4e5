package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/kiln-dev/kiln/internal/addon"
)

// This file lists add-ons by what they are, not by id: the operators'
// pages and API (List, FindByName), the reconciler (Stale) and the outbox
// sweep (Requeued). None is on a hot path, so each is built with GORM's
// query builder and read with Find.

// defaultStaleLimit is the batch Stale, Requeued and Leftovers return when
// asked for no limit, so a backlog cannot load every add-on into one pass.
const defaultStaleLimit = 100

// batch is the number of add-ons a listing asked for limit returns.
func batch(limit int) int {
	if limit <= 0 {
		return defaultStaleLimit
	}
	return limit
}

// Stale lists add-ons with work left (provisioning, deprovisioning, or a
// provisioned add-on with a pending plan change or config vars that never
// reached Heroku) not updated since before, oldest first, at most limit of
// them (100 when limit is not positive). The partial indexes
// addons_stale_idx, addons_pending_plan_idx and addons_unpushed_config_idx
// serve it.
func (db *DB) Stale(ctx context.Context, before time.Time, from addon.StaleFrom, limit int) ([]*addon.Addon, error) {
	limit = batch(limit)
	var rows []addonRow
	q := db.gorm.WithContext(ctx)
	if !from.UpdatedAt.IsZero() {
		// The page after the previous sweep's: a row comparison, which the
		// order below (updated_at, id) continues.
		q = q.Where("(updated_at, id) > (?, ?::uuid)", from.UpdatedAt.UTC(), string(from.ID))
	}
	err := q.
		// This is addon.Addon.NextJob's rule in SQL (mock.StoreContract
		// holds the two to each other, shape by shape).
		// The states are literals, not parameters, so that the planner can
		// match the partial index's predicate even with a generic plan.
		// Add-ons whose lease is held are being worked on; a halted job
		// waits for an operator (see addon.Addon.Halted) and stops only
		// its own kind ('addon:plan', 'addon:config': addon.JobKind).
		Where(`(state IN ('provisioning', 'deprovisioning')
			OR (state = 'provisioned' AND pending_plan <> '' AND halted_job <> 'addon:plan')
			OR (state = 'provisioned' AND config_pushed_at IS NULL AND access_token IS NOT NULL AND halted_job <> 'addon:config'))
			AND updated_at < ? AND (lease_until IS NULL OR lease_until < now())`, before.UTC()).
		Order("updated_at, id").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, dbError(err, "")
	}
	return db.listed(rows)
}

// Requeued lists add-ons whose enqueue failed (addon.Addon.Requeue), oldest
// first, for the worker's outbox sweep; the partial index addons_requeue_idx
// keeps it cheap enough to run every few seconds.
func (db *DB) Requeued(ctx context.Context, limit int) ([]*addon.Addon, error) {
	limit = batch(limit)
	var rows []addonRow
	if err := db.gorm.WithContext(ctx).Where("requeue").Order("updated_at, id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, dbError(err, "")
	}
	return db.listed(rows)
}

// Leftovers lists failed add-ons requested before before that may still
// hold what provisioning made (addon.Addon.Leftover's rule in SQL, where
// Synchronous is no grant, no exchange and no token; the contract
// holds the two to each other), oldest request first, through the partial
// index addons_leftover_idx: only such add-ons are in it, so it stays small
// whatever the table's size.
func (db *DB) Leftovers(ctx context.Context, before time.Time, limit int) ([]*addon.Addon, error) {
	limit = batch(limit)
	var rows []addonRow
	err := db.gorm.WithContext(ctx).
		Where(`state = 'failed' AND (resource_created_at IS NOT NULL OR access_token IS NOT NULL OR (grant_code IS NULL AND grant_exchanged_at IS NULL)) AND created_at < ?`, before.UTC()).
		Order("created_at, id").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, dbError(err, "")
	}
	return db.listed(rows)
}

// listed decodes the rows a sweep listed, in their order, leaving out
// those it cannot read (addon.UnreadableError, returned with the rest):
// one row sealed with a key no longer configured must not stop every
// sweep.
func (db *DB) listed(rows []addonRow) ([]*addon.Addon, error) {
	out := make([]*addon.Addon, 0, len(rows))
	var bad *addon.UnreadableError
	for i := range rows {
		a, err := db.addon(&rows[i])
		if err != nil {
			if bad == nil {
				bad = &addon.UnreadableError{Err: err}
			}
			bad.IDs = append(bad.IDs, addon.ID(rows[i].ID))
			continue
		}
		out = append(out, a)
	}
	if bad != nil {
		return out, bad
	}
	return out, nil
}

// addons decodes rows, in their order, or fails with the first row it
// cannot read: a page an operator asked for is whole or an error.
func (db *DB) addons(rows []addonRow) ([]*addon.Addon, error) {
	out, err := db.listed(rows)
	var bad *addon.UnreadableError
	if errors.As(err, &bad) {
		return nil, bad.Err
	}
	return out, err
}

// List returns one page of add-ons with keyset pagination: the page starts
// after (or at) the Range's start and one row more than asked is read to
// learn whether another page follows, so no page needs OFFSET or COUNT.
// Paging by id uses the primary key, by created_at the (created_at, id)
// index of migration 00004; ties on created_at are broken by id.
func (db *DB) List(ctx context.Context, f addon.Filter, r addon.Range) ([]*addon.Addon, *addon.Range, error) {
	r = r.WithDefaults()
	if err := r.Validate(); err != nil {
		return nil, nil, err
	}
	q := db.gorm.WithContext(ctx).Model(&addonRow{})
	if f.State != "" {
		q = q.Where("state = ?", string(f.State))
	}
	if f.Plan != "" {
		q = q.Where("plan = ?", f.Plan)
	}
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.NameContains != "" {
		q = q.Where(`name ILIKE ? ESCAPE '\'`, "%"+escapeLike(f.NameContains)+"%")
	}
	if f.App != "" {
		q = q.Where("id IN (SELECT addon_id FROM addon_links WHERE lower(app_name) = lower(?))", f.App)
	}
	q = keyset(q, r)

	var rows []addonRow
	if err := q.Limit(r.Max + 1).Find(&rows).Error; err != nil {
		return nil, nil, dbError(err, "")
	}
	var next *addon.Range
	if len(rows) > r.Max {
		rows = rows[:r.Max]
		next = &r
	}
	page, err := db.addons(rows)
	if err != nil {
		return nil, nil, err
	}
	if next != nil {
		next.Start, next.Exclusive = r.Cursor(page[len(page)-1]), true
	}
	return page, next, nil
}

// keyset adds the Range's start bound and order to q. Validate has checked
// the start, so parsing it cannot fail here.
func keyset(q *gorm.DB, r addon.Range) *gorm.DB {
	op, dir := ">", "ASC"
	if r.Desc {
		op, dir = "<", "DESC"
	}
	if !r.Exclusive {
		op += "="
	}
	if r.Field == addon.RangeCreatedAt {
		if r.Start != "" {
			t, id, _ := addon.ParseCreatedAtCursor(r.Start)
			if id != "" {
				// A row comparison: the index on (created_at, id) serves it.
				q = q.Where("(created_at, id) "+op+" (?, ?)", t, id)
			} else {
				q = q.Where("created_at "+op+" ?", t)
			}
		}
		return q.Order("created_at " + dir + ", id " + dir)
	}
	if r.Start != "" {
		q = q.Where("id "+op+" ?", strings.ToLower(r.Start))
	}
	return q.Order("id " + dir)
}

// escapeLike makes s match itself literally in a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// FindByName returns the add-on named name: the one live add-on with that
// name, else the newest deprovisioned one. Two live add-ons sharing a name
// (Heroku makes names unique, so only a bug or a hand-edited row can do
// that) are ECONFLICT rather than a guess, because operators act on what
// this returns.
func (db *DB) FindByName(ctx context.Context, name string) (*addon.Addon, error) {
	if name == "" {
		return nil, addon.NotFound(name)
	}
	var rows []addonRow
	err := db.gorm.WithContext(ctx).
		Where("name = ? AND state <> ?", name, string(addon.StateDeprovisioned)).
		Order("created_at DESC, id DESC").Limit(2).Find(&rows).Error
	if err != nil {
		return nil, dbError(err, name)
	}
	if len(rows) > 1 {
		return nil, addon.Errorf(addon.ECONFLICT, "Several add-ons are named %q (%s, %s); use an id.", name, rows[0].ID, rows[1].ID)
	}
	if len(rows) == 0 {
		err = db.gorm.WithContext(ctx).Where("name = ?", name).
			Order("created_at DESC, id DESC").Limit(1).Find(&rows).Error
		if err != nil {
			return nil, dbError(err, name)
		}
		if len(rows) == 0 {
			return nil, addon.NotFound(name)
		}
	}
	return db.addon(&rows[0])
}
