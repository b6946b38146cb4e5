// Package postgres is the resource driver that gives each add-on its own
// Postgres database (RESOURCE_DRIVER=postgres): on one shared server, every
// add-on gets a login role with a random password and a database owned by
// that role with CONNECT revoked from PUBLIC, so one customer cannot reach
// another's data. Plans set the role's connection limit and a size limit
// that plan changes respect.
//
// Every step is idempotent and serialised per add-on with an advisory lock
// on the server, so a retry after a crash at any point finishes what the
// first attempt started, concurrent attempts cannot trip over each other's
// DDL, and destroying what is already gone succeeds.
//
// The package is named postgres like Kiln's own store adapter; cmd imports
// it under another name.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/kiln-dev/kiln/internal/addon"
)

// Options configure the driver; cmd fills them from the environment.
type Options struct {
	// AdminURL is RESOURCE_DATABASE_URL: a postgres:// URL of a role that is
	// SUPERUSER, or has CREATEROLE and CREATEDB.
	AdminURL string
	// PublicHost (RESOURCE_PUBLIC_HOST, host[:port]) is the address put in
	// customers' URLs when it differs from the admin address, e.g. a private
	// admin network. Without a port, the admin URL's port is used.
	PublicHost string
	// CatalogFile (RESOURCE_PLANS_FILE) replaces the built-in plans.json.
	CatalogFile string
	// Log receives one line per resource change; nil discards.
	Log *slog.Logger
}

// Driver creates customers' databases on one Postgres server. It implements
// addon.Driver.
type Driver struct {
	db      *sql.DB
	catalog addon.Catalog
	addr    string // host:port written into customers' URLs
	sslmode string // the admin URL's sslmode, passed through to customers
	super   bool   // the admin role is a superuser
	log     *slog.Logger
}

var _ addon.Driver = (*Driver)(nil)

// lockClass is the first key of the per-add-on advisory locks ("kiln"), so
// they do not collide with other users of advisory locks on the server.
const lockClass int32 = 0x6b696c6e

// New validates the catalog and the addresses, connects to the admin server
// and checks the admin role may create roles and databases, so a
// misconfigured worker stops at start-up rather than at the first provision.
func New(ctx context.Context, o Options) (*Driver, error) {
	cat, err := LoadCatalog(o.CatalogFile)
	if err != nil {
		return nil, err
	}
	u, err := parseAdminURL(o.AdminURL)
	if err != nil {
		return nil, err
	}
	addr, err := publicAddr(u, o.PublicHost)
	if err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := sql.Open("pgx", o.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("postgres driver: open admin database: %w", err)
	}
	// Admin work is a few short statements per add-on; keep the footprint
	// on the customers' server small.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	d := &Driver{db: db, catalog: cat, addr: addr, sslmode: u.Query().Get("sslmode"), log: log}
	if err := d.checkAdmin(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

func (d *Driver) checkAdmin(ctx context.Context) error {
	var who string
	var version int
	var super, createRole, createDB bool
	err := d.db.QueryRowContext(ctx,
		`SELECT rolname, current_setting('server_version_num')::int, rolsuper, rolcreaterole, rolcreatedb
		 FROM pg_roles WHERE rolname = current_user`,
	).Scan(&who, &version, &super, &createRole, &createDB)
	if err != nil {
		return fmt.Errorf("postgres driver: connect to the admin URL (RESOURCE_DATABASE_URL): %w", err)
	}
	if version < 130000 { // DROP DATABASE ... WITH (FORCE)
		return fmt.Errorf("postgres driver: the server runs Postgres %d.%d; this driver needs 13 or later", version/10000, version%10000/100)
	}
	if !super && !(createRole && createDB) {
		return fmt.Errorf("postgres driver: admin role %q needs SUPERUSER, or CREATEROLE and CREATEDB", who)
	}
	d.super = super
	return nil
}

// parseAdminURL accepts only the URL form, because customers' URLs are built
// from it. Its errors never quote the URL: it holds the admin password.
func parseAdminURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errors.New("postgres driver: the admin URL (RESOURCE_DATABASE_URL) is not a postgres://user:password@host:port/db URL")
	}
	return u, nil
}

// publicAddr is the host:port customers connect to.
func publicAddr(admin *url.URL, public string) (string, error) {
	port := admin.Port()
	if port == "" {
		port = "5432"
	}
	if public == "" {
		if admin.Hostname() == "" {
			return "", errors.New("postgres driver: the admin URL has no host; set the public host (RESOURCE_PUBLIC_HOST) customers connect to")
		}
		return net.JoinHostPort(admin.Hostname(), port), nil
	}
	bad := fmt.Errorf("postgres driver: public host (RESOURCE_PUBLIC_HOST) %q is not host or host:port", public)
	if strings.ContainsAny(public, "/?#@ ") {
		return "", bad
	}
	host, p, err := net.SplitHostPort(public)
	if err != nil { // no port (or a bare IPv6 address)
		host, p = strings.Trim(public, "[]"), port
	}
	if n, err := strconv.Atoi(p); host == "" || err != nil || n < 1 || n > 65535 {
		return "", bad
	}
	return net.JoinHostPort(host, p), nil
}

// Close releases the admin connections.
func (d *Driver) Close() error { return d.db.Close() }

// Name is the RESOURCE_DRIVER value that selects this driver; the
// configuration and the wiring name the driver by it, so it is spelled once.
const Name = "postgres"

// Name is the RESOURCE_DRIVER value that selects this driver.
func (d *Driver) Name() string { return Name }

// Catalog is the plans loaded at New.
func (d *Driver) Catalog() addon.Catalog { return d.catalog }

// Abilities: a database's password can be replaced outright or rolled (two
// login roles), and its panel shows size and connections.
func (d *Driver) Abilities() addon.Abilities {
	return addon.Abilities{Rotate: true, Roll: true, Panel: true}
}

// names are the role and database of one add-on; both are the same
// identifier, derived from the uuid so a retry finds what a first try made.
type names struct{ role, db string }

func namesFor(id string) (names, error) {
	if !addon.ValidID(id) {
		return names{}, addon.Errorf(addon.EINVALID, "Add-on id %q is not a valid UUID.", id)
	}
	n := "kiln_" + strings.ToLower(strings.ReplaceAll(id, "-", ""))
	return names{role: n, db: n}, nil
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// quoteLiteral quotes s as an SQL string literal whatever
// standard_conforming_strings says.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return "E'" + strings.ReplaceAll(s, `\`, `\\`) + "'"
	}
	return "'" + s + "'"
}

// Create makes the add-on's role and database and returns {"URL": ...}. A
// retry finds what an earlier try made: an existing database is kept; an
// existing role keeps the password in r.Vars when the domain recorded one,
// and otherwise gets a new one, because a role left by a crash before the
// domain recorded its Vars has a password nobody knows.
func (d *Driver) Create(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	n, err := namesFor(r.ID)
	if err != nil {
		return nil, err
	}
	lim, err := usableLimits(r.Plan)
	if err != nil {
		return nil, err
	}
	password := passwordIn(r.Vars, n)
	if password == "" {
		if password, err = newPassword(); err != nil {
			return nil, err
		}
	}
	err = d.locked(ctx, n, func(c *sql.Conn) error {
		if err := d.ensureRole(ctx, c, n, lim, password); err != nil {
			return err
		}
		if err := d.ensureDatabase(ctx, c, n); err != nil {
			return err
		}
		if err := exec(ctx, c, "revoke PUBLIC's access to the database", `REVOKE ALL ON DATABASE `+ident(n.db)+` FROM PUBLIC`); err != nil {
			return err
		}
		return d.record(ctx, c, n, r.ID, r.Plan.Slug, lim)
	})
	if err != nil {
		return nil, fmt.Errorf("create database for add-on %s: %w", r.ID, err)
	}
	d.log.Info("postgres resource ready", "addon", r.ID, "database", n.db, "plan", r.Plan.Slug)
	return d.vars(n, password), nil
}

// ensureRole creates the login role or, when it exists, resets its
// password, privileges and connection limit to what this attempt wants.
func (d *Driver) ensureRole(ctx context.Context, c *sql.Conn, n names, lim limits, password string) error {
	verifier, err := scramVerifier(password)
	if err != nil {
		return err
	}
	// The tenant role gets nothing beyond logging in.
	attrs := fmt.Sprintf(`LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT %d PASSWORD %s`,
		lim.Connections, quoteLiteral(verifier))
	exists, err := roleExists(ctx, c, n.role)
	if err != nil {
		return err
	}
	if !exists {
		err = exec(ctx, c, "create role", `CREATE ROLE `+ident(n.role)+` WITH `+attrs)
		if code(err) == "42710" { // duplicate_object: made meanwhile outside our lock
			exists = true
		} else if err != nil {
			return err
		}
	}
	if exists {
		if err := exec(ctx, c, "reset role", `ALTER ROLE `+ident(n.role)+` WITH `+attrs); err != nil {
			return err
		}
	}
	return d.adopt(ctx, c, n)
}

// adopt makes a non-superuser admin a member of the tenant role, which
// Postgres requires before the admin may give it a database, terminate its
// sessions or drop what it owns.
func (d *Driver) adopt(ctx context.Context, c *sql.Conn, n names) error {
	if d.super {
		return nil
	}
	return exec(ctx, c, "grant the tenant role to the admin", `GRANT `+ident(n.role)+` TO CURRENT_USER`)
}

// ensureDatabase creates the database owned by the role, or gives an
// existing one back to the role.
func (d *Driver) ensureDatabase(ctx context.Context, c *sql.Conn, n names) error {
	var exists bool
	if err := c.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, n.db).Scan(&exists); err != nil {
		return fmt.Errorf("look up database: %w", err)
	}
	if !exists {
		// template0, because copying template1 fails while anyone is
		// connected to it. CREATE DATABASE cannot run in a transaction, so
		// it runs alone; a duplicate is someone else's success.
		err := exec(ctx, c, "create database", `CREATE DATABASE `+ident(n.db)+` OWNER `+ident(n.role)+` TEMPLATE template0`)
		if code(err) != "42P04" { // duplicate_database
			return err
		}
	}
	return exec(ctx, c, "set database owner", `ALTER DATABASE `+ident(n.db)+` OWNER TO `+ident(n.role))
}

// record is the plan and limits a database was last set to, kept as the
// database's comment on the resource server itself: Stats reports what was
// applied rather than what the catalog says today, and an operator (or a
// future size enforcer) looking at the server sees each tenant's limits
// without Kiln's database.
type record struct {
	Addon string `json:"addon"`
	Plan  string `json:"plan"`
	limits
}

func (d *Driver) record(ctx context.Context, c *sql.Conn, n names, id, plan string, lim limits) error {
	b, err := json.Marshal(record{Addon: id, Plan: plan, limits: lim})
	if err != nil {
		return fmt.Errorf("encode limits: %w", err)
	}
	return exec(ctx, c, "record limits", `COMMENT ON DATABASE `+ident(n.db)+` IS `+quoteLiteral(string(b)))
}

// ChangePlan sets the role's connection limit to the new plan's and records
// the new limits. A move to a plan with a lower size limit than the current
// plan's is refused (EINVALID, so Heroku shows the customer why) when the
// database is already larger than the new limit. Vars do not change.
func (d *Driver) ChangePlan(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
	n, err := namesFor(r.ID)
	if err != nil {
		return nil, err
	}
	lim, err := usableLimits(to)
	if err != nil {
		return nil, err
	}
	err = d.locked(ctx, n, func(c *sql.Conn) error {
		var size int64
		err := c.QueryRowContext(ctx, `SELECT pg_database_size(datname) FROM pg_database WHERE datname = $1`, n.db).Scan(&size)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("database %s does not exist", n.db)
		}
		if err != nil {
			return fmt.Errorf("database size: %w", err)
		}
		from, ferr := limitsOf(r.Plan)
		downgrade := ferr != nil || lim.SizeBytes < from.SizeBytes
		if downgrade && size > lim.SizeBytes {
			return addon.Errorf(addon.EINVALID,
				"The database uses %s but plan %s allows %s; delete data until it fits, then change plan again.",
				megabytes(size), to.Slug, megabytes(lim.SizeBytes))
		}
		err = exec(ctx, c, "set connection limit", fmt.Sprintf(`ALTER ROLE %s CONNECTION LIMIT %d`, ident(n.role), lim.Connections))
		if err != nil {
			return err
		}
		if err := d.limitLogins(ctx, c, n, lim); err != nil {
			return err
		}
		return d.record(ctx, c, n, r.ID, to.Slug, lim)
	})
	if err != nil {
		if addon.ErrorCode(err) == addon.EINVALID {
			return nil, err
		}
		return nil, fmt.Errorf("change plan of add-on %s: %w", r.ID, err)
	}
	d.log.Info("postgres plan changed", "addon", r.ID, "database", n.db, "from", r.Plan.Slug, "to", to.Slug)
	return replaced(r.Vars, nil), nil
}

func megabytes(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

// Destroy ends the tenant's sessions and drops its database and role. The
// role loses LOGIN first so nothing reconnects in between. What is already
// gone is skipped, so a repeat, or a destroy after a half-finished create,
// succeeds.
func (d *Driver) Destroy(ctx context.Context, r addon.Resource) error {
	n, err := namesFor(r.ID)
	if err != nil {
		return err
	}
	err = d.locked(ctx, n, func(c *sql.Conn) error {
		exists, err := roleExists(ctx, c, n.role)
		if err != nil {
			return err
		}
		if exists {
			if err := d.adopt(ctx, c, n); err != nil {
				return err
			}
			if err := exec(ctx, c, "disable login", `ALTER ROLE `+ident(n.role)+` NOLOGIN`); err != nil {
				return err
			}
		}
		if err := d.terminate(ctx, c, n); err != nil {
			return err
		}
		if err := exec(ctx, c, "drop database", `DROP DATABASE IF EXISTS `+ident(n.db)+` WITH (FORCE)`); err != nil {
			return err
		}
		if err := d.dropLogins(ctx, c, n); err != nil {
			return err
		}
		if !exists {
			return nil
		}
		// Grants to the role on shared objects (and anything it made in the
		// admin database) would block DROP ROLE.
		if err := exec(ctx, c, "drop what the role owns", `DROP OWNED BY `+ident(n.role)); err != nil {
			return err
		}
		return exec(ctx, c, "drop role", `DROP ROLE IF EXISTS `+ident(n.role))
	})
	if err != nil {
		return fmt.Errorf("destroy database of add-on %s: %w", r.ID, err)
	}
	d.log.Info("postgres resource destroyed", "addon", r.ID, "database", n.db)
	return nil
}

// terminate ends every session of the tenant role, and every session on its
// database whoever opened it.
func (d *Driver) terminate(ctx context.Context, c *sql.Conn, n names) error {
	_, err := c.ExecContext(ctx,
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		 WHERE (usename IN ($1, $3, $4) OR datname = $2) AND pid <> pg_backend_pid()`, n.role, n.db, n.role+loginA, n.role+loginB)
	if err != nil {
		return fmt.Errorf("terminate sessions: %w", err)
	}
	return nil
}

// Stats is what the dashboard panel of a Postgres add-on shows.
type Stats struct {
	Plan            string // the plan the limits were last set for
	SizeBytes       int64
	SizeLimitBytes  int64
	Connections     int64 // open sessions of the tenant role
	ConnectionLimit int64
}

// Stats reads the database's size, the role's open sessions and the limits
// in force, for the customer's dashboard. ENOTFOUND when the database or
// role does not exist.
func (d *Driver) Stats(ctx context.Context, r addon.Resource) (Stats, error) {
	n, err := namesFor(r.ID)
	if err != nil {
		return Stats{}, err
	}
	var s Stats
	var comment sql.NullString
	err = d.db.QueryRowContext(ctx, `
		SELECT pg_database_size(d.datname),
		       (SELECT count(*) FROM pg_stat_activity WHERE usename IN (r.rolname, r.rolname || '_a', r.rolname || '_b')),
		       r.rolconnlimit,
		       shobj_description(d.oid, 'pg_database')
		FROM pg_database d, pg_roles r
		WHERE d.datname = $1 AND r.rolname = $2`, n.db, n.role,
	).Scan(&s.SizeBytes, &s.Connections, &s.ConnectionLimit, &comment)
	if errors.Is(err, sql.ErrNoRows) {
		return Stats{}, addon.Errorf(addon.ENOTFOUND, "The database of add-on %s does not exist.", r.ID)
	}
	if err != nil {
		return Stats{}, fmt.Errorf("stats of add-on %s: %w", r.ID, err)
	}
	var rec record
	if comment.Valid && json.Unmarshal([]byte(comment.String), &rec) == nil && rec.SizeBytes > 0 {
		s.Plan, s.SizeLimitBytes = rec.Plan, rec.SizeBytes
	} else if lim, err := limitsOf(r.Plan); err == nil {
		s.Plan, s.SizeLimitBytes = r.Plan.Slug, lim.SizeBytes
	}
	return s, nil
}

// RotateCredentials gives the role a new random password and ends its open
// sessions, so whoever held a leaked URL is cut off at once, and returns the
// Vars with the new URL for the domain to record and push to Heroku (the
// app restarts with it).
func (d *Driver) RotateCredentials(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	n, err := namesFor(r.ID)
	if err != nil {
		return nil, err
	}
	password, verifier, err := newCredential()
	if err != nil {
		return nil, err
	}
	err = d.onExisting(ctx, r, n, "rotate credentials", func(c *sql.Conn) error {
		if err := exec(ctx, c, "set password", `ALTER ROLE `+ident(n.role)+` WITH LOGIN PASSWORD `+quoteLiteral(verifier)); err != nil {
			return err
		}
		return d.terminate(ctx, c, n)
	})
	if err != nil {
		return nil, err
	}
	d.log.Info("postgres credentials rotated", "addon", r.ID, "database", n.db)
	return replaced(r.Vars, d.vars(n, password)), nil
}

// onExisting runs fn holding the add-on's lock (locked) once it has found
// the add-on's owner role. The answer is ENOTFOUND as is when the role is
// gone, so the domain can tell a vanished database from a failure; other
// errors are wrapped with what was being done.
func (d *Driver) onExisting(ctx context.Context, r addon.Resource, n names, what string, fn func(c *sql.Conn) error) error {
	err := d.locked(ctx, n, func(c *sql.Conn) error {
		exists, err := roleExists(ctx, c, n.role)
		if err != nil {
			return err
		}
		if !exists {
			return addon.Errorf(addon.ENOTFOUND, "The database of add-on %s does not exist.", r.ID)
		}
		return fn(c)
	})
	if err != nil && addon.ErrorCode(err) != addon.ENOTFOUND {
		return fmt.Errorf("%s of add-on %s: %w", what, r.ID, err)
	}
	return err
}

// replaced returns a copy of vars with the entries of with: the Vars of a
// Resource are the domain's and are never changed in place.
func replaced(vars, with addon.Vars) addon.Vars {
	out := make(addon.Vars, len(vars)+len(with))
	maps.Copy(out, vars)
	maps.Copy(out, with)
	return out
}

// vars are the config vars of a tenant: the URL its app connects with.
func (d *Driver) vars(n names, password string) addon.Vars {
	return addon.Vars{"URL": d.urlFor(n.role, n.db, password)}
}

// urlFor is the URL a login role connects to the database with.
func (d *Driver) urlFor(user, db, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: d.addr, Path: "/" + db}
	if d.sslmode != "" {
		u.RawQuery = url.Values{"sslmode": {d.sslmode}}.Encode()
	}
	return u.String()
}

// passwordIn returns the password of a URL this driver made for n, or "".
func passwordIn(v addon.Vars, n names) string {
	u, err := url.Parse(v["URL"])
	if err != nil || u.User == nil || u.User.Username() != n.role || strings.TrimPrefix(u.Path, "/") != n.db {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}

// locked runs fn on one admin connection holding the add-on's advisory
// lock, so concurrent work on one add-on (a duplicate job, a deprovision
// racing a provision) runs one after the other instead of failing with
// "tuple concurrently updated". The lock is per session because CREATE
// DATABASE cannot run inside a transaction.
func (d *Driver) locked(ctx context.Context, n names, fn func(c *sql.Conn) error) (err error) {
	c, err := d.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("admin connection: %w", err)
	}
	defer c.Close()
	// discard keeps a connection that may still hold the lock out of the pool.
	discard := func() { _ = c.Raw(func(any) error { return driver.ErrBadConn }) }
	if _, err := c.ExecContext(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, lockClass, n.role); err != nil {
		discard()
		return fmt.Errorf("lock add-on: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, uerr := c.ExecContext(uctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, lockClass, n.role); uerr != nil {
			discard()
		}
	}()
	return fn(c)
}

func roleExists(ctx context.Context, c *sql.Conn, role string) (bool, error) {
	var ok bool
	if err := c.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up role: %w", err)
	}
	return ok, nil
}

// exec runs one admin statement. Errors name the step, never the SQL, which
// may carry a password verifier.
func exec(ctx context.Context, c *sql.Conn, what, query string) error {
	if _, err := c.ExecContext(ctx, query); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// code is the SQLSTATE of a Postgres error, or "".
func code(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}
