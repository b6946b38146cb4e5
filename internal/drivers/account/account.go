// Package account is the "account" resource driver: the SaaS-style add-on
// where Kiln itself is the service. Provisioning creates a tenant account in
// Kiln's own database (table accounts, migrated by internal/postgres) and
// hands the app one config var, <PREFIX>_URL =
// https://<account>:<key>@<Kiln's public host>, whose credentials Kiln's API
// checks with Authenticate.
//
// The API key is 32 random bytes and only its SHA-256 is stored. A fast hash
// is enough because the key is random and long (2^256 guesses), unlike a
// password; it also means Kiln can never show a key again, which shapes the
// idempotency rule of Create: a retried Create after a crash cannot return
// the key an earlier attempt made, so it makes a new one (the customer never
// saw the old one: only a finished Create's vars reach Heroku).
package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Driver creates and manages tenant accounts. It is safe for concurrent use.
type Driver struct {
	db        *gorm.DB
	publicURL string
	plans     addon.Catalog // nil: the embedded plans.json
}

var _ addon.Driver = (*Driver)(nil)

// New returns the driver over Kiln's database (the accounts table must be
// migrated) and Kiln's public URL, whose scheme and host the customers' URLs
// use: PUBLIC_URL, https://<app>.herokuapp.com on Heroku, http://localhost
// in development.
func New(db *gorm.DB, publicURL string) *Driver {
	return &Driver{db: db, publicURL: publicURL}
}

// Name is the RESOURCE_DRIVER value that selects this driver; the
// configuration and the wiring name the driver by it, so it is spelled once.
const Name = "account"

// Name is the RESOURCE_DRIVER value that selects this driver.
func (d *Driver) Name() string { return Name }

// Abilities: an account's key can be replaced outright or rolled (two keys
// at once), and its panel shows the account.
func (d *Driver) Abilities() addon.Abilities {
	return addon.Abilities{Rotate: true, Roll: true, Panel: true}
}

// Catalog is the plans of RESOURCE_PLANS_FILE (NewWithCatalog), else of
// plans.json. It panics if the embedded file is broken, which the
// package's tests rule out before a build ships.
func (d *Driver) Catalog() addon.Catalog {
	if d.plans != nil {
		return d.plans.Clone()
	}
	c, err := shipped()
	if err != nil {
		panic(err)
	}
	return c.Clone()
}

// Account is a tenant as the dashboard and the API show it; the key is never
// part of it.
type Account struct {
	ID         string // the add-on's uuid
	Name       string // the user name in the URL
	Plan       string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero until the first authenticated request
}

// accountRow is a row of the accounts table.
type accountRow struct {
	ID      string `gorm:"column:id;primaryKey"`
	Name    string `gorm:"column:name"`
	KeyHash []byte `gorm:"column:key_hash"`
	// PrevKeyHash is the key a credential roll replaced, still accepted
	// until the roll's grace ends (Revoke); NULL otherwise.
	PrevKeyHash []byte     `gorm:"column:prev_key_hash"`
	Plan        string     `gorm:"column:plan"`
	CreatedAt   time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt   time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
	LastUsedAt  *time.Time `gorm:"column:last_used_at"`
	DeletedAt   *time.Time `gorm:"column:deleted_at"`
}

func (accountRow) TableName() string { return "accounts" }

// nameTries bounds retries when a fresh random name collides with an
// existing one (48 random bits: practically never).
const nameTries = 5

// Create makes the account and returns its URL. It is idempotent: when r.Vars
// holds a URL that still authenticates this account, that URL is returned
// unchanged; otherwise (a retry after a crash, when the key an earlier
// attempt made is lost because only its hash is stored) the existing account
// gets a new key, and the new URL is returned. A deleted account is revived.
func (d *Driver) Create(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	if !addon.ValidID(r.ID) {
		return nil, addon.Errorf(addon.EINVALID, "The uuid %q is not a valid UUID.", r.ID)
	}
	if r.Plan.Slug == "" {
		return nil, addon.Errorf(addon.EINVALID, "No plan given for account %s.", r.ID)
	}
	if name, key, ok := credentials(r.Vars); ok {
		id, err := d.verify(ctx, name, key)
		if err == nil && id == r.ID {
			err := d.db.WithContext(ctx).Exec(
				"UPDATE accounts SET plan = ?, updated_at = now() WHERE id = ? AND plan <> ?", r.Plan.Slug, r.ID, r.Plan.Slug).Error
			if err != nil {
				return nil, dbError("create account", err)
			}
			return addon.Vars{"URL": r.Vars["URL"]}, nil
		}
		if err != nil && addon.ErrorCode(err) != addon.EUNAUTHORIZED {
			return nil, err
		}
	}

	key, hash, err := newKey()
	if err != nil {
		return nil, err
	}
	for range nameTries {
		name, err := newName()
		if err != nil {
			return nil, err
		}
		// The primary key decides between a first create and a retry; a
		// retry keeps the account's name and gets the new key.
		var stored string
		err = d.db.WithContext(ctx).Raw(`
			INSERT INTO accounts (id, name, key_hash, plan) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE
			SET key_hash = EXCLUDED.key_hash, plan = EXCLUDED.plan, deleted_at = NULL, updated_at = now()
			RETURNING name`, r.ID, name, hash, r.Plan.Slug).Scan(&stored).Error
		if nameTaken(err) {
			continue
		}
		if err != nil {
			return nil, dbError("create account", err)
		}
		if stored == "" {
			return nil, fmt.Errorf("account: create account %s: no row returned", r.ID)
		}
		return d.vars(stored, key)
	}
	return nil, fmt.Errorf("account: create account %s: no free name after %d tries", r.ID, nameTries)
}

// ChangePlan records the new plan; the limits of the plan apply from the
// next request. The key does not change, so when r.Vars holds the URL it is
// returned as is (Heroku sees no config change). Without it (it was lost) the
// key is rotated to produce a URL.
func (d *Driver) ChangePlan(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
	if to.Slug == "" {
		return nil, addon.Errorf(addon.EINVALID, "No plan given for account %s.", r.ID)
	}
	if !addon.ValidID(r.ID) {
		return nil, notFound(r.ID)
	}
	res := d.db.WithContext(ctx).Exec(
		"UPDATE accounts SET plan = ?, updated_at = now() WHERE id = ? AND deleted_at IS NULL", to.Slug, r.ID)
	if res.Error != nil {
		return nil, dbError("change plan", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, notFound(r.ID)
	}
	if _, _, ok := credentials(r.Vars); ok {
		return maps.Clone(r.Vars), nil
	}
	return d.RotateKey(ctx, r.ID)
}

// Destroy deletes the account: it is soft-deleted (the row stays for the
// audit trail) and its key hash is wiped, so the URL stops working at once
// and nothing could revive the old key. Destroying a missing or already
// deleted account succeeds.
func (d *Driver) Destroy(ctx context.Context, r addon.Resource) error {
	if !addon.ValidID(r.ID) {
		return nil // no such account can exist
	}
	err := d.db.WithContext(ctx).Exec(
		"UPDATE accounts SET deleted_at = now(), updated_at = now(), key_hash = ''::bytea, prev_key_hash = NULL WHERE id = ? AND deleted_at IS NULL", r.ID).Error
	if err != nil {
		return dbError("destroy account", err)
	}
	return nil
}

// RotateKey replaces the account's key, for a customer who leaked theirs,
// and returns the new vars. The old key stops working at once, so the caller
// must push the new URL to Heroku.
func (d *Driver) RotateKey(ctx context.Context, id string) (addon.Vars, error) {
	if !addon.ValidID(id) {
		return nil, notFound(id)
	}
	key, hash, err := newKey()
	if err != nil {
		return nil, err
	}
	var names []string
	err = d.db.WithContext(ctx).Raw(
		"UPDATE accounts SET key_hash = ?, prev_key_hash = NULL, updated_at = now() WHERE id = ? AND deleted_at IS NULL RETURNING name", hash, id).Scan(&names).Error
	if err != nil {
		return nil, dbError("rotate key", err)
	}
	if len(names) == 0 {
		return nil, notFound(id)
	}
	return d.vars(names[0], key)
}

// Authenticate checks an account name and key (the user and password of the
// URL) and returns the account's id, for Kiln's API. The hashes are compared
// in constant time, and an unknown account costs the same comparison, so
// timing tells a caller nothing. Any failure is EUNAUTHORIZED. It records
// when the account was last used (at most once a minute, to spare writes).
func (d *Driver) Authenticate(ctx context.Context, account, key string) (string, error) {
	id, err := d.verify(ctx, account, key)
	if err != nil {
		return "", err
	}
	err = d.db.WithContext(ctx).Exec(
		"UPDATE accounts SET last_used_at = now() WHERE id = ? AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", id).Error
	if err != nil {
		return "", dbError("record account use", err)
	}
	return id, nil
}

// Account returns the account of the add-on id, or ENOTFOUND when it does
// not exist or was deleted.
func (d *Driver) Account(ctx context.Context, id string) (Account, error) {
	if !addon.ValidID(id) {
		return Account{}, notFound(id)
	}
	var rows []accountRow
	err := d.db.WithContext(ctx).Where("id = ? AND deleted_at IS NULL", id).Limit(1).Find(&rows).Error
	if err != nil {
		return Account{}, dbError("read account", err)
	}
	if len(rows) == 0 {
		return Account{}, notFound(id)
	}
	r := rows[0]
	a := Account{ID: r.ID, Name: r.Name, Plan: r.Plan, CreatedAt: r.CreatedAt.UTC()}
	if r.LastUsedAt != nil {
		a.LastUsedAt = r.LastUsedAt.UTC()
	}
	return a, nil
}

// verify checks credentials without recording a use.
func (d *Driver) verify(ctx context.Context, account, key string) (string, error) {
	var rows []accountRow
	err := d.db.WithContext(ctx).Select("id", "key_hash", "prev_key_hash").
		Where("name = ? AND deleted_at IS NULL", account).Limit(1).Find(&rows).Error
	if err != nil {
		return "", dbError("authenticate", err)
	}
	stored := make([]byte, sha256.Size) // all zeros: matches no key
	prev := make([]byte, sha256.Size)
	id := ""
	if len(rows) == 1 {
		stored, id = rows[0].KeyHash, rows[0].ID
		if len(rows[0].PrevKeyHash) == sha256.Size {
			prev = rows[0].PrevKeyHash
		}
	}
	got := sha256.Sum256([]byte(key))
	// Both keys are always compared, so timing does not tell which
	// matched, or whether a roll is in its grace.
	cur := subtle.ConstantTimeCompare(got[:], stored)
	old := subtle.ConstantTimeCompare(got[:], prev)
	ok := cur|old == 1
	if !ok || id == "" || key == "" {
		return "", addon.Errorf(addon.EUNAUTHORIZED, "Invalid account name or key.")
	}
	return id, nil
}

// vars builds the config vars for an account's credentials.
func (d *Driver) vars(name, key string) (addon.Vars, error) {
	u, err := url.Parse(strings.TrimRight(d.publicURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, addon.Errorf(addon.EINTERNAL, "The public URL %q is not an absolute http(s) URL: set PUBLIC_URL.", d.publicURL)
	}
	u.User = url.UserPassword(name, key)
	u.RawQuery, u.Fragment = "", ""
	return addon.Vars{"URL": u.String()}, nil
}

// credentials reads the account name and key out of a URL var.
func credentials(v addon.Vars) (name, key string, ok bool) {
	u, err := url.Parse(v["URL"])
	if err != nil || u.User == nil {
		return "", "", false
	}
	key, ok = u.User.Password()
	return u.User.Username(), key, ok && key != "" && u.User.Username() != ""
}

// newKey returns a fresh API key (32 random bytes, base64url, safe in a
// URL's user info) and the SHA-256 that is stored.
func newKey() (key string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("account: generate key: %w", err)
	}
	key = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	return key, sum[:], nil
}

// newName returns a readable random account name, "acct-" and 12 hex digits.
func newName() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("account: generate name: %w", err)
	}
	return "acct-" + hex.EncodeToString(b), nil
}

func notFound(id string) error {
	return addon.Errorf(addon.ENOTFOUND, "Account %s not found.", id)
}

// nameTaken reports a collision on the unique account name.
func nameTaken(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "accounts_name_key"
}

// dbError wraps a database failure: one that reaches no server is
// EUNAVAILABLE; anything else stays a plain wrapped error, which the domain
// treats as transient.
func dbError(op string, err error) error {
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return addon.Wrap(addon.EUNAVAILABLE, err, "The database is unavailable; try again later.")
	}
	return fmt.Errorf("account: %s: %w", op, err)
}

// RotateCredentials replaces the account's API key at once (the old one
// stops working); it returns the new URL.
func (d *Driver) RotateCredentials(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	return d.RotateKey(ctx, r.ID)
}
