package postgres_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for raw reads

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/secret"
)

// This file holds the fixtures the tests of every topic start from: a
// store on a fresh migrated database, a raw handle to look at rows as
// stored, and add-ons as the service builds them.

// keyring returns a keyring holding the given base64 keys, newest first.
func keyring(tb testing.TB, keys ...string) *secret.Keyring {
	tb.Helper()
	var raw [][]byte
	for _, k := range keys {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			tb.Fatal(err)
		}
		raw = append(raw, b)
	}
	kr, err := secret.New(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// migrated returns the URL of a fresh, migrated test database.
func migrated(tb testing.TB) string {
	tb.Helper()
	url := kilntest.Postgres(tb)
	if err := postgres.Migrate(context.Background(), url); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return url
}

// open opens the store on url with keys, closed at the end of the test.
func open(tb testing.TB, url string, keys *secret.Keyring) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), url, keys)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// newStore returns a store on a fresh migrated database, and its URL.
func newStore(tb testing.TB) (*postgres.DB, string) {
	tb.Helper()
	url := migrated(tb)
	return open(tb, url, keyring(tb, kilntest.Key())), url
}

// rawDB opens a plain database/sql handle, to look at rows as stored.
func rawDB(tb testing.TB, url string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// newAddon returns a provisioning add-on as the service builds it.
func newAddon(now time.Time) *addon.Addon {
	a := &addon.Addon{
		ID:        addon.ID(uuid.NewString()),
		Name:      "acme-primary",
		Plan:      "basic",
		Region:    "amazon-web-services::us-east-1",
		State:     addon.StateProvisioning,
		Deadline:  now.Add(11 * time.Hour),
		CreatedAt: now,
		UpdatedAt: now,
	}
	a.Note(now, "state", "provision requested on plan basic")
	return a
}

// create stores a, failing the test when it cannot.
func create(tb testing.TB, db *postgres.DB, a *addon.Addon) {
	tb.Helper()
	if _, _, err := db.Create(context.Background(), a); err != nil {
		tb.Fatal(err)
	}
}

// storedAddon is a fresh store holding one new add-on, and the add-on's
// creation time.
func storedAddon(tb testing.TB) (*postgres.DB, *addon.Addon, time.Time) {
	tb.Helper()
	db, _ := newStore(tb)
	t0 := now()
	a := newAddon(t0)
	create(tb, db, a)
	return db, a, t0
}

// events is the add-on's audit trail, failing the test when it cannot be
// read.
func events(tb testing.TB, db *postgres.DB, id addon.ID) []addon.Event {
	tb.Helper()
	ev, err := db.Events(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

// now is a timestamp Postgres stores exactly (microseconds).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := addon.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

// full returns an add-on with every field set, as after provisioning.
func full(base *addon.Addon, t0 time.Time) {
	base.Name = "acme-inc-primary"
	base.Plan = "pro"
	base.PendingPlan, base.PendingPlanAt = "basic", t0.Add(-time.Minute)
	base.Region = "amazon-web-services::eu-west-1"
	base.CallbackURL = "https://api.heroku.com/addons/" + string(base.ID)
	base.Options = map[string]string{"foo": "bar", "flag": "true"}
	base.LogInputURL = "https://token:t.logplex-secret@1.us.logplex.io/logs"
	base.LogDrainToken = "d.drain-secret"
	base.State = addon.StateProvisioned
	base.Reason = "all good"
	base.Grant = &addon.Grant{Code: "grant-code-secret", ExpiresAt: t0.Add(5 * time.Minute)}
	base.Tokens = &addon.Tokens{Access: "access-token-secret", Refresh: "refresh-token-secret", ExpiresAt: t0.Add(8 * time.Hour), UserID: "user-123"}
	base.Vars = addon.Vars{"URL": "https://acct:vars-secret@kiln.example.com", "API_KEY": "api-key-secret"}
	base.GrantExchangedAt = t0.Add(1 * time.Second)
	base.ResourceCreatedAt = t0.Add(2 * time.Second)
	base.ConfigPushedAt = t0.Add(3 * time.Second)
	base.ProvisionedAt = t0.Add(4 * time.Second)
	base.DeprovisionedAt = t0.Add(5 * time.Second)
	base.Deadline = t0.Add(11 * time.Hour)
}

// same compares the add-ons on every field the store keeps, reporting
// differences field by field.
func same(tb testing.TB, got, want *addon.Addon) {
	tb.Helper()
	g, w := *got, *want
	g.UpdatedAt, w.UpdatedAt = time.Time{}, time.Time{}
	g.Grant, w.Grant, g.Tokens, w.Tokens = nil, nil, nil, nil // compared below, not as pointers
	if gs, ws := fmt.Sprintf("%+v", g), fmt.Sprintf("%+v", w); gs != ws {
		tb.Errorf("add-on differs:\n got  %s\n want %s", gs, ws)
	}
	if (got.Grant == nil) != (want.Grant == nil) || got.Grant != nil && *got.Grant != *want.Grant {
		tb.Errorf("grant = %+v, want %+v", got.Grant, want.Grant)
	}
	if (got.Tokens == nil) != (want.Tokens == nil) || got.Tokens != nil && *got.Tokens != *want.Tokens {
		tb.Errorf("tokens = %+v, want %+v", got.Tokens, want.Tokens)
	}
	if (got.Options == nil) != (want.Options == nil) || (got.Vars == nil) != (want.Vars == nil) {
		tb.Errorf("nil-ness of options/vars differs: got %v/%v, want %v/%v", got.Options, got.Vars, want.Options, want.Vars)
	}
}
