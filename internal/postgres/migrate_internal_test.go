package postgres

import (
	"context"
	"io/fs"
	"testing"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"

	"github.com/kiln-dev/kiln/internal/kilntest"
)

// TestForgetDestroyedResources: migration 16 forgets the vars and steps
// of add-ons given up at their deadline before giveUp did so itself (their
// resource was destroyed), and of no other add-on.
func TestForgetDestroyedResources(t *testing.T) {
	ctx := context.Background()
	db, err := openSQL(kilntest.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	const deadline = "provisioning did not finish before the deadline"
	rows := []struct {
		name, state, reason string
		forgotten           bool
	}{
		{"given up at the deadline", "failed", deadline, true},
		{"failed otherwise: the resource exists", "failed", "Heroku refused the config", false},
		{"provisioned", "provisioned", "", false},
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = uuid.NewString()
		if _, err := db.ExecContext(ctx, `INSERT INTO addons (id, plan, state, reason, vars, resource_created_at, config_pushed_at)
			VALUES ($1, 'basic', $2, $3, '\x01', now(), now())`, ids[i], r.state, r.reason); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			var vars, created, pushed bool
			if err := db.QueryRowContext(ctx, `SELECT vars IS NULL, resource_created_at IS NULL, config_pushed_at IS NULL FROM addons WHERE id = $1`,
				ids[i]).Scan(&vars, &created, &pushed); err != nil {
				t.Fatal(err)
			}
			if vars != r.forgotten || created != r.forgotten || pushed != r.forgotten {
				t.Errorf("vars, resource and push forgotten: %v, %v, %v; want %v", vars, created, pushed, r.forgotten)
			}
		})
	}
}
