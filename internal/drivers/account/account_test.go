package account_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for raw reads

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/drivers/account"
	"github.com/kiln-dev/kiln/internal/postgres/pgtest"
)

// setup returns a driver over a fresh migrated database, and the database
// URL for raw reads.
func setup(tb testing.TB, publicURL string) (*account.Driver, string) {
	tb.Helper()
	db, dbURL := pgtest.Store(tb)
	return account.New(db.Gorm(), publicURL), dbURL
}

func rawDB(tb testing.TB, dbURL string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func resource(tb testing.TB, d *account.Driver, id, slug string, vars addon.Vars) addon.Resource {
	tb.Helper()
	plan, err := d.Catalog().Lookup(slug)
	if err != nil {
		tb.Fatal(err)
	}
	return addon.Resource{ID: id, Name: "acme-primary", Plan: plan, Vars: vars}
}

// newAccount creates the account of a new add-on on plan, on a driver
// whose public URL is https://kiln.example.com, and returns the add-on (its
// Vars the URL the driver made) and the URL's account name and key,
// checked as creds checks them.
func newAccount(tb testing.TB, d *account.Driver, plan string) (r addon.Resource, name, key string) {
	tb.Helper()
	r = resource(tb, d, uuid.NewString(), plan, nil)
	vars, err := d.Create(context.Background(), r)
	if err != nil {
		tb.Fatalf("Create: %v", err)
	}
	r.Vars = vars
	name, key = creds(tb, vars, "https", "kiln.example.com")
	return r, name, key
}

var namePattern = regexp.MustCompile(`^acct-[0-9a-f]{12}$`)

// creds splits a URL var into account name and key, checking its shape.
func creds(tb testing.TB, vars addon.Vars, wantScheme, wantHost string) (name, key string) {
	tb.Helper()
	if len(vars) != 1 {
		tb.Errorf("vars = %v, want only URL", vars)
	}
	u, err := url.Parse(vars["URL"])
	if err != nil {
		tb.Fatalf("URL %q: %v", vars["URL"], err)
	}
	key, _ = u.User.Password()
	name = u.User.Username()
	if u.Scheme != wantScheme || u.Host != wantHost {
		tb.Errorf("URL scheme/host = %s/%s, want %s/%s", u.Scheme, u.Host, wantScheme, wantHost)
	}
	if !namePattern.MatchString(name) {
		tb.Errorf("account name %q does not match %s", name, namePattern)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(key); err != nil || len(raw) != 32 {
		tb.Errorf("key %q is not base64url of 32 bytes", key)
	}
	return name, key
}

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := addon.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	d := account.New(nil, "https://kiln.example.com")
	if d.Name() != "account" {
		t.Errorf("Name = %q", d.Name())
	}
	c := d.Catalog()
	if err := c.Validate(); err != nil {
		t.Fatalf("catalog does not validate: %v", err)
	}
	for _, slug := range []string{"test", "basic", "pro"} {
		p, err := c.Lookup(slug)
		if err != nil {
			t.Errorf("plan %s: %v", slug, err)
			continue
		}
		if p.Limits[account.LimitRequestsPerMonth] <= 0 || p.Limits[account.LimitRequestsPerSecond] <= 0 {
			t.Errorf("plan %s lacks request limits: %v", slug, p.Limits)
		}
	}
	c["basic"].Limits[account.LimitRequestsPerMonth] = 1
	delete(c, "pro")
	again := d.Catalog()
	if _, ok := again["pro"]; !ok || again["basic"].Limits[account.LimitRequestsPerMonth] == 1 {
		t.Error("editing a returned catalog changed the driver's catalog")
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _ := setup(t, "https://kiln.example.com")
	id := uuid.NewString()

	// Create.
	vars, err := d.Create(ctx, resource(t, d, id, "basic", nil))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	name, key := creds(t, vars, "https", "kiln.example.com")
	acct, err := d.Account(ctx, id)
	if err != nil {
		t.Fatalf("Account: %v", err)
	}
	if acct.ID != id || acct.Name != name || acct.Plan != "basic" || acct.CreatedAt.IsZero() || !acct.LastUsedAt.IsZero() {
		t.Errorf("Account = %+v after Create", acct)
	}
	if got, err := d.Authenticate(ctx, name, key); err != nil || got != id {
		t.Fatalf("Authenticate with the URL's credentials = %q, %v; want %s", got, err, id)
	}
	if acct, _ := d.Account(ctx, id); acct.LastUsedAt.IsZero() {
		t.Error("Authenticate did not record last_used_at")
	}

	// A repeat that still holds the URL gets the same URL: nothing changes.
	again, err := d.Create(ctx, resource(t, d, id, "basic", vars))
	if err != nil {
		t.Fatalf("Create with known vars: %v", err)
	}
	if again["URL"] != vars["URL"] {
		t.Errorf("Create with known vars rotated the key: %s -> %s", vars["URL"], again["URL"])
	}

	// A retry after a crash (no vars) gets a new key for the same account.
	retried, err := d.Create(ctx, resource(t, d, id, "basic", nil))
	if err != nil {
		t.Fatalf("retried Create: %v", err)
	}
	name2, key2 := creds(t, retried, "https", "kiln.example.com")
	if name2 != name {
		t.Errorf("retried Create renamed the account: %s -> %s", name, name2)
	}
	if key2 == key {
		t.Error("retried Create returned the old key, which is not stored")
	}
	if _, err := d.Authenticate(ctx, name, key); addon.ErrorCode(err) != addon.EUNAUTHORIZED {
		t.Errorf("old key after retry: err = %v, want EUNAUTHORIZED", err)
	}
	if got, err := d.Authenticate(ctx, name2, key2); err != nil || got != id {
		t.Errorf("new key after retry: %q, %v", got, err)
	}

	// Plan change keeps the URL.
	pro, err := d.Catalog().Lookup("pro")
	if err != nil {
		t.Fatal(err)
	}
	changed, err := d.ChangePlan(ctx, resource(t, d, id, "basic", retried), pro)
	if err != nil {
		t.Fatalf("ChangePlan: %v", err)
	}
	if changed["URL"] != retried["URL"] {
		t.Errorf("ChangePlan changed the URL")
	}
	if acct, _ := d.Account(ctx, id); acct.Plan != "pro" {
		t.Errorf("plan after ChangePlan = %q, want pro", acct.Plan)
	}
	if _, err := d.Authenticate(ctx, name2, key2); err != nil {
		t.Errorf("key after ChangePlan: %v", err)
	}

	// Destroy, twice.
	for i := range 2 {
		if err := d.Destroy(ctx, resource(t, d, id, "pro", retried)); err != nil {
			t.Fatalf("Destroy #%d: %v", i+1, err)
		}
	}
	_, err = d.Account(ctx, id)
	wantCode(t, err, addon.ENOTFOUND)
	if _, err := d.Authenticate(ctx, name2, key2); addon.ErrorCode(err) != addon.EUNAUTHORIZED {
		t.Errorf("Authenticate after Destroy: err = %v, want EUNAUTHORIZED", err)
	}
	_, err = d.ChangePlan(ctx, resource(t, d, id, "pro", retried), pro)
	wantCode(t, err, addon.ENOTFOUND)
	_, err = d.RotateKey(ctx, id)
	wantCode(t, err, addon.ENOTFOUND)

	// A destroyed account's old URL does not bring it back: Create revives
	// it with a new key.
	revived, err := d.Create(ctx, resource(t, d, id, "basic", retried))
	if err != nil {
		t.Fatalf("Create after Destroy: %v", err)
	}
	if revived["URL"] == retried["URL"] {
		t.Error("Create after Destroy reused the destroyed key")
	}
	if acct, err := d.Account(ctx, id); err != nil || acct.Plan != "basic" {
		t.Errorf("revived account = %+v, %v", acct, err)
	}
}

func TestDestroyMissing(t *testing.T) {
	t.Parallel()
	d, _ := setup(t, "https://kiln.example.com")
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if err := d.Destroy(context.Background(), addon.Resource{ID: id}); err != nil {
			t.Errorf("Destroy(%s) of a missing account: %v", id, err)
		}
	}
}

func TestKeyStoredHashed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, dbURL := setup(t, "https://kiln.example.com")
	r, _, key := newAccount(t, d, "test")
	id := r.ID

	raw := rawDB(t, dbURL)
	var row string
	var hash []byte
	if err := raw.QueryRowContext(ctx, "SELECT row_to_json(a)::text, key_hash FROM accounts a WHERE id = $1", id).Scan(&row, &hash); err != nil {
		t.Fatal(err)
	}
	keyHex := hex.EncodeToString([]byte(key)) // how bytea would show a stored key
	if strings.Contains(row, key) || strings.Contains(row, keyHex) {
		t.Errorf("the raw row holds the key: %s", row)
	}
	want := sha256.Sum256([]byte(key))
	if string(hash) != string(want[:]) {
		t.Errorf("key_hash is not the SHA-256 of the key")
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _ := setup(t, "https://kiln.example.com")
	a, nameA, keyA := newAccount(t, d, "basic")
	b, nameB, keyB := newAccount(t, d, "basic")
	idA, idB := a.ID, b.ID

	tests := []struct {
		name, account, key, want string
	}{
		{"right credentials", nameA, keyA, idA},
		{"other account's right credentials", nameB, keyB, idB},
		{"wrong key", nameA, keyA[:len(keyA)-1] + "x", ""},
		{"another account's key", nameA, keyB, ""},
		{"unknown account", "acct-000000000000", keyA, ""},
		{"empty key", nameA, "", ""},
		{"empty account", "", keyA, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Authenticate(ctx, tt.account, tt.key)
			if tt.want == "" {
				wantCode(t, err, addon.EUNAUTHORIZED)
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Authenticate = %q, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestRotateKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _ := setup(t, "https://kiln.example.com")
	r, name, key := newAccount(t, d, "basic")
	id := r.ID
	rotated, err := d.RotateKey(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	name2, key2 := creds(t, rotated, "https", "kiln.example.com")
	if name2 != name || key2 == key {
		t.Errorf("RotateKey: name %s -> %s, key changed: %v", name, name2, key2 != key)
	}
	if _, err := d.Authenticate(ctx, name, key); addon.ErrorCode(err) != addon.EUNAUTHORIZED {
		t.Errorf("old key after rotation: %v", err)
	}
	if got, err := d.Authenticate(ctx, name, key2); err != nil || got != id {
		t.Errorf("new key after rotation: %q, %v", got, err)
	}
	_, err = d.RotateKey(ctx, uuid.NewString())
	wantCode(t, err, addon.ENOTFOUND)
}

func TestPublicURLKeepsScheme(t *testing.T) {
	t.Parallel()
	d, _ := setup(t, "http://localhost:5000/")
	vars, err := d.Create(context.Background(), resource(t, d, uuid.NewString(), "test", nil))
	if err != nil {
		t.Fatal(err)
	}
	creds(t, vars, "http", "localhost:5000")
	if strings.HasSuffix(vars["URL"], "/") {
		t.Errorf("URL %s ends with a slash", vars["URL"])
	}
}

func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, dbURL := setup(t, "https://kiln.example.com")
	id := uuid.NewString()
	const n = 5
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = d.Create(ctx, resource(t, d, id, "basic", nil))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Create %d: %v", i, err)
		}
	}
	var rows int
	if err := rawDB(t, dbURL).QueryRowContext(ctx, "SELECT count(*) FROM accounts WHERE id = $1", id).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d account rows for one add-on", rows)
	}
}

func TestLastUsedThrottled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _ := setup(t, "https://kiln.example.com")
	r, name, key := newAccount(t, d, "basic")
	id := r.ID
	var seen []time.Time
	for range 2 {
		if _, err := d.Authenticate(ctx, name, key); err != nil {
			t.Fatal(err)
		}
		acct, err := d.Account(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, acct.LastUsedAt)
	}
	if seen[0].IsZero() || !seen[0].Equal(seen[1]) {
		t.Errorf("last_used_at %v then %v: want set once, then left alone within the minute", seen[0], seen[1])
	}
}
