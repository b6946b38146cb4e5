package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Credential rolls with overlap, the way Heroku Postgres rolls its own
// credentials: the database and everything in it belong to the owner role
// (kiln_<id>), and the app logs in as one of two login roles, kiln_<id>_a
// and kiln_<id>_b, each a member of the owner that takes the owner's
// identity on login (ALTER ROLE ... SET role), so whatever either creates
// belongs to the owner and stays usable by the other. A roll gives the
// login role the app is not using a new password and returns its URL; the
// old role keeps working (its sessions too) until Revoke takes its LOGIN
// away and ends its sessions. Add-ons made before rolls existed log in as
// the owner itself; their first roll moves them to _a, and Revoke then takes
// LOGIN from the owner.

// Suffixes of the two login roles.
const (
	loginA = "_a"
	loginB = "_b"
)

// userIn returns the user name of a URL this driver made for n's database,
// or "".
func userIn(v addon.Vars, n names) string {
	u, err := url.Parse(v["URL"])
	if err != nil || u.User == nil || strings.TrimPrefix(u.Path, "/") != n.db {
		return ""
	}
	switch name := u.User.Username(); name {
	case n.role, n.role + loginA, n.role + loginB:
		return name
	}
	return ""
}

// Roll makes new credentials on the login role the app is not using and
// returns the Vars with its URL. The current credentials are not touched.
func (d *Driver) Roll(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	n, err := namesFor(r.ID)
	if err != nil {
		return nil, err
	}
	lim, err := usableLimits(r.Plan)
	if err != nil {
		return nil, err
	}
	next := n.role + loginA
	if userIn(r.Vars, n) == next {
		next = n.role + loginB
	}
	password, verifier, err := newCredential()
	if err != nil {
		return nil, err
	}
	err = d.onExisting(ctx, r, n, "roll credentials", func(c *sql.Conn) error {
		if err := d.adopt(ctx, c, n); err != nil {
			return err
		}
		attrs := fmt.Sprintf(`LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT %d PASSWORD %s`,
			lim.Connections, quoteLiteral(verifier))
		has, err := roleExists(ctx, c, next)
		if err != nil {
			return err
		}
		if has {
			err = exec(ctx, c, "reset login role", `ALTER ROLE `+ident(next)+` WITH `+attrs)
		} else {
			err = exec(ctx, c, "create login role", `CREATE ROLE `+ident(next)+` WITH `+attrs)
		}
		if err != nil {
			return err
		}
		if !d.super {
			if err := exec(ctx, c, "grant the login role to the admin", `GRANT `+ident(next)+` TO CURRENT_USER`); err != nil {
				return err
			}
		}
		if err := exec(ctx, c, "make the login role a member of the owner", `GRANT `+ident(n.role)+` TO `+ident(next)); err != nil {
			return err
		}
		// Sessions act as the owner, so what they create belongs to it.
		return exec(ctx, c, "log in as the owner", `ALTER ROLE `+ident(next)+` SET role = `+quoteLiteral(n.role))
	})
	if err != nil {
		return nil, err
	}
	d.log.Info("postgres credentials rolled", "addon", r.ID, "database", n.db, "login", next)
	return replaced(r.Vars, addon.Vars{"URL": d.urlFor(next, n.db, password)}), nil
}

// Revoke ends the old credentials: their role can no longer log in and its
// open sessions are ended. The role in r.Vars (the current one) is never
// touched.
func (d *Driver) Revoke(ctx context.Context, r addon.Resource, old addon.Vars) error {
	n, err := namesFor(r.ID)
	if err != nil {
		return err
	}
	user := userIn(old, n)
	if user == "" || user == userIn(r.Vars, n) {
		return nil
	}
	err = d.locked(ctx, n, func(c *sql.Conn) error {
		exists, err := roleExists(ctx, c, user)
		if err != nil || !exists {
			return err
		}
		if user == n.role {
			if err := d.adopt(ctx, c, n); err != nil {
				return err
			}
		}
		if err := exec(ctx, c, "revoke login", `ALTER ROLE `+ident(user)+` WITH NOLOGIN PASSWORD NULL`); err != nil {
			return err
		}
		_, err = c.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()`, user)
		if err != nil {
			return fmt.Errorf("terminate old sessions: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke old credentials of add-on %s: %w", r.ID, err)
	}
	d.log.Info("postgres old credentials revoked", "addon", r.ID, "database", n.db, "login", user)
	return nil
}

// limitLogins applies a plan's connection limit to the login roles.
func (d *Driver) limitLogins(ctx context.Context, c *sql.Conn, n names, lim limits) error {
	for _, role := range []string{n.role + loginA, n.role + loginB} {
		has, err := roleExists(ctx, c, role)
		if err != nil {
			return err
		}
		if has {
			if err := exec(ctx, c, "set connection limit", fmt.Sprintf(`ALTER ROLE %s CONNECTION LIMIT %d`, ident(role), lim.Connections)); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropLogins drops the login roles (Destroy): no more logins, sessions
// ended, grants gone. The database is already dropped.
func (d *Driver) dropLogins(ctx context.Context, c *sql.Conn, n names) error {
	for _, role := range []string{n.role + loginA, n.role + loginB} {
		has, err := roleExists(ctx, c, role)
		if err != nil {
			return err
		}
		if !has {
			continue
		}
		if !d.super {
			if err := exec(ctx, c, "grant the login role to the admin", `GRANT `+ident(role)+` TO CURRENT_USER`); err != nil {
				return err
			}
		}
		if err := exec(ctx, c, "disable login", `ALTER ROLE `+ident(role)+` NOLOGIN`); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()`, role); err != nil {
			return fmt.Errorf("terminate sessions: %w", err)
		}
		if err := exec(ctx, c, "drop what the login role owns", `DROP OWNED BY `+ident(role)); err != nil {
			return err
		}
		if err := exec(ctx, c, "drop login role", `DROP ROLE IF EXISTS `+ident(role)); err != nil {
			return err
		}
	}
	return nil
}
