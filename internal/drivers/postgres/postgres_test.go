package postgres

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/kilntest"
)

// The tenant roles these tests make are cluster-wide: every test uses fresh
// uuids and destroys what it made, whatever happens.

func ctxFor(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// newDriver returns a driver on the test server with the testdata catalog.
func newDriver(tb testing.TB, o Options) *Driver {
	tb.Helper()
	if o.AdminURL == "" {
		o.AdminURL = kilntest.AdminURL()
	}
	if o.CatalogFile == "" {
		o.CatalogFile = filepath.Join("testdata", "plans.json")
	}
	d, err := New(ctxFor(tb), o)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// resource describes a fresh add-on on plan; its database is destroyed when
// the test ends, even if the test fails halfway through creating it.
func resource(tb testing.TB, d *Driver, plan string) addon.Resource {
	tb.Helper()
	p, err := d.Catalog().Lookup(plan)
	if err != nil {
		tb.Fatal(err)
	}
	r := addon.Resource{ID: uuid.NewString(), Name: "test-addon", Plan: p}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Destroy(ctx, r); err != nil {
			tb.Errorf("clean up add-on %s: %v", r.ID, err)
		}
	})
	return r
}

func create(tb testing.TB, d *Driver, r addon.Resource) addon.Vars {
	tb.Helper()
	vars, err := d.Create(ctxFor(tb), r)
	if err != nil {
		tb.Fatalf("Create: %v", err)
	}
	return vars
}

// admin is a superuser connection for looking at the server's catalogs.
func admin(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sql.Open("pgx", kilntest.AdminURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// dial opens one connection with a customer URL. pgx, not database/sql, so
// the test controls exactly how many sessions exist.
func dial(ctx context.Context, rawURL string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, rawURL)
}

func mustDial(tb testing.TB, rawURL string) *pgx.Conn {
	tb.Helper()
	c, err := dial(ctxFor(tb), rawURL)
	if err != nil {
		tb.Fatalf("connect with the customer URL: %v", err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func userOf(tb testing.TB, rawURL string) (user, password string) {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		tb.Fatalf("URL %q has no user", rawURL)
	}
	pw, _ := u.User.Password()
	return u.User.Username(), pw
}

func exists(tb testing.TB, db *sql.DB, catalog, column, name string) bool {
	tb.Helper()
	var ok bool
	q := "SELECT EXISTS (SELECT 1 FROM " + catalog + " WHERE " + column + " = $1)"
	if err := db.QueryRowContext(ctxFor(tb), q, name).Scan(&ok); err != nil {
		tb.Fatal(err)
	}
	return ok
}

// passwordMatches checks the role's stored SCRAM verifier against password,
// the way the server does at login. The local server trusts 127.0.0.1, so a
// login proves nothing about the password; this does.
func passwordMatches(tb testing.TB, db *sql.DB, role, password string) bool {
	tb.Helper()
	var stored string
	if err := db.QueryRowContext(ctxFor(tb), `SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = $1`, role).Scan(&stored); err != nil {
		tb.Fatalf("read verifier of %s: %v", role, err)
	}
	// SCRAM-SHA-256$<iter>:<salt>$<stored key>:<server key>
	rest, ok := strings.CutPrefix(stored, "SCRAM-SHA-256$")
	if !ok {
		tb.Fatalf("role %s has no SCRAM verifier", role)
	}
	iterSalt, _, _ := strings.Cut(rest, "$")
	iterText, saltText, _ := strings.Cut(iterSalt, ":")
	iter, err := strconv.Atoi(iterText)
	if err != nil {
		tb.Fatalf("verifier of %s: bad iteration count", role)
	}
	salt, err := base64.StdEncoding.DecodeString(saltText)
	if err != nil {
		tb.Fatalf("verifier of %s: bad salt", role)
	}
	want, err := scramVerifierWithSalt(password, salt, iter)
	if err != nil {
		tb.Fatal(err)
	}
	return want == stored
}

func sqlstate(err error) string { return code(err) }

func TestCreateGivesAWorkingPrivateDatabase(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	r := resource(t, d, "basic")
	vars := create(t, d, r)
	n, _ := namesFor(r.ID)

	u, err := url.Parse(vars["URL"])
	if err != nil {
		t.Fatal(err)
	}
	user, password := userOf(t, vars["URL"])
	if u.Scheme != "postgres" || user != n.role || u.Path != "/"+n.db || u.Query().Get("sslmode") != "disable" {
		t.Errorf("URL = postgres://%s:…@%s%s?%s; want role and database %s and sslmode=disable passed through", user, u.Host, u.Path, u.RawQuery, n.db)
	}
	if len(password) != 64 {
		t.Errorf("password has %d characters, want 64 (32 random bytes, hex)", len(password))
	}

	c := mustDial(t, vars["URL"])
	ctx := ctxFor(t)
	if _, err := c.Exec(ctx, `CREATE TABLE widgets (id serial PRIMARY KEY, name text)`); err != nil {
		t.Fatalf("create a table as the tenant: %v", err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO widgets (name) VALUES ('a')`); err != nil {
		t.Fatalf("insert as the tenant: %v", err)
	}

	a := admin(t)
	if !passwordMatches(t, a, n.role, password) {
		t.Error("the role's stored verifier does not match the password in the URL")
	}
	var publicConnect, super, createDB, createRole bool
	var connLimit int64
	err = a.QueryRowContext(ctx, `
		SELECT has_database_privilege('public', $1, 'CONNECT'), rolsuper, rolcreatedb, rolcreaterole, rolconnlimit
		FROM pg_roles WHERE rolname = $2`, n.db, n.role).Scan(&publicConnect, &super, &createDB, &createRole, &connLimit)
	if err != nil {
		t.Fatal(err)
	}
	if publicConnect {
		t.Error("PUBLIC may still connect to the tenant's database")
	}
	if super || createDB || createRole {
		t.Errorf("tenant role has superuser=%v createdb=%v createrole=%v; want none", super, createDB, createRole)
	}
	if want := r.Plan.Limits[LimitConnections]; connLimit != want {
		t.Errorf("connection limit = %d, want %d", connLimit, want)
	}
}

func TestTenantsCannotReachEachOther(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	ra, rb := resource(t, d, "basic"), resource(t, d, "basic")
	va, vb := create(t, d, ra), create(t, d, rb)
	mustDial(t, va["URL"])
	mustDial(t, vb["URL"])

	// B's credentials, A's database.
	u, _ := url.Parse(va["URL"])
	bUser, bPassword := userOf(t, vb["URL"])
	u.User = url.UserPassword(bUser, bPassword)
	c, err := dial(ctxFor(t), u.String())
	if err == nil {
		c.Close(context.Background())
		t.Fatal("tenant B connected to tenant A's database")
	}
	if got := sqlstate(err); got != "42501" {
		t.Errorf("connect as B to A's database: SQLSTATE %q (%v); want 42501 permission denied", got, err)
	}
}

func TestChangePlanSetsTheConnectionLimit(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	r := resource(t, d, "test") // 2 connections
	vars := create(t, d, r)
	r.Vars = vars // as the domain records them
	ctx := ctxFor(t)

	mustDial(t, vars["URL"])
	mustDial(t, vars["URL"])
	if c, err := dial(ctx, vars["URL"]); err == nil {
		c.Close(ctx)
		t.Fatal("a third connection was accepted on a 2-connection plan")
	} else if got := sqlstate(err); got != "53300" {
		t.Fatalf("third connection: SQLSTATE %q (%v); want 53300 too many connections", got, err)
	}

	basic, _ := d.Catalog().Lookup("basic") // 3 connections
	got, err := d.ChangePlan(ctx, r, basic)
	if err != nil {
		t.Fatalf("ChangePlan: %v", err)
	}
	if got["URL"] != vars["URL"] {
		t.Error("ChangePlan changed the URL")
	}
	mustDial(t, vars["URL"]) // the third now fits

	s, err := d.Stats(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Plan: "basic", SizeBytes: s.SizeBytes, SizeLimitBytes: 1 << 30, Connections: 3, ConnectionLimit: 3}
	if s != want {
		t.Errorf("Stats after plan change = %+v, want %+v", s, want)
	}
}

func TestChangePlanRefusesADowngradeThatDoesNotFit(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	cat := d.Catalog()
	ctx := ctxFor(t)

	t.Run("too big for the smaller plan", func(t *testing.T) {
		r := resource(t, d, "basic")
		vars := create(t, d, r)
		_, err := d.ChangePlan(ctx, r, cat["tiny"]) // 1 MB; an empty database is larger
		if addon.ErrorCode(err) != addon.EINVALID {
			t.Fatalf("ChangePlan to tiny: %v; want an EINVALID error (422)", err)
		}
		msg := addon.ErrorMessage(err)
		for _, w := range []string{"tiny", "1.0 MB", "uses"} {
			if !strings.Contains(msg, w) {
				t.Errorf("message %q does not say %q", msg, w)
			}
		}
		s, err := d.Stats(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if s.Plan != "basic" || s.ConnectionLimit != 3 {
			t.Errorf("after the refusal Stats = %+v; want plan basic and its 3 connections", s)
		}
		mustDial(t, vars["URL"])
	})
	t.Run("a smaller plan that fits", func(t *testing.T) {
		r := resource(t, d, "basic")
		create(t, d, r)
		if _, err := d.ChangePlan(ctx, r, cat["test"]); err != nil { // 100 MB
			t.Fatalf("ChangePlan to test: %v", err)
		}
		if s, _ := d.Stats(ctx, r); s.Plan != "test" || s.ConnectionLimit != 2 {
			t.Errorf("Stats = %+v, want plan test with 2 connections", s)
		}
	})
	t.Run("a larger plan the database still exceeds", func(t *testing.T) {
		// Refusing would trap a customer who is over the limit already.
		r := resource(t, d, "tiny")
		create(t, d, r)
		if _, err := d.ChangePlan(ctx, r, cat["small"]); err != nil { // 2 MB
			t.Fatalf("ChangePlan tiny→small: %v", err)
		}
	})
}

func TestDestroy(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	a := admin(t)
	ctx := ctxFor(t)
	r := resource(t, d, "basic")
	vars := create(t, d, r)
	n, _ := namesFor(r.ID)
	open := mustDial(t, vars["URL"])

	if err := d.Destroy(ctx, r); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if err := open.Ping(ctx); err == nil {
		t.Error("the tenant's open session survived Destroy")
	}
	if c, err := dial(ctx, vars["URL"]); err == nil {
		c.Close(ctx)
		t.Error("the URL still connects after Destroy")
	} else if s := sqlstate(err); s != "28000" && s != "3D000" {
		t.Errorf("connect after Destroy: SQLSTATE %q (%v); want role or database missing", s, err)
	}
	if exists(t, a, "pg_database", "datname", n.db) {
		t.Error("the database still exists")
	}
	if exists(t, a, "pg_roles", "rolname", n.role) {
		t.Error("the role still exists")
	}
	if err := d.Destroy(ctx, r); err != nil {
		t.Errorf("second Destroy: %v; want success", err)
	}
	never := addon.Resource{ID: uuid.NewString()}
	if err := d.Destroy(ctx, never); err != nil {
		t.Errorf("Destroy of something never created: %v; want success", err)
	}
}

func TestCreateRepairsACrash(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	a := admin(t)

	tests := []struct {
		name  string
		crash func(ctx context.Context, c *sql.Conn, n names, lim limits) error
	}{
		{"after create role", func(ctx context.Context, c *sql.Conn, n names, lim limits) error {
			return d.ensureRole(ctx, c, n, lim, "the-password-nobody-recorded")
		}},
		{"after create database", func(ctx context.Context, c *sql.Conn, n names, lim limits) error {
			if err := d.ensureRole(ctx, c, n, lim, "the-password-nobody-recorded"); err != nil {
				return err
			}
			return d.ensureDatabase(ctx, c, n)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t)
			r := resource(t, d, "basic")
			n, _ := namesFor(r.ID)
			lim, _ := limitsOf(r.Plan)
			if err := d.locked(ctx, n, func(c *sql.Conn) error { return tt.crash(ctx, c, n, lim) }); err != nil {
				t.Fatalf("first, interrupted attempt: %v", err)
			}
			if !exists(t, a, "pg_roles", "rolname", n.role) {
				t.Fatal("the interrupted attempt left no role; the test sets up nothing")
			}

			vars := create(t, d, r) // the retry: the domain recorded no Vars
			_, password := userOf(t, vars["URL"])
			if !passwordMatches(t, a, n.role, password) {
				t.Error("the retry's URL does not carry the role's password")
			}
			c := mustDial(t, vars["URL"])
			if _, err := c.Exec(ctx, `CREATE TABLE t (id int)`); err != nil {
				t.Errorf("create a table after the repair: %v", err)
			}
			var publicConnect bool
			if err := a.QueryRowContext(ctx, `SELECT has_database_privilege('public', $1, 'CONNECT')`, n.db).Scan(&publicConnect); err != nil {
				t.Fatal(err)
			}
			if publicConnect {
				t.Error("PUBLIC may connect to the repaired database")
			}
		})
	}
}

func TestCreateAgainKeepsTheRecordedURL(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	r := resource(t, d, "basic")
	first := create(t, d, r)
	r.Vars = first
	again := create(t, d, r)
	if again["URL"] != first["URL"] {
		t.Error("a retry that knows the recorded URL changed it")
	}
	n, _ := namesFor(r.ID)
	_, password := userOf(t, first["URL"])
	if !passwordMatches(t, admin(t), n.role, password) {
		t.Error("the recorded password no longer matches the role")
	}
}

func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	r := resource(t, d, "basic")
	ctx := ctxFor(t)

	var wg sync.WaitGroup
	vars := make([]addon.Vars, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { vars[i], errs[i] = d.Create(ctx, r) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Create: %v", err)
	}
	n, _ := namesFor(r.ID)
	a := admin(t)
	var dbs int
	if err := a.QueryRowContext(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, n.db).Scan(&dbs); err != nil {
		t.Fatal(err)
	}
	if dbs != 1 {
		t.Errorf("%d databases, want 1", dbs)
	}
	matches := 0
	for _, v := range vars {
		if _, pw := userOf(t, v["URL"]); passwordMatches(t, a, n.role, pw) {
			matches++
		}
	}
	if matches != 1 {
		t.Errorf("%d of the two returned passwords match the role, want exactly 1 (the later create's)", matches)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	r := resource(t, d, "basic")
	vars := create(t, d, r)
	ctx := ctxFor(t)
	c := mustDial(t, vars["URL"])
	before, err := d.Stats(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `CREATE TABLE filler AS SELECT g AS id, repeat('x', 500) AS pad FROM generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	after, err := d.Stats(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if after.SizeBytes < before.SizeBytes+5<<20 {
		t.Errorf("size went from %d to %d bytes after writing ~10 MB", before.SizeBytes, after.SizeBytes)
	}
	want := Stats{Plan: "basic", SizeBytes: after.SizeBytes, SizeLimitBytes: 1 << 30, Connections: 1, ConnectionLimit: 3}
	if after != want {
		t.Errorf("Stats = %+v, want %+v", after, want)
	}

	gone := addon.Resource{ID: uuid.NewString()}
	if _, err := d.Stats(ctx, gone); addon.ErrorCode(err) != addon.ENOTFOUND {
		t.Errorf("Stats of a missing database: %v; want ENOTFOUND", err)
	}
}

func TestRotateCredentials(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	r := resource(t, d, "basic")
	old := create(t, d, r)
	r.Vars = old
	ctx := ctxFor(t)
	session := mustDial(t, old["URL"])

	fresh, err := d.RotateCredentials(ctx, r)
	if err != nil {
		t.Fatalf("RotateCredentials: %v", err)
	}
	oldUser, oldPassword := userOf(t, old["URL"])
	newUser, newPassword := userOf(t, fresh["URL"])
	if newUser != oldUser || newPassword == oldPassword || newPassword == "" {
		t.Errorf("rotation gave user %q (was %q) and a password that is new: %v", newUser, oldUser, newPassword != oldPassword)
	}
	n, _ := namesFor(r.ID)
	a := admin(t)
	if !passwordMatches(t, a, n.role, newPassword) {
		t.Error("the new URL's password does not match the role")
	}
	if passwordMatches(t, a, n.role, oldPassword) {
		t.Error("the old password still matches the role")
	}
	if err := session.Ping(ctx); err == nil {
		t.Error("a session opened with the old credentials survived the rotation")
	}
	mustDial(t, fresh["URL"])

	if _, err := d.RotateCredentials(ctx, addon.Resource{ID: uuid.NewString()}); addon.ErrorCode(err) != addon.ENOTFOUND {
		t.Errorf("rotate a missing role: %v; want ENOTFOUND", err)
	}
}

func TestInvalidID(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	ctx := ctxFor(t)
	r := addon.Resource{ID: `x"; DROP ROLE postgres; --`, Plan: d.Catalog()["basic"]}
	if _, err := d.Create(ctx, r); addon.ErrorCode(err) != addon.EINVALID {
		t.Errorf("Create: %v; want EINVALID", err)
	}
	if err := d.Destroy(ctx, r); addon.ErrorCode(err) != addon.EINVALID {
		t.Errorf("Destroy: %v; want EINVALID", err)
	}
}

func TestNamesFor(t *testing.T) {
	n, err := namesFor("01234567-89AB-cdef-0123-456789ABCDEF")
	if err != nil {
		t.Fatal(err)
	}
	if want := "kiln_0123456789abcdef0123456789abcdef"; n.role != want || n.db != want {
		t.Errorf("names = %+v, want role and database %s", n, want)
	}
}

// TestNonSuperuserAdmin runs the whole life of a database with an admin role
// that has only CREATEROLE and CREATEDB, as managed Postgres services give.
func TestNonSuperuserAdmin(t *testing.T) {
	t.Parallel()
	a := admin(t)
	ctx := ctxFor(t)
	name := kilntest.Name("kilntest_admin")
	if _, err := a.ExecContext(ctx, `CREATE ROLE `+name+` LOGIN CREATEROLE CREATEDB`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // runs after the driver's cleanups below
		if _, err := a.ExecContext(context.Background(), `DROP ROLE IF EXISTS `+name); err != nil {
			t.Errorf("drop admin role: %v", err)
		}
	})
	u, _ := url.Parse(kilntest.AdminURL())
	u.User = url.User(name)
	d := newDriver(t, Options{AdminURL: u.String()})
	if d.super {
		t.Fatal("the test admin role is a superuser; the test would prove nothing")
	}

	r := resource(t, d, "test")
	vars := create(t, d, r)
	c := mustDial(t, vars["URL"])
	if _, err := c.Exec(ctx, `CREATE TABLE t (id int)`); err != nil {
		t.Fatalf("create a table: %v", err)
	}
	c.Close(ctx)
	if _, err := d.ChangePlan(ctx, r, d.Catalog()["basic"]); err != nil {
		t.Fatalf("ChangePlan: %v", err)
	}
	if s, err := d.Stats(ctx, r); err != nil || s.ConnectionLimit != 3 {
		t.Fatalf("Stats = %+v, %v; want connection limit 3", s, err)
	}
	if _, err := d.RotateCredentials(ctx, r); err != nil {
		t.Fatalf("RotateCredentials: %v", err)
	}
	mustDial(t, vars["URL"]) // left open: Destroy must end it
	if err := d.Destroy(ctx, r); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	n, _ := namesFor(r.ID)
	if exists(t, a, "pg_database", "datname", n.db) || exists(t, a, "pg_roles", "rolname", n.role) {
		t.Error("database or role left after Destroy")
	}
}

func TestNewRefusesBadSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"not a postgres URL", Options{AdminURL: "mysql://root:pw@db/x"}, "not a postgres://"},
		{"public host with a path", Options{AdminURL: kilntest.AdminURL(), PublicHost: "db.example.com/x"}, "RESOURCE_PUBLIC_HOST"},
		{"public host with a bad port", Options{AdminURL: kilntest.AdminURL(), PublicHost: "db.example.com:99999"}, "RESOURCE_PUBLIC_HOST"},
		{"broken catalog", Options{AdminURL: kilntest.AdminURL(), CatalogFile: filepath.Join("testdata", "bad-zero-size.json")}, "bad-zero-size.json"},
		{"unreachable server", Options{AdminURL: "postgres://kiln:s3cret-admin-pw@127.0.0.1:1/postgres?sslmode=disable"}, "RESOURCE_DATABASE_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := New(ctxFor(t), tt.o)
			if err == nil {
				d.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "pw@") {
				t.Errorf("error %q leaks the admin password", err)
			}
		})
	}
}

func TestCustomerURL(t *testing.T) {
	tests := []struct {
		admin, public, want string
	}{
		{"postgres://a:b@10.0.0.5:5433/postgres?sslmode=require", "", "postgres://kiln_x:pw@10.0.0.5:5433/kiln_x?sslmode=require"},
		{"postgres://a:b@10.0.0.5/postgres", "", "postgres://kiln_x:pw@10.0.0.5:5432/kiln_x"},
		{"postgres://a:b@10.0.0.5:5433/postgres?sslmode=verify-full", "db.example.com:6543", "postgres://kiln_x:pw@db.example.com:6543/kiln_x?sslmode=verify-full"},
		{"postgresql://a:b@10.0.0.5:5433/postgres", "db.example.com", "postgres://kiln_x:pw@db.example.com:5433/kiln_x"},
		{"postgres://a:b@10.0.0.5/postgres", "::1", "postgres://kiln_x:pw@[::1]:5432/kiln_x"},
	}
	for _, tt := range tests {
		t.Run(tt.admin+" "+tt.public, func(t *testing.T) {
			u, err := parseAdminURL(tt.admin)
			if err != nil {
				t.Fatal(err)
			}
			addr, err := publicAddr(u, tt.public)
			if err != nil {
				t.Fatal(err)
			}
			d := &Driver{addr: addr, sslmode: u.Query().Get("sslmode")}
			if got := d.vars(names{role: "kiln_x", db: "kiln_x"}, "pw")["URL"]; got != tt.want {
				t.Errorf("URL = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestPasswordAuthentication needs a server that checks passwords (the
// machine's server trusts 127.0.0.1, so elsewhere only the stored verifier
// can be checked): set KILN_TEST_PASSWORD_DATABASE_URL to the admin URL of
// one whose pg_hba.conf says scram-sha-256 or md5 for roles other than the
// admin.
func TestPasswordAuthentication(t *testing.T) {
	t.Parallel()
	// The shared test server trusts loopback, where any password connects:
	// use the configured password-checking server, or start a private one.
	adminURL := os.Getenv("KILN_TEST_PASSWORD_DATABASE_URL")
	if adminURL == "" {
		adminURL = kilntest.PasswordPostgres(t)
	}
	d := newDriver(t, Options{AdminURL: adminURL})
	r := resource(t, d, "basic")
	vars := create(t, d, r)
	r.Vars = vars
	ctx := ctxFor(t)
	mustDial(t, vars["URL"])

	wrong, _ := url.Parse(vars["URL"])
	wrong.User = url.UserPassword(wrong.User.Username(), "wrong")
	if c, err := dial(ctx, wrong.String()); err == nil {
		c.Close(ctx)
		t.Fatal("a wrong password connected: the server does not check passwords")
	} else if got := sqlstate(err); got != "28P01" {
		t.Fatalf("wrong password: SQLSTATE %q (%v); want 28P01", got, err)
	}

	fresh, err := d.RotateCredentials(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := dial(ctx, vars["URL"]); err == nil {
		c.Close(ctx)
		t.Error("the URL from before the rotation still connects")
	}
	mustDial(t, fresh["URL"])
}
