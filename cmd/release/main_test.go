package main

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/kiln-dev/kiln/internal/kilntest"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestRunConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"missing DATABASE_URL", map[string]string{}, "DATABASE_URL is required"},
		{"malformed DATABASE_URL", map[string]string{"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL is malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), env(tt.env), &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRunMigratesIdempotently(t *testing.T) {
	ctx := context.Background()
	url := kilntest.Postgres(t)
	e := env(map[string]string{"DATABASE_URL": url, "DYNO": "release.1234"})

	var first bytes.Buffer
	if err := run(ctx, e, &first); err != nil {
		t.Fatalf("first run: %v", err)
	}
	for _, want := range []string{"msg=\"migration applied\"", "file=00001_init.sql", "dyno=release.1234", "msg=\"database schema up to date\""} {
		if !strings.Contains(first.String(), want) {
			t.Errorf("first run's log lacks %s:\n%s", want, first.String())
		}
	}

	var second bytes.Buffer
	if err := run(ctx, e, &second); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if strings.Contains(second.String(), "migration applied") || !strings.Contains(second.String(), "applied=0") {
		t.Errorf("second run was not a no-op:\n%s", second.String())
	}
	if strings.Contains(first.String()+second.String(), "postgres://") {
		t.Error("the log shows the database URL")
	}

	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var exists bool
	if err := db.QueryRowContext(ctx, "SELECT to_regclass('addons') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		t.Error("the addons table does not exist after run")
	}
}

func TestRunUnreachableDatabase(t *testing.T) {
	var out bytes.Buffer
	// Port 1 on loopback: nothing listens, the connection is refused.
	err := run(context.Background(), env(map[string]string{"DATABASE_URL": "postgres://kiln:pw-not-logged@127.0.0.1:1/kiln"}), &out)
	if err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("run = %v, want a database unavailable error", err)
	}
	if strings.Contains(err.Error()+out.String(), "pw-not-logged") {
		t.Error("the password leaked into the error or the log")
	}
}
