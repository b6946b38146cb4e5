package postgres

import (
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestPanel(t *testing.T) {
	t.Parallel()
	d := newDriver(t, Options{})
	r := resource(t, d, "basic")
	vars := create(t, d, r)
	ctx := ctxFor(t)
	c := mustDial(t, vars["URL"])
	defer c.Close(ctx)

	fields, err := d.Panel(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range fields {
		got[f.Label] = f.Value
	}
	n, _ := namesFor(r.ID)
	if got["Database"] != n.db {
		t.Errorf("Database = %q, want %q", got["Database"], n.db)
	}
	if got["Connections"] != "1 of 3" {
		t.Errorf("Connections = %q, want \"1 of 3\" (one open session, the basic test plan's limit)", got["Connections"])
	}
	if !strings.HasSuffix(got["Size"], " of 1.0 GB (0%)") {
		t.Errorf("Size = %q, want \"… of 1.0 GB (0%%)\"", got["Size"])
	}
	if got["Limits set for plan"] != "basic" {
		t.Errorf("Limits set for plan = %q, want basic", got["Limits set for plan"])
	}
	_, password := userOf(t, vars["URL"])
	for _, f := range fields {
		if strings.Contains(f.Value, password) {
			t.Fatalf("panel field %q shows the password", f.Label)
		}
	}

	_, err = d.Panel(ctx, addon.Resource{ID: "00000000-0000-4000-8000-000000000000"})
	if addon.ErrorCode(err) != addon.ENOTFOUND {
		t.Errorf("Panel of a missing database: %v; want ENOTFOUND", err)
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KB"},
		{12_900_000, "12.3 MB"},
		{1 << 30, "1.0 GB"},
		{64 << 30, "64.0 GB"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := humanBytes(tt.in); got != tt.want {
				t.Errorf("humanBytes(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
