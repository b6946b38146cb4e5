package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.LinkStore = (*DB)(nil)

// linkRow is an add-on's Link as the addon_links table holds it.
type linkRow struct {
	AddonID               string     `gorm:"column:addon_id;primaryKey"`
	AppID                 string     `gorm:"column:app_id"`
	AppName               string     `gorm:"column:app_name"`
	HerokuState           string     `gorm:"column:heroku_state"`
	SyncedAt              *time.Time `gorm:"column:synced_at"`
	NextSyncAt            *time.Time `gorm:"column:next_sync_at"`
	AccessRefused         string     `gorm:"column:access_refused"`
	AccessRefusedAt       *time.Time `gorm:"column:access_refused_at"`
	WebhookID             string     `gorm:"column:webhook_id"`
	WebhookSecret         []byte     `gorm:"column:webhook_secret"`
	SubscribedAt          *time.Time `gorm:"column:subscribed_at"`
	Attachments           []byte     `gorm:"column:attachments"`
	LogCursor             int64      `gorm:"column:log_cursor"`
	MarkedDeprovisionedAt *time.Time `gorm:"column:marked_deprovisioned_at"`
	RetiredVars           []byte     `gorm:"column:retired_vars"`
	RetireAt              *time.Time `gorm:"column:retire_at"`
	UpdatedAt             time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (linkRow) TableName() string { return "addon_links" }

// linkSealContext binds a sealed Link value to its add-on and column.
func linkSealContext(id, column string) string {
	return "addon_links/" + strings.ToLower(id) + "/" + column
}

func (db *DB) link(r *linkRow) (*addon.Link, error) {
	l := &addon.Link{
		AddonID:               addon.ID(r.AddonID),
		AppID:                 r.AppID,
		AppName:               r.AppName,
		HerokuState:           r.HerokuState,
		SyncedAt:              timeOf(r.SyncedAt),
		NextSyncAt:            timeOf(r.NextSyncAt),
		AccessRefused:         r.AccessRefused,
		AccessRefusedAt:       timeOf(r.AccessRefusedAt),
		WebhookID:             r.WebhookID,
		SubscribedAt:          timeOf(r.SubscribedAt),
		LogCursor:             r.LogCursor,
		MarkedDeprovisionedAt: timeOf(r.MarkedDeprovisionedAt),
		RetireAt:              timeOf(r.RetireAt),
	}
	if len(r.Attachments) > 0 {
		if err := json.Unmarshal(r.Attachments, &l.Attachments); err != nil {
			return nil, addon.Wrap(addon.EINTERNAL, err, "The attachments of add-on %s cannot be decoded.", r.AddonID)
		}
	}
	if r.WebhookSecret != nil {
		b, err := db.keys.OpenFor(r.WebhookSecret, linkSealContext(r.AddonID, "webhook_secret"))
		if err != nil {
			return nil, addon.Wrap(addon.EINTERNAL, err, "The webhook secret of add-on %s cannot be decrypted.", r.AddonID)
		}
		l.WebhookSecret = string(b)
	}
	if r.RetiredVars != nil {
		b, err := db.keys.OpenFor(r.RetiredVars, linkSealContext(r.AddonID, "retired_vars"))
		if err != nil {
			return nil, addon.Wrap(addon.EINTERNAL, err, "The retired credentials of add-on %s cannot be decrypted.", r.AddonID)
		}
		if err := json.Unmarshal(b, &l.RetiredVars); err != nil {
			return nil, addon.Wrap(addon.EINTERNAL, err, "The retired credentials of add-on %s cannot be decoded.", r.AddonID)
		}
	}
	return l, nil
}

func (db *DB) linkColumns(l *addon.Link) (map[string]any, error) {
	att := l.Attachments
	if att == nil {
		att = []addon.Attachment{}
	}
	attJSON, err := json.Marshal(att)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode attachments: %w", err)
	}
	c := map[string]any{
		"app_id":                  l.AppID,
		"app_name":                l.AppName,
		"heroku_state":            l.HerokuState,
		"synced_at":               timeOrNull(l.SyncedAt),
		"next_sync_at":            timeOrNull(l.NextSyncAt),
		"access_refused":          l.AccessRefused,
		"access_refused_at":       timeOrNull(l.AccessRefusedAt),
		"webhook_id":              l.WebhookID,
		"webhook_secret":          nil,
		"subscribed_at":           timeOrNull(l.SubscribedAt),
		"attachments":             string(attJSON),
		"log_cursor":              l.LogCursor,
		"marked_deprovisioned_at": timeOrNull(l.MarkedDeprovisionedAt),
		"retired_vars":            nil,
		"retire_at":               timeOrNull(l.RetireAt),
		"updated_at":              gorm.Expr("now()"),
	}
	if l.WebhookSecret != "" {
		s, err := db.keys.SealFor([]byte(l.WebhookSecret), linkSealContext(string(l.AddonID), "webhook_secret"))
		if err != nil {
			return nil, addon.Wrap(addon.EINTERNAL, err, "Cannot encrypt a secret.")
		}
		c["webhook_secret"] = s
	}
	if l.RetiredVars != nil {
		b, err := json.Marshal(l.RetiredVars)
		if err != nil {
			return nil, fmt.Errorf("postgres: encode retired vars: %w", err)
		}
		s, err := db.keys.SealFor(b, linkSealContext(string(l.AddonID), "retired_vars"))
		if err != nil {
			return nil, addon.Wrap(addon.EINTERNAL, err, "Cannot encrypt a secret.")
		}
		c["retired_vars"] = s
	}
	return c, nil
}

// Link returns the add-on's Link, a zero one when none is recorded yet, or
// ENOTFOUND for an unknown add-on.
func (db *DB) Link(ctx context.Context, id addon.ID) (*addon.Link, error) {
	if !addon.ValidID(string(id)) {
		return nil, addon.NotFound(id)
	}
	var rows []linkRow
	if err := db.gorm.WithContext(ctx).Where("addon_id = ?", id).Limit(1).Find(&rows).Error; err != nil {
		return nil, dbError(err, id)
	}
	if len(rows) == 0 {
		if err := db.known(ctx, id); err != nil {
			return nil, err
		}
		return &addon.Link{AddonID: id}, nil
	}
	return db.link(&rows[0])
}

// UpdateLink loads (or starts) the Link under a row lock, calls fn and
// saves it, in one transaction.
func (db *DB) UpdateLink(ctx context.Context, id addon.ID, fn func(l *addon.Link) error) (*addon.Link, error) {
	var out *addon.Link
	err := db.withLink(ctx, id, func(tx *gorm.DB, l *addon.Link) error {
		if err := fn(l); err != nil {
			return err
		}
		out = l
		return nil
	})
	return out, err
}

// ApplyEvent runs fn on the Link once per event id: the id is inserted in
// the same transaction, so a repeat (even a concurrent one) finds it and
// changes nothing.
func (db *DB) ApplyEvent(ctx context.Context, id addon.ID, eventID string, fn func(l *addon.Link) error) (bool, error) {
	applied := false
	err := db.withLink(ctx, id, func(tx *gorm.DB, l *addon.Link) error {
		res := tx.Exec("INSERT INTO addon_webhook_events (event_id, addon_id) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING", eventID, id)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errSeen
		}
		applied = true
		return fn(l)
	})
	if errors.Is(err, errSeen) {
		return false, nil
	}
	return applied, err
}

var errSeen = errors.New("event already applied")

func (db *DB) withLink(ctx context.Context, id addon.ID, fn func(tx *gorm.DB, l *addon.Link) error) error {
	if !addon.ValidID(string(id)) {
		return addon.NotFound(id)
	}
	err := db.transact(ctx, func(tx *gorm.DB) error {
		ins := tx.Exec("INSERT INTO addon_links (addon_id) VALUES ($1) ON CONFLICT (addon_id) DO NOTHING", id)
		if ins.Error != nil {
			return ins.Error
		}
		var row linkRow
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("addon_id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		l, err := db.link(&row)
		if err != nil {
			return err
		}
		if err := fn(tx, l); err != nil {
			return err
		}
		cols, err := db.linkColumns(l)
		if err != nil {
			return err
		}
		return tx.Model(&linkRow{}).Where("addon_id = ?", id).Updates(cols).Error
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" { // foreign_key_violation: no such add-on
		return addon.NotFound(id)
	}
	if errors.Is(err, errSeen) {
		return err
	}
	return dbError(err, id)
}

// Links returns the Links of the given add-ons, for listings.
func (db *DB) Links(ctx context.Context, ids []addon.ID) (map[addon.ID]*addon.Link, error) {
	out := map[addon.ID]*addon.Link{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []linkRow
	if err := db.gorm.WithContext(ctx).Where("addon_id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, dbError(err, "")
	}
	for i := range rows {
		l, err := db.link(&rows[i])
		if err != nil {
			return nil, err
		}
		out[l.AddonID] = l
	}
	return out, nil
}

func (db *DB) ids(ctx context.Context, query string, args ...any) ([]addon.ID, error) {
	var rows []string
	if err := db.gorm.WithContext(ctx).Raw(query, args...).Scan(&rows).Error; err != nil {
		return nil, dbError(err, "")
	}
	ids := make([]addon.ID, len(rows))
	for i, id := range rows {
		ids[i] = addon.ID(id)
	}
	return ids, nil
}

// DueForSync lists live add-ons whose sync slot has come, or that have no
// slot yet.
func (db *DB) DueForSync(ctx context.Context, now time.Time, limit int) ([]addon.ID, error) {
	return db.ids(ctx, `SELECT a.id::text FROM addons a LEFT JOIN addon_links l ON l.addon_id = a.id
		WHERE a.state = 'provisioned' AND a.access_token IS NOT NULL
		AND (l.next_sync_at IS NULL OR l.next_sync_at <= $1)
		ORDER BY l.next_sync_at NULLS FIRST LIMIT $2`, now.UTC(), limit)
}

// Unsubscribed lists provisioned add-ons with Platform API access and no
// webhook subscription, leaving out those refused one since refusedBefore.
func (db *DB) Unsubscribed(ctx context.Context, before, refusedBefore time.Time, limit int) ([]addon.ID, error) {
	return db.ids(ctx, `SELECT a.id::text FROM addons a LEFT JOIN addon_links l ON l.addon_id = a.id
		WHERE a.state = 'provisioned' AND a.access_token IS NOT NULL AND a.updated_at < $1
		AND coalesce(l.webhook_id, '') = '' AND coalesce(l.access_refused, '') = ''
		AND (l.subscribed_at IS NULL OR l.subscribed_at < $2)
		ORDER BY a.updated_at LIMIT $3`, before.UTC(), refusedBefore.UTC(), limit)
}

// DueForRetire lists add-ons whose rotated-out credentials are due.
func (db *DB) DueForRetire(ctx context.Context, now time.Time, limit int) ([]addon.ID, error) {
	return db.ids(ctx, `SELECT addon_id::text FROM addon_links WHERE retire_at IS NOT NULL AND retire_at <= $1
		ORDER BY retire_at LIMIT $2`, now.UTC(), limit)
}

// LogBacklog lists add-ons with a log stream and events it has not had,
// recorded after since and not after until.
func (db *DB) LogBacklog(ctx context.Context, since, until time.Time, limit int) ([]addon.ID, error) {
	return db.ids(ctx, `SELECT DISTINCT e.addon_id::text FROM addon_events e
		JOIN addons a ON a.id = e.addon_id
		LEFT JOIN addon_links l ON l.addon_id = e.addon_id
		WHERE e.created_at > $1 AND e.created_at <= $2 AND a.log_input_url IS NOT NULL AND e.id > coalesce(l.log_cursor, 0)
		LIMIT $3`, since.UTC(), until.UTC(), limit)
}

// AdvanceLogCursor moves the add-on's log cursor forward, never back, in
// one statement (the row is started when there is none; a cursor that is
// already as far is left alone, so no row version is written for it): the
// log job's write, without UpdateLink's transaction of five round trips.
func (db *DB) AdvanceLogCursor(ctx context.Context, id addon.ID, cursor int64) error {
	if !addon.ValidID(string(id)) {
		return addon.NotFound(id)
	}
	err := db.gorm.WithContext(ctx).Exec(`INSERT INTO addon_links (addon_id, log_cursor) VALUES ($1, $2)
		ON CONFLICT (addon_id) DO UPDATE SET log_cursor = EXCLUDED.log_cursor, updated_at = now()
		WHERE addon_links.log_cursor < EXCLUDED.log_cursor`, id, cursor).Error
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" { // foreign_key_violation: no such add-on
		return addon.NotFound(id)
	}
	return dbError(err, id)
}

// CountAccessRefused counts live add-ons whose token Heroku refused.
func (db *DB) CountAccessRefused(ctx context.Context) (int64, error) {
	var n int64
	err := db.gorm.WithContext(ctx).Raw(`SELECT count(*) FROM addon_links l JOIN addons a ON a.id = l.addon_id
		WHERE l.access_refused <> '' AND a.state = 'provisioned'`).Scan(&n).Error
	if err != nil {
		return 0, dbError(err, "")
	}
	return n, nil
}

// PruneEvents forgets webhook event ids received before the given time.
func (db *DB) PruneEvents(ctx context.Context, before time.Time) error {
	if err := db.gorm.WithContext(ctx).Exec("DELETE FROM addon_webhook_events WHERE received_at < $1", before.UTC()).Error; err != nil {
		return dbError(err, "")
	}
	return nil
}
