package postgres

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/kiln-dev/kiln/internal/addon"
)

// defaultStaleLimit is the batch Stale returns when asked for no limit, so a
// backlog cannot load every add-on into one reconciler pass.
const defaultStaleLimit = 100

// Create records a new add-on with INSERT ... ON CONFLICT DO NOTHING, so the
// primary key, not a read-then-write, decides between concurrent duplicates:
// exactly one caller gets created=true; the others get the stored add-on.
// updated_at is the database's clock; created_at is a.CreatedAt (Heroku's
// request time as the service saw it) or the database's clock when zero.
func (db *DB) Create(ctx context.Context, a *addon.Addon) (*addon.Addon, bool, error) {
	if !addon.ValidID(string(a.ID)) {
		return nil, false, addon.Errorf(addon.EINVALID, "The uuid %q is not a valid UUID.", a.ID)
	}
	cols, err := db.columns(a)
	if err != nil {
		return nil, false, err
	}
	events := a.TakeEvents()
	if len(events) <= 1 {
		// The hot path (every provision call): one statement; see fast.go.
		return db.create(ctx, a, cols, events)
	}
	cols["id"] = a.ID
	cols["created_at"] = gorm.Expr("now()")
	if !a.CreatedAt.IsZero() {
		cols["created_at"] = a.CreatedAt.UTC()
	}
	cols["updated_at"] = gorm.Expr("now()")

	var created bool
	var row addonRow
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&addonRow{}).
			Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoNothing: true}).
			Create(cols)
		if res.Error != nil {
			return res.Error
		}
		created = res.RowsAffected == 1
		if created {
			if err := insertEvents(tx, a.ID, events); err != nil {
				return err
			}
		}
		return tx.Where("id = ?", a.ID).Take(&row).Error
	})
	if err != nil {
		return nil, false, dbError(err, a.ID)
	}
	stored, err := db.addon(&row)
	if err != nil {
		return nil, false, err
	}
	return stored, created, nil
}

// Get returns the add-on, or addon.NotFound.
func (db *DB) Get(ctx context.Context, id addon.ID) (*addon.Addon, error) {
	if !addon.ValidID(string(id)) {
		return nil, addon.NotFound(id)
	}
	row, err := db.getRow(ctx, id)
	if err != nil {
		return nil, dbError(err, id)
	}
	return db.addon(&row)
}

// Update runs fn on the add-on under a row lock (SELECT ... FOR UPDATE) and
// saves the add-on and its new events in the same transaction, so concurrent
// updates of one add-on queue behind each other and none is lost. An error
// from fn rolls everything back and is returned exactly as fn returned it.
func (db *DB) Update(ctx context.Context, id addon.ID, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	if !addon.ValidID(string(id)) {
		return nil, addon.NotFound(id)
	}
	return db.update(ctx, id, nil, fn)
}

// Stale lists add-ons with work left (provisioning, deprovisioning, or a
// provisioned add-on with a pending plan change or config vars that never
// reached Heroku) not updated since before, oldest first, at most limit of
// them (100 when limit is not positive). The partial indexes
// addons_stale_idx, addons_pending_plan_idx and addons_unpushed_config_idx
// serve it.
func (db *DB) Stale(ctx context.Context, before time.Time, limit int) ([]*addon.Addon, error) {
	if limit <= 0 {
		limit = defaultStaleLimit
	}
	var rows []addonRow
	err := db.gorm.WithContext(ctx).
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
	out := make([]*addon.Addon, 0, len(rows))
	for i := range rows {
		a, err := db.addon(&rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Events returns the add-on's audit trail, oldest first, or addon.NotFound
// for an unknown add-on.
func (db *DB) Events(ctx context.Context, id addon.ID) ([]addon.Event, error) {
	if !addon.ValidID(string(id)) {
		return nil, addon.NotFound(id)
	}
	var rows []eventRow
	if err := db.gorm.WithContext(ctx).Where("addon_id = ?", id).Order("id").Find(&rows).Error; err != nil {
		return nil, dbError(err, id)
	}
	if len(rows) == 0 {
		var n int64
		if err := db.gorm.WithContext(ctx).Model(&addonRow{}).Where("id = ?", id).Count(&n).Error; err != nil {
			return nil, dbError(err, id)
		}
		if n == 0 {
			return nil, addon.NotFound(id)
		}
	}
	out := make([]addon.Event, len(rows))
	for i, r := range rows {
		out[i] = addon.Event{
			ID:      r.ID,
			AddonID: addon.ID(r.AddonID),
			Kind:    r.Kind,
			State:   addon.State(r.State),
			Message: r.Message,
			At:      r.CreatedAt.UTC(),
		}
	}
	return out, nil
}

// insertEvents saves events in the order they were recorded; the bigserial
// id keeps that order for Events.
func insertEvents(tx *gorm.DB, id addon.ID, events []addon.Event) error {
	if len(events) == 0 {
		return nil
	}
	// One INSERT per event: a multi-row INSERT does not promise the order
	// in which ids are drawn.
	for _, e := range events {
		at := e.At.UTC()
		if e.At.IsZero() {
			at = time.Now().UTC()
		}
		row := eventRow{AddonID: string(id), Kind: e.Kind, State: string(e.State), Message: e.Message, CreatedAt: at}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
	}
	return nil
}
