package account_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestPanel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, _ := setup(t, "https://kiln.example.com")
	r, name, key := newAccount(t, d, "basic")

	field := func(fields []addon.PanelField, label string) string {
		t.Helper()
		for _, f := range fields {
			if f.Label == label {
				return f.Value
			}
		}
		t.Fatalf("panel has no %q field: %v", label, fields)
		return ""
	}

	before, err := d.Panel(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := field(before, "Account"); got != name {
		t.Errorf("Account = %q, want %q", got, name)
	}
	if got := field(before, "API key last used"); got != "never" {
		t.Errorf("API key last used = %q before any use, want never", got)
	}
	if got := field(before, "Requests per month"); got != "100,000" {
		t.Errorf("Requests per month = %q, want 100,000 (the basic plan)", got)
	}
	if got := field(before, "Requests per second"); got != "10" {
		t.Errorf("Requests per second = %q, want 10", got)
	}
	for _, f := range before {
		if strings.Contains(f.Value, key) {
			t.Fatalf("panel field %q shows the API key", f.Label)
		}
	}

	if _, err := d.Authenticate(ctx, name, key); err != nil {
		t.Fatal(err)
	}
	after, err := d.Panel(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := field(after, "API key last used"); got == "never" || !strings.HasSuffix(got, " UTC") {
		t.Errorf("API key last used = %q after a use, want a UTC time", got)
	}

	if err := d.Destroy(ctx, r); err != nil {
		t.Fatal(err)
	}
	_, err = d.Panel(ctx, r)
	wantCode(t, err, addon.ENOTFOUND)
}
