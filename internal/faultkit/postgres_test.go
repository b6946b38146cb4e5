package faultkit_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/faultkit"
	"github.com/kiln-dev/kiln/internal/kilntest"
)

// TestDatabase: the run's database is its own and empty, a terminate ends
// its sessions (and only counts its own), and Drop removes it.
func TestDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := faultkit.CreateDatabase(ctx, kilntest.AdminURL(), "faultkit_test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Drop(context.Background()) })
	if !strings.HasPrefix(d.Name, "faultkit_test_") || !strings.Contains(d.URL, "/"+d.Name) {
		t.Errorf("database %q at %q", d.Name, d.URL)
	}
	db, err := sql.Open("pgx", d.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("connect to the new database: %v", err)
	}
	defer conn.Close()
	var current string
	if err := conn.QueryRowContext(ctx, "SELECT current_database()").Scan(&current); err != nil || current != d.Name {
		t.Fatalf("connected to %q (%v), want %q", current, err, d.Name)
	}

	n, err := d.TerminateBackends(ctx)
	if err != nil || n != 1 {
		t.Errorf("TerminateBackends = %d, %v; want the one session ended", n, err)
	}
	if err := conn.PingContext(ctx); err == nil {
		t.Error("the session survived TerminateBackends")
	}

	if err := d.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pgx", kilntest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var exists bool
	if err := admin.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", d.Name).Scan(&exists); err != nil || exists {
		t.Errorf("database still exists after Drop: %v, %v", exists, err)
	}
}
