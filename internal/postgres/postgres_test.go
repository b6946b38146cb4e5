package postgres_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for raw reads
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/secret"
)

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

// now is a timestamp Postgres stores exactly (microseconds).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := addon.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

func TestMigrateConcurrentlyAndIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int
		// prepare runs on the empty database before the concurrent Migrates.
		prepare func(tb testing.TB, raw *sql.DB)
	}{
		{"fresh database", 2, func(testing.TB, *sql.DB) {}},
		{
			// With goose's version table already there, nothing but the
			// advisory lock stops the callers from racing into the same
			// migration: without it they fail on CREATE TABLE.
			"version table exists", 4, func(tb testing.TB, raw *sql.DB) {
				store, err := database.NewStore(goose.DialectPostgres, goose.DefaultTablename)
				if err != nil {
					tb.Fatal(err)
				}
				if err := store.CreateVersionTable(context.Background(), raw); err != nil {
					tb.Fatal(err)
				}
				if err := store.Insert(context.Background(), raw, database.InsertRequest{Version: 0}); err != nil {
					tb.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := kilntest.Postgres(t)
			raw := rawDB(t, url)
			tt.prepare(t, raw)

			var wg sync.WaitGroup
			errs := make([]error, tt.n)
			start := make(chan struct{})
			for i := range errs {
				wg.Go(func() {
					<-start
					errs[i] = postgres.Migrate(ctx, url)
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("concurrent Migrate %d: %v", i, err)
				}
			}
			if err := postgres.Migrate(ctx, url); err != nil {
				t.Fatalf("Migrate on a current schema: %v", err)
			}

			// Each migration recorded once: a double apply would have failed
			// on CREATE TABLE or left two rows for one version.
			var rows, versions int
			if err := raw.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0").Scan(&rows, &versions); err != nil {
				t.Fatal(err)
			}
			if rows != versions || rows == 0 {
				t.Errorf("goose_db_version has %d rows for %d versions, want one row per version", rows, versions)
			}
			for _, table := range []string{"addons", "addon_events", "accounts"} {
				var exists bool
				if err := raw.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
					t.Fatal(err)
				}
				if !exists {
					t.Errorf("table %s missing after Migrate", table)
				}
			}
		})
	}
}

func TestOpenRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(context.Background(), kilntest.Postgres(t), keyring(t, kilntest.Key()))
	wantCode(t, err, addon.EINTERNAL)
	if !strings.Contains(err.Error(), "release") {
		t.Errorf("error %q does not tell the operator to run the release command", err)
	}
}

func TestOpenUnavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now: connections are refused

	url := fmt.Sprintf("postgres://kiln:s3cret-pw@127.0.0.1:%d/kiln?sslmode=disable", port)
	_, err = postgres.Open(context.Background(), url, keyring(t, kilntest.Key()))
	wantCode(t, err, addon.EUNAVAILABLE)
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error leaks the database password: %v", err)
	}
	if err := postgres.Migrate(context.Background(), url); addon.ErrorCode(err) != addon.EUNAVAILABLE {
		t.Errorf("Migrate against a closed port: code %q, want %q (err: %v)", addon.ErrorCode(err), addon.EUNAVAILABLE, err)
	}
}

func TestOpenMalformedURL(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"mysql://u:hunter2@db/x", "postgres://u:hunter2@db:notaport/x", "::"} {
		t.Run(url, func(t *testing.T) {
			_, err := postgres.Open(context.Background(), url, keyring(t, kilntest.Key()))
			if err == nil {
				t.Fatal("Open accepted a malformed URL")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	if err := db.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	db.Close()
	if err := db.Ping(context.Background()); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

func TestCreateDuplicate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	first := newAddon(now())

	stored, created, err := db.Create(ctx, first)
	if err != nil || !created {
		t.Fatalf("first Create: created=%v err=%v", created, err)
	}
	if stored.ID != first.ID || stored.Plan != "basic" {
		t.Fatalf("first Create stored %+v", stored)
	}

	again := newAddon(now())
	again.ID = first.ID
	again.Plan = "pro"
	stored, created, err = db.Create(ctx, again)
	if err != nil {
		t.Fatalf("duplicate Create: %v", err)
	}
	if created {
		t.Fatal("duplicate Create reported created=true")
	}
	if stored.Plan != "basic" {
		t.Errorf("duplicate Create returned plan %q, want the stored %q", stored.Plan, "basic")
	}
	ev, err := db.Events(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 1 {
		t.Errorf("got %d events, want 1 (the duplicate must record none)", len(ev))
	}
}

func TestCreateInvalidID(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	a := newAddon(now())
	a.ID = "not-a-uuid"
	_, _, err := db.Create(context.Background(), a)
	wantCode(t, err, addon.EINVALID)
}

func TestCreateConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	id := addon.ID(uuid.NewString())

	const n = 20
	var wg sync.WaitGroup
	created := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			a := newAddon(now())
			a.ID = id
			<-start
			var stored *addon.Addon
			stored, created[i], errs[i] = db.Create(ctx, a)
			if errs[i] == nil && stored.ID != id {
				errs[i] = fmt.Errorf("stored id %s", stored.ID)
			}
		})
	}
	close(start)
	wg.Wait()
	count := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Create %d: %v", i, errs[i])
		}
		if created[i] {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("%d of %d concurrent Creates reported created=true, want exactly 1", count, n)
	}
	ev, err := db.Events(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 1 {
		t.Errorf("got %d events, want 1", len(ev))
	}
}

// full returns an add-on with every field set, as after provisioning.
func full(base *addon.Addon, t0 time.Time) {
	base.Name = "acme-inc-primary"
	base.Plan = "pro"
	base.PendingPlan = "basic"
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

func TestUpdateRoundTripsEveryField(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	t0 := now()
	a := newAddon(t0)
	if _, _, err := db.Create(ctx, a); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name string
		set  func(a *addon.Addon)
	}{
		{"every field set", func(a *addon.Addon) { full(a, t0) }},
		{"secrets and steps cleared", func(a *addon.Addon) {
			a.Grant, a.Tokens, a.Vars, a.Options = nil, nil, nil, nil
			a.LogInputURL, a.LogDrainToken, a.PendingPlan, a.Reason = "", "", "", ""
			a.GrantExchangedAt, a.ResourceCreatedAt, a.ConfigPushedAt = time.Time{}, time.Time{}, time.Time{}
			a.ProvisionedAt, a.DeprovisionedAt, a.Deadline = time.Time{}, time.Time{}, time.Time{}
		}},
		{"empty maps stay empty, not nil", func(a *addon.Addon) {
			a.Options, a.Vars = map[string]string{}, addon.Vars{}
		}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			var want *addon.Addon
			saved, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
				step.set(a)
				c := *a
				want = &c
				return nil
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			same(t, saved, want)
			got, err := db.Get(ctx, a.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			same(t, got, want)
			if got.CreatedAt != t0 {
				t.Errorf("created_at = %v, want %v", got.CreatedAt, t0)
			}
			if got.UpdatedAt.Location() != time.UTC || got.Deadline.Location() != time.UTC {
				t.Errorf("times not in UTC: %v, %v", got.UpdatedAt, got.Deadline)
			}
		})
	}
}

func TestUpdateFnErrorRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	a := newAddon(now())
	if _, _, err := db.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	domainErr := addon.Errorf(addon.EINVALID, "Heroku sent no OAuth grant.")
	fnErr := fmt.Errorf("exchange grant: %w", domainErr)

	_, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
		a.Plan = "pro"
		a.Tokens = &addon.Tokens{Access: "x", Refresh: "y"}
		if err := a.Transition(now(), addon.StateFailed, "nope"); err != nil {
			return err
		}
		return fnErr
	})
	if err != fnErr {
		t.Fatalf("Update returned %v, want fn's error unchanged", err)
	}
	var de *addon.Error
	if !errors.As(err, &de) || de != domainErr {
		t.Errorf("errors.As does not reach the domain error: %v", err)
	}

	got, err := db.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Plan != "basic" || got.State != addon.StateProvisioning || got.Tokens != nil {
		t.Errorf("fn's changes were saved: plan=%s state=%s tokens=%v", got.Plan, got.State, got.Tokens)
	}
	ev, err := db.Events(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 1 {
		t.Errorf("got %d events, want only the creation's (fn's transition must be rolled back)", len(ev))
	}
}

func TestUpdateSerialisesConcurrentUpdates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	a := newAddon(now())
	a.Reason = "0"
	if _, _, err := db.Create(ctx, a); err != nil {
		t.Fatal(err)
	}

	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
				var c int
				if _, err := fmt.Sscan(a.Reason, &c); err != nil {
					return err
				}
				a.Reason = fmt.Sprint(c + 1)
				a.Note(now(), "step", "increment")
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Update %d: %v", i, err)
		}
	}
	got, err := db.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Reason != fmt.Sprint(n) {
		t.Errorf("counter = %s after %d concurrent increments: updates were lost", got.Reason, n)
	}
	ev, err := db.Events(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != n+1 {
		t.Errorf("got %d events, want %d", len(ev), n+1)
	}
}

func TestEventsInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	t0 := now()
	a := newAddon(t0)
	if _, _, err := db.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	_, err := db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
		a.Note(t0.Add(time.Second), "step", "OAuth grant exchanged")
		a.Note(t0.Add(2*time.Second), "step", "resource created")
		return a.Transition(t0.Add(3*time.Second), addon.StateProvisioned, "")
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Update(ctx, a.ID, func(_ context.Context, a *addon.Addon) error {
		return a.Transition(t0.Add(4*time.Second), addon.StateDeprovisioning, "deprovision requested")
	})
	if err != nil {
		t.Fatal(err)
	}

	got, err := db.Events(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []addon.Event{
		{Kind: "state", State: addon.StateProvisioning, Message: "provision requested on plan basic", At: t0},
		{Kind: "step", State: addon.StateProvisioning, Message: "OAuth grant exchanged", At: t0.Add(time.Second)},
		{Kind: "step", State: addon.StateProvisioning, Message: "resource created", At: t0.Add(2 * time.Second)},
		{Kind: "state", State: addon.StateProvisioned, Message: "", At: t0.Add(3 * time.Second)},
		{Kind: "state", State: addon.StateDeprovisioning, Message: "deprovision requested", At: t0.Add(4 * time.Second)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.AddonID != a.ID || g.Kind != w.Kind || g.State != w.State || g.Message != w.Message || !g.At.Equal(w.At) {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
		if i > 0 && g.ID <= got[i-1].ID {
			t.Errorf("event ids not increasing: %d after %d", g.ID, got[i-1].ID)
		}
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newStore(t)
	// Not a uuid: a store reached without ParseID still answers not found.
	for _, id := range []addon.ID{addon.ID(uuid.NewString()), "not-a-uuid"} {
		t.Run(string(id), func(t *testing.T) {
			_, err := db.Get(ctx, id)
			wantCode(t, err, addon.ENOTFOUND)
			called := false
			_, err = db.Update(ctx, id, func(context.Context, *addon.Addon) error { called = true; return nil })
			wantCode(t, err, addon.ENOTFOUND)
			if called {
				t.Error("Update called fn for a missing add-on")
			}
			_, err = db.Events(ctx, id)
			wantCode(t, err, addon.ENOTFOUND)
		})
	}
	// An add-on without events has an empty trail, not a missing one.
	a := newAddon(now())
	a.TakeEvents()
	if _, _, err := db.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if ev, err := db.Events(ctx, a.ID); err != nil || len(ev) != 0 {
		t.Errorf("Events of an add-on without events = %v, %v; want none, nil", ev, err)
	}
}

func TestStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := newStore(t)
	raw := rawDB(t, url)

	ago := func(d time.Duration) time.Time { return time.Now().Add(-d) }
	rows := []struct {
		name    string
		state   addon.State
		updated time.Time
	}{
		{"provisioning-2h", addon.StateProvisioning, ago(2 * time.Hour)},
		{"provisioned-3h", addon.StateProvisioned, ago(3 * time.Hour)},
		{"deprovisioning-1h", addon.StateDeprovisioning, ago(1 * time.Hour)},
		{"failed-4h", addon.StateFailed, ago(4 * time.Hour)},
		{"deprovisioned-5h", addon.StateDeprovisioned, ago(5 * time.Hour)},
		{"provisioning-now", addon.StateProvisioning, time.Now()},
		{"deprovisioning-90m", addon.StateDeprovisioning, ago(90 * time.Minute)},
		// Provisioned add-ons with work left: a plan change recorded while
		// provisioning, and rotated credentials not yet pushed to Heroku.
		{"pending-plan-150m", addon.StateProvisioned, ago(150 * time.Minute)},
		{"unpushed-100m", addon.StateProvisioned, ago(100 * time.Minute)},
		{"pushed-100m", addon.StateProvisioned, ago(100 * time.Minute)},
	}
	ids := map[string]addon.ID{}
	for _, r := range rows {
		a := newAddon(now())
		a.Name = r.name
		a.State = r.state
		switch r.name {
		case "pending-plan-150m":
			a.PendingPlan = "pro"
		case "unpushed-100m", "pushed-100m":
			a.Tokens = &addon.Tokens{Access: "a", Refresh: "r", ExpiresAt: now().Add(time.Hour)}
			if r.name == "pushed-100m" {
				a.ConfigPushedAt = now()
			}
		}
		if _, _, err := db.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.ExecContext(ctx, "UPDATE addons SET updated_at = $1 WHERE id = $2", r.updated, a.ID); err != nil {
			t.Fatal(err)
		}
		ids[r.name] = a.ID
	}

	tests := []struct {
		name  string
		limit int
		want  []string
	}{
		{"all stale, oldest first", 10, []string{"pending-plan-150m", "provisioning-2h", "unpushed-100m", "deprovisioning-90m", "deprovisioning-1h"}},
		{"limited", 2, []string{"pending-plan-150m", "provisioning-2h"}},
		{"no limit means default batch", 0, []string{"pending-plan-150m", "provisioning-2h", "unpushed-100m", "deprovisioning-90m", "deprovisioning-1h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Stale(ctx, ago(30*time.Minute), tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range got {
				names = append(names, a.Name)
				if a.ID != ids[a.Name] {
					t.Errorf("add-on %s has id %s, want %s", a.Name, a.ID, ids[a.Name])
				}
			}
			if fmt.Sprint(names) != fmt.Sprint(tt.want) {
				t.Errorf("Stale = %v, want %v", names, tt.want)
			}
		})
	}
}

func TestSecretsEncryptedAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := newStore(t)
	t0 := now()
	a := newAddon(t0)
	full(a, t0)
	if _, _, err := db.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	secrets := []string{"grant-code-secret", "access-token-secret", "refresh-token-secret", "vars-secret", "api-key-secret", "logplex-secret", "drain-secret"}

	raw := rawDB(t, url)
	// The whole row as text: bytea shows as hex, so look for both forms.
	var row string
	if err := raw.QueryRowContext(ctx, "SELECT row_to_json(a)::text FROM addons a WHERE id = $1", a.ID).Scan(&row); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(row, s) || strings.Contains(row, fmt.Sprintf("%x", s)) {
			t.Errorf("raw row contains %q in plaintext: %s", s, row)
		}
	}
	// And the secret columns as raw bytes.
	var cols [7][]byte
	err := raw.QueryRowContext(ctx, `SELECT grant_code, access_token, refresh_token, vars, log_input_url, log_drain_token, convert_to(coalesce(options::text, ''), 'UTF8')
		FROM addons WHERE id = $1`, a.ID).Scan(&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6])
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cols[:6] {
		if len(c) == 0 {
			t.Errorf("secret column %d is empty: the test would prove nothing", i)
		}
		for _, s := range secrets {
			if strings.Contains(string(c), s) {
				t.Errorf("secret column %d contains %q in plaintext", i, s)
			}
		}
	}
	if !strings.Contains(string(cols[6]), "bar") {
		t.Errorf("options are not plain jsonb: %q", cols[6])
	}

	// Decrypted through the store, they come back.
	got, err := db.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, a)
}

func TestKeyRotationAndRemovedKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migrated(t)
	oldKey, newKey := kilntest.Key(), kilntest.Key()
	a := newAddon(now())
	a.Tokens = &addon.Tokens{Access: "access", Refresh: "refresh"}
	if _, _, err := open(t, url, keyring(t, oldKey)).Create(ctx, a); err != nil {
		t.Fatal(err)
	}

	t.Run("old key still in the list", func(t *testing.T) {
		got, err := open(t, url, keyring(t, newKey, oldKey)).Get(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Tokens == nil || got.Tokens.Access != "access" {
			t.Errorf("tokens = %+v", got.Tokens)
		}
	})
	t.Run("old key removed", func(t *testing.T) {
		_, err := open(t, url, keyring(t, newKey)).Get(ctx, a.ID)
		wantCode(t, err, addon.EINTERNAL)
		if !errors.Is(err, secret.ErrUndecryptable) || !strings.Contains(addon.ErrorMessage(err), "ENCRYPTION_KEY") {
			t.Errorf("error does not explain the removed key: %v", err)
		}
	})
}

// TestSealedValuesBoundToTheirRow copies one add-on's sealed access token
// onto another's row, and into another column: neither decrypts, so someone
// who can write the database cannot hand one customer another's token.
func TestSealedValuesBoundToTheirRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := newStore(t)
	t0 := now()
	a, b := newAddon(t0), newAddon(t0)
	full(a, t0)
	full(b, t0)
	for _, x := range []*addon.Addon{a, b} {
		if _, _, err := db.Create(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	raw := rawDB(t, url)
	tests := []struct{ name, sql string }{
		{"another row", "UPDATE addons SET access_token = (SELECT access_token FROM addons WHERE id = $1) WHERE id = $2"},
		{"another column", "UPDATE addons SET refresh_token = (SELECT access_token FROM addons WHERE id = $1) WHERE id = $2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newAddon(t0)
			full(c, t0)
			if _, _, err := db.Create(ctx, c); err != nil {
				t.Fatal(err)
			}
			if _, err := raw.ExecContext(ctx, tt.sql, a.ID, c.ID); err != nil {
				t.Fatal(err)
			}
			_, err := db.Get(ctx, c.ID)
			wantCode(t, err, addon.EINTERNAL)
		})
	}
	if _, err := db.Get(ctx, b.ID); err != nil {
		t.Errorf("an untouched row no longer opens: %v", err)
	}
}
