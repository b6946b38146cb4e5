package postgres

import (
	"context"
	"strings"

	"gorm.io/gorm"

	"github.com/kiln-dev/kiln/internal/addon"
)

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
	page := make([]*addon.Addon, 0, len(rows))
	for i := range rows {
		a, err := db.addon(&rows[i])
		if err != nil {
			return nil, nil, err
		}
		page = append(page, a)
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
