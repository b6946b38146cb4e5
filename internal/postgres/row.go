package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/secret"
)

// addonRow is an add-on as the addons table holds it: secrets sealed,
// optional values NULL. Writes go through (*DB).appendValues so every
// column is written explicitly; this struct is for reading.
type addonRow struct {
	ID                string     `gorm:"column:id;primaryKey"`
	Name              string     `gorm:"column:name"`
	Plan              string     `gorm:"column:plan"`
	PendingPlan       string     `gorm:"column:pending_plan"`
	PendingPlanAt     *time.Time `gorm:"column:pending_plan_at"`
	Region            string     `gorm:"column:region"`
	CallbackURL       string     `gorm:"column:callback_url"`
	Options           []byte     `gorm:"column:options"`
	LogInputURL       []byte     `gorm:"column:log_input_url"`
	LogDrainToken     []byte     `gorm:"column:log_drain_token"`
	State             string     `gorm:"column:state"`
	Reason            string     `gorm:"column:reason"`
	GrantCode         []byte     `gorm:"column:grant_code"`
	GrantExpiresAt    *time.Time `gorm:"column:grant_expires_at"`
	AccessToken       []byte     `gorm:"column:access_token"`
	RefreshToken      []byte     `gorm:"column:refresh_token"`
	TokenExpiresAt    *time.Time `gorm:"column:token_expires_at"`
	HerokuUserID      string     `gorm:"column:heroku_user_id"`
	Vars              []byte     `gorm:"column:vars"`
	GrantExchangedAt  *time.Time `gorm:"column:grant_exchanged_at"`
	ResourceCreatedAt *time.Time `gorm:"column:resource_created_at"`
	ConfigPushedAt    *time.Time `gorm:"column:config_pushed_at"`
	ProvisionedAt     *time.Time `gorm:"column:provisioned_at"`
	DeprovisionedAt   *time.Time `gorm:"column:deprovisioned_at"`
	Deadline          *time.Time `gorm:"column:deadline"`
	ExchangeStartedAt *time.Time `gorm:"column:exchange_started_at"`
	Requeue           bool       `gorm:"column:requeue"`
	HaltedJob         string     `gorm:"column:halted_job"`
	HaltReason        string     `gorm:"column:halt_reason"`
	LeaseOwner        string     `gorm:"column:lease_owner"`
	LeaseUntil        *time.Time `gorm:"column:lease_until"`
	Fence             int64      `gorm:"column:fence"`
	CreatedAt         time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt         time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (addonRow) TableName() string { return "addons" }

// addonColumns is every column addonRow reads, in the order scanRow scans.
const addonColumns = "id, name, plan, pending_plan, region, callback_url, options, log_input_url, log_drain_token, " +
	"state, reason, grant_code, grant_expires_at, access_token, refresh_token, token_expires_at, heroku_user_id, vars, " +
	"grant_exchanged_at, resource_created_at, config_pushed_at, provisioned_at, deprovisioned_at, deadline, created_at, updated_at, " +
	"exchange_started_at, requeue, halted_job, halt_reason, lease_owner, lease_until, fence, pending_plan_at"

// scanRow reads one addons row selected as addonColumns. It scans by hand,
// not through GORM's reflection, because Get and Update read a row on
// every pipeline step.
func scanRow(s interface{ Scan(...any) error }, r *addonRow) error {
	return s.Scan(r.targets()...)
}

// targets are the scan destinations of addonColumns, in order.
func (r *addonRow) targets() []any {
	return []any{&r.ID, &r.Name, &r.Plan, &r.PendingPlan, &r.Region, &r.CallbackURL, &r.Options,
		&r.LogInputURL, &r.LogDrainToken, &r.State, &r.Reason, &r.GrantCode, &r.GrantExpiresAt,
		&r.AccessToken, &r.RefreshToken, &r.TokenExpiresAt, &r.HerokuUserID, &r.Vars,
		&r.GrantExchangedAt, &r.ResourceCreatedAt, &r.ConfigPushedAt, &r.ProvisionedAt,
		&r.DeprovisionedAt, &r.Deadline, &r.CreatedAt, &r.UpdatedAt,
		&r.ExchangeStartedAt, &r.Requeue, &r.HaltedJob, &r.HaltReason, &r.LeaseOwner, &r.LeaseUntil, &r.Fence, &r.PendingPlanAt}
}

// addonWrites names the columns a write sets from an add-on, in the order
// appendValues gives their values: every column but id, created_at and
// updated_at, which the statements set, and the lease columns
// (lease_owner, lease_until, fence), which are never written from an
// add-on: only Acquire, Renew, Release and Record move them (leases.go).
const addonWrites = "name, plan, pending_plan, region, callback_url, state, reason, options, " +
	"log_input_url, log_drain_token, grant_code, grant_expires_at, access_token, refresh_token, token_expires_at, heroku_user_id, vars, " +
	"grant_exchanged_at, resource_created_at, config_pushed_at, provisioned_at, deprovisioned_at, deadline, exchange_started_at, " +
	"requeue, halted_job, halt_reason, pending_plan_at"

// appendValues encodes a for writing, appending the values of addonWrites
// to args: secrets sealed with the newest key, optional values NULL.
func (db *DB) appendValues(args []any, a *addon.Addon) ([]any, error) {
	var options any
	if a.Options != nil {
		b, err := json.Marshal(a.Options)
		if err != nil {
			return nil, fmt.Errorf("postgres: encode options: %w", err)
		}
		options = string(b)
	}
	logInputURL, err := db.sealString(string(a.ID), "log_input_url", a.LogInputURL)
	if err != nil {
		return nil, err
	}
	logDrainToken, err := db.sealString(string(a.ID), "log_drain_token", a.LogDrainToken)
	if err != nil {
		return nil, err
	}
	var grantCode, grantExpiresAt any
	if a.Grant != nil {
		if grantCode, err = db.seal(string(a.ID), "grant_code", []byte(a.Grant.Code)); err != nil {
			return nil, err
		}
		grantExpiresAt = timeOrNull(a.Grant.ExpiresAt)
	}
	var accessToken, refreshToken, tokenExpiresAt any
	herokuUserID := ""
	if a.Tokens != nil {
		if accessToken, err = db.seal(string(a.ID), "access_token", []byte(a.Tokens.Access)); err != nil {
			return nil, err
		}
		if refreshToken, err = db.seal(string(a.ID), "refresh_token", []byte(a.Tokens.Refresh)); err != nil {
			return nil, err
		}
		tokenExpiresAt = timeOrNull(a.Tokens.ExpiresAt)
		herokuUserID = a.Tokens.UserID
	}
	var vars any
	if a.Vars != nil {
		b, err := json.Marshal(a.Vars)
		if err != nil {
			return nil, fmt.Errorf("postgres: encode vars: %w", err)
		}
		if vars, err = db.seal(string(a.ID), "vars", b); err != nil {
			return nil, err
		}
	}
	return append(args,
		a.Name, a.Plan, a.PendingPlan, a.Region, a.CallbackURL, string(a.State), a.Reason, options,
		logInputURL, logDrainToken, grantCode, grantExpiresAt, accessToken, refreshToken, tokenExpiresAt, herokuUserID, vars,
		timeOrNull(a.GrantExchangedAt), timeOrNull(a.ResourceCreatedAt), timeOrNull(a.ConfigPushedAt),
		timeOrNull(a.ProvisionedAt), timeOrNull(a.DeprovisionedAt), timeOrNull(a.Deadline), timeOrNull(a.ExchangeStartedAt),
		a.Requeue, string(a.Halted), a.HaltReason, timeOrNull(a.PendingPlanAt),
	), nil
}

// addon decodes a row, opening its secrets.
func (db *DB) addon(r *addonRow) (*addon.Addon, error) {
	a := &addon.Addon{
		ID:                addon.ID(r.ID),
		Name:              r.Name,
		Plan:              r.Plan,
		PendingPlan:       r.PendingPlan,
		PendingPlanAt:     timeOf(r.PendingPlanAt),
		Region:            r.Region,
		CallbackURL:       r.CallbackURL,
		State:             addon.State(r.State),
		Reason:            r.Reason,
		GrantExchangedAt:  timeOf(r.GrantExchangedAt),
		ResourceCreatedAt: timeOf(r.ResourceCreatedAt),
		ConfigPushedAt:    timeOf(r.ConfigPushedAt),
		ProvisionedAt:     timeOf(r.ProvisionedAt),
		DeprovisionedAt:   timeOf(r.DeprovisionedAt),
		Deadline:          timeOf(r.Deadline),
		ExchangeStartedAt: timeOf(r.ExchangeStartedAt),
		Requeue:           r.Requeue,
		Halted:            addon.JobKind(r.HaltedJob),
		HaltReason:        r.HaltReason,
		LeaseOwner:        r.LeaseOwner,
		LeaseUntil:        timeOf(r.LeaseUntil),
		Fence:             r.Fence,
		CreatedAt:         r.CreatedAt.UTC(),
		UpdatedAt:         r.UpdatedAt.UTC(),
	}
	if r.Options != nil {
		if err := json.Unmarshal(r.Options, &a.Options); err != nil {
			return nil, addon.Wrap(addon.EINTERNAL, err, "The options of add-on %s cannot be decoded.", r.ID)
		}
	}
	var err error
	if a.LogInputURL, err = db.openString(r.ID, "log_input_url", r.LogInputURL); err != nil {
		return nil, err
	}
	if a.LogDrainToken, err = db.openString(r.ID, "log_drain_token", r.LogDrainToken); err != nil {
		return nil, err
	}
	if r.GrantCode != nil {
		code, err := db.openString(r.ID, "grant_code", r.GrantCode)
		if err != nil {
			return nil, err
		}
		a.Grant = &addon.Grant{Code: code, ExpiresAt: timeOf(r.GrantExpiresAt)}
	}
	if r.AccessToken != nil {
		t := &addon.Tokens{ExpiresAt: timeOf(r.TokenExpiresAt), UserID: r.HerokuUserID}
		if t.Access, err = db.openString(r.ID, "access_token", r.AccessToken); err != nil {
			return nil, err
		}
		if t.Refresh, err = db.openString(r.ID, "refresh_token", r.RefreshToken); err != nil {
			return nil, err
		}
		a.Tokens = t
	}
	if r.Vars != nil {
		b, err := db.open(r.ID, "vars", r.Vars)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &a.Vars); err != nil {
			return nil, addon.Wrap(addon.EINTERNAL, err, "The config vars of add-on %s cannot be decoded.", r.ID)
		}
	}
	return a, nil
}

// sealContext binds a sealed value to its row and column, so a ciphertext
// copied onto another add-on's row, or into another column, does not open.
// Add-on ids are stored lower-case (Postgres's uuid type), hence ToLower.
func sealContext(id, column string) string {
	return "addons/" + strings.ToLower(id) + "/" + column
}

func (db *DB) seal(id, column string, b []byte) ([]byte, error) {
	s, err := db.keys.SealFor(b, sealContext(id, column))
	if err != nil {
		return nil, addon.Wrap(addon.EINTERNAL, err, "Cannot encrypt a secret.")
	}
	return s, nil
}

// sealString seals s, keeping the empty string as NULL.
func (db *DB) sealString(id, column, s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	return db.seal(id, column, []byte(s))
}

func (db *DB) open(id, column string, sealed []byte) ([]byte, error) {
	b, err := db.keys.OpenFor(sealed, sealContext(id, column))
	if errors.Is(err, secret.ErrUndecryptable) {
		return nil, addon.Wrap(addon.EINTERNAL, err, "The secrets of add-on %s cannot be decrypted: ENCRYPTION_KEY no longer holds the key they were sealed with (was a key removed from the list?), or a sealed value was copied from another row.", id)
	}
	if err != nil {
		return nil, addon.Wrap(addon.EINTERNAL, err, "The secrets of add-on %s cannot be decrypted.", id)
	}
	return b, nil
}

// openString opens a sealed string; NULL is the empty string.
func (db *DB) openString(id, column string, sealed []byte) (string, error) {
	if sealed == nil {
		return "", nil
	}
	b, err := db.open(id, column, sealed)
	return string(b), err
}

func timeOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
