package e2e

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/kilntest"
)

// postgresAddon runs Kiln with RESOURCE_DRIVER=postgres on the test server,
// selling testdata/postgres-plans.json (extra adds settings), and
// provisions an add-on on plan. It returns the stack, an admin connection
// to the server, the add-on's id and the name of its database and owner
// role. The database and every role of the add-on are dropped when the
// test ends: roles are cluster-wide, so none may be left behind.
func postgresAddon(t *testing.T, plan string, extra ...string) (s *stack, admin *sql.DB, id, name string) {
	t.Helper()
	plans, err := filepath.Abs("testdata/postgres-plans.json")
	if err != nil {
		t.Fatal(err)
	}
	s = newStack(t, append([]string{"RESOURCE_DRIVER=postgres", "RESOURCE_DATABASE_URL=" + kilntest.AdminURL(), "RESOURCE_PLANS_FILE=" + plans}, extra...)...)
	if admin, err = sql.Open("pgx", kilntest.AdminURL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	id = s.provisioned(plan)
	name = "kiln_" + strings.ReplaceAll(id, "-", "")
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		for _, r := range []string{name + "_a", name + "_b", name} {
			admin.Exec("DROP ROLE IF EXISTS " + r)
		}
	})
	return s, admin, id, name
}

// TestPostgresDriver runs Kiln with RESOURCE_DRIVER=postgres: the customer's
// URL reaches a database of its own, the connection limit follows the plan,
// a downgrade the database does not fit is refused with 422, and
// deprovisioning removes the database and the role.
func TestPostgresDriver(t *testing.T) {
	s, admin, id, name := postgresAddon(t, "basic")
	ctx := context.Background()
	h, _ := s.Sim.Addon(id)
	url := h.Config[prefix+"_URL"]
	if !strings.HasPrefix(url, "postgres://"+name+":") || !strings.Contains(url, "/"+name) {
		t.Fatalf("Heroku got %s_URL %q, want the add-on's own role and database", prefix, url)
	}
	tenant, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tenant.Close() })
	if _, err := tenant.ExecContext(ctx, "CREATE TABLE widgets (id int PRIMARY KEY); INSERT INTO widgets VALUES (1)"); err != nil {
		t.Fatalf("the customer's URL cannot create a table: %v", err)
	}
	tenant.Close()

	connLimit := func() int {
		var n int
		if err := admin.QueryRowContext(ctx, "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := connLimit(); got != 10 {
		t.Errorf("connection limit on basic = %d, want 10", got)
	}
	if status, body := s.Call("PUT", "/heroku/resources/"+id, map[string]string{"plan": "standard"}); status != http.StatusOK {
		t.Fatalf("upgrade answered %d %v", status, body)
	}
	if got := connLimit(); got != 25 {
		t.Errorf("connection limit on standard = %d, want 25", got)
	}
	status, body := s.Call("PUT", "/heroku/resources/"+id, map[string]string{"plan": "test"})
	if msg, _ := body["message"].(string); status != http.StatusUnprocessableEntity || !strings.Contains(msg, "plan test allows") {
		t.Errorf("a downgrade the database does not fit answered %d %v, want 422 saying why", status, body)
	}
	if a := s.Get(id); a.Plan != "standard" || connLimit() != 25 {
		t.Errorf("after the refused downgrade: plan %s, limit %d", a.Plan, connLimit())
	}

	if status, _ := s.Call("DELETE", "/heroku/resources/"+id, nil); status != http.StatusNoContent {
		t.Fatalf("deprovision answered %d", status)
	}
	eventually(t, 30*time.Second, "deprovisioned", func() bool { return s.State(id) == addon.StateDeprovisioned })
	var left int
	if err := admin.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) + (SELECT count(*) FROM pg_roles WHERE rolname = $1)", name).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d of the database and role survived deprovisioning", left)
	}
	gone, _ := sql.Open("pgx", url)
	defer gone.Close()
	if err := gone.PingContext(ctx); err == nil {
		t.Error("the customer's URL still connects after deprovisioning")
	}
}
