package postgres

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/kiln-dev/kiln/internal/addon"
)

// eventRow is one line of the addon_events table, an add-on's audit trail.
// The bigserial id keeps the order in which events were recorded.
type eventRow struct {
	ID        int64     `gorm:"column:id;primaryKey"`
	AddonID   string    `gorm:"column:addon_id"`
	Kind      string    `gorm:"column:kind"`
	State     string    `gorm:"column:state"`
	Message   string    `gorm:"column:message"`
	CreatedAt time.Time `gorm:"column:created_at;autoCreateTime:false"`
}

func (eventRow) TableName() string { return "addon_events" }

func (r *eventRow) event() addon.Event {
	return addon.Event{ID: r.ID, AddonID: addon.ID(r.AddonID), Kind: r.Kind, State: addon.State(r.State), Message: r.Message, At: r.CreatedAt.UTC()}
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
		if err := db.known(ctx, id); err != nil {
			return nil, err
		}
	}
	out := make([]addon.Event, len(rows))
	for i := range rows {
		out[i] = rows[i].event()
	}
	return out, nil
}

// EventsToLog returns the add-on's events after its log cursor (all of
// them without a Link), oldest first, at most limit: the log stream's next
// lines, cursor and events in one statement (addon.LinkStore). It does not
// ask whether the add-on exists: the log job has just read it.
func (db *DB) EventsToLog(ctx context.Context, id addon.ID, limit int) ([]addon.Event, error) {
	if !addon.ValidID(string(id)) {
		return nil, addon.NotFound(id)
	}
	var rows []eventRow
	if err := db.gorm.WithContext(ctx).Raw(selectEventsToLog, id, limit).Scan(&rows).Error; err != nil {
		return nil, dbError(err, id)
	}
	out := make([]addon.Event, len(rows))
	for i := range rows {
		out[i] = rows[i].event()
	}
	return out, nil
}

// selectEventsToLog reads the events past the add-on's log cursor.
const selectEventsToLog = `SELECT id, addon_id, kind, state, message, created_at FROM addon_events
	WHERE addon_id = $1 AND id > coalesce((SELECT log_cursor FROM addon_links WHERE addon_id = $1), 0)
	ORDER BY id LIMIT $2`

// insertEventInto starts every insert of audit-trail lines: the columns
// eventArgs and appendFirstEvent give values for, in their order.
const insertEventInto = "INSERT INTO addon_events (addon_id, kind, state, message, created_at) "

// insertEvent records one line of an add-on's audit trail.
const insertEvent = insertEventInto + "VALUES ($1::uuid, $2, $3, $4, $5::timestamptz)"

// eventArgs are the arguments of insertEvent for e.
func eventArgs(id addon.ID, e addon.Event) []any {
	return appendEvent([]any{id}, e)
}

// appendEvent appends e's kind, state, message and time: the values of one
// audit-trail line after its add-on, in insertEventInto's order.
func appendEvent(args []any, e addon.Event) []any {
	return append(args, e.Kind, string(e.State), e.Message, eventTime(e))
}

// appendFirstEvent appends the kind, state, message and time of the first
// of events, or four NULLs when there is none: the event parameters of
// insertAddon and updateAddon, which record it in their own statement.
func appendFirstEvent(args []any, events []addon.Event) []any {
	if len(events) == 0 {
		return append(args, nil, nil, nil, nil)
	}
	return appendEvent(args, events[0])
}

// eventTime is when e happened, now when it does not say.
func eventTime(e addon.Event) time.Time {
	if e.At.IsZero() {
		return time.Now().UTC()
	}
	return e.At.UTC()
}

// insertEvents saves events in the order they were recorded, one INSERT
// each: a multi-row INSERT does not promise the order in which ids are
// drawn, and the id is what Events orders by.
func insertEvents(tx *gorm.DB, id addon.ID, events []addon.Event) error {
	for _, e := range events {
		if err := tx.Exec(insertEvent, eventArgs(id, e)...).Error; err != nil {
			return err
		}
	}
	return nil
}

// known answers addon.NotFound for an add-on the store does not have: a
// query of an add-on's rows that found none cannot tell "none yet" from
// "no such add-on" by itself.
func (db *DB) known(ctx context.Context, id addon.ID) error {
	var n int64
	if err := db.gorm.WithContext(ctx).Model(&addonRow{}).Where("id = ?", id).Count(&n).Error; err != nil {
		return dbError(err, id)
	}
	if n == 0 {
		return addon.NotFound(id)
	}
	return nil
}
