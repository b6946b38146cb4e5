package addon_test

import (
	"context"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
)

// ableDriver is a driver whose abilities a test sets; only the calls the
// tests below can reach are implemented, and they are counted.
type ableDriver struct {
	addon.Driver
	can    addon.Abilities
	panels int
}

func (d *ableDriver) Name() string               { return "able" }
func (d *ableDriver) Abilities() addon.Abilities { return d.can }
func (d *ableDriver) Catalog() addon.Catalog     { return addon.Catalog{"test": {Slug: "test"}} }
func (d *ableDriver) Panel(context.Context, addon.Resource) ([]addon.PanelField, error) {
	d.panels++
	return []addon.PanelField{{Label: "Size", Value: "1 MB"}}, nil
}

// TestAbilities: what a driver says it cannot do is refused as
// EUNSUPPORTED (or, for the panel, left out) before the driver or the
// store is asked.
func TestAbilities(t *testing.T) {
	ctx := context.Background()
	const id = "01234567-89ab-cdef-0123-456789abcdef"
	provisioned := &addon.Addon{ID: id, Plan: "test", State: addon.StateProvisioned}
	tests := []struct {
		name       string
		can        addon.Abilities
		wantRotate string // the code of RotateCredentials' and Rotate's error
		wantPanel  int    // panel lines
	}{
		{"nothing", addon.Abilities{}, addon.EUNSUPPORTED, 0},
		{"panel only", addon.Abilities{Panel: true}, addon.EUNSUPPORTED, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &ableDriver{can: tt.can}
			svc := addon.NewService(addon.Deps{Driver: d}, addon.Options{})
			if svc.Abilities() != tt.can {
				t.Errorf("Abilities = %+v, want %+v", svc.Abilities(), tt.can)
			}
			if _, err := svc.RotateCredentials(ctx, id); addon.ErrorCode(err) != tt.wantRotate {
				t.Errorf("RotateCredentials = %v, want %s", err, tt.wantRotate)
			}
			k := &addon.Keeper{Service: svc}
			if _, err := k.Rotate(ctx, id); addon.ErrorCode(err) != tt.wantRotate {
				t.Errorf("Rotate = %v, want %s", err, tt.wantRotate)
			}
			fields, err := svc.Panel(ctx, provisioned)
			if err != nil || len(fields) != tt.wantPanel || d.panels != tt.wantPanel {
				t.Errorf("Panel = %v, %v (driver asked %d times), want %d lines", fields, err, d.panels, tt.wantPanel)
			}
			if fields, _ := svc.Panel(ctx, &addon.Addon{ID: id, Plan: "test", State: addon.StateProvisioning}); fields != nil {
				t.Errorf("Panel of an add-on still provisioning = %v, want none", fields)
			}
		})
	}
}

// TestCanRotate: the dashboard offers a rotation only when the driver can
// rotate and the new credentials could reach the app.
func TestCanRotate(t *testing.T) {
	tokens := &addon.Tokens{Access: "a"}
	tests := []struct {
		name  string
		can   addon.Abilities
		state addon.State
		tok   *addon.Tokens
		want  bool
	}{
		{"rotates", addon.Abilities{Rotate: true}, addon.StateProvisioned, tokens, true},
		{"rolls", addon.Abilities{Roll: true}, addon.StateProvisioned, tokens, true},
		{"driver cannot", addon.Abilities{Panel: true}, addon.StateProvisioned, tokens, false},
		{"no tokens", addon.Abilities{Rotate: true}, addon.StateProvisioned, nil, false},
		{"not provisioned", addon.Abilities{Rotate: true}, addon.StateProvisioning, tokens, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := addon.NewService(addon.Deps{Driver: &ableDriver{can: tt.can}}, addon.Options{})
			if got := svc.CanRotate(&addon.Addon{State: tt.state, Tokens: tt.tok}); got != tt.want {
				t.Errorf("CanRotate = %v, want %v", got, tt.want)
			}
		})
	}
}
