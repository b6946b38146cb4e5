package mock

import (
	"context"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.Driver = (*Driver)(nil)

// Driver is an addon.Driver whose methods call its function fields, so a
// test decides what the resource does (succeeds, refuses, is slow, is
// deprovisioned midway) at each call.
type Driver struct {
	NameFn              func() string
	CatalogFn           func() addon.Catalog
	AbilitiesFn         func() addon.Abilities
	CreateFn            func(ctx context.Context, r addon.Resource) (addon.Vars, error)
	ChangePlanFn        func(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error)
	DestroyFn           func(ctx context.Context, r addon.Resource) error
	RotateCredentialsFn func(ctx context.Context, r addon.Resource) (addon.Vars, error)
	RollFn              func(ctx context.Context, r addon.Resource) (addon.Vars, error)
	RevokeFn            func(ctx context.Context, r addon.Resource, old addon.Vars) error
	PanelFn             func(ctx context.Context, r addon.Resource) ([]addon.PanelField, error)
}

// Name calls NameFn.
func (d *Driver) Name() string {
	if d.NameFn == nil {
		panic(unset("Name"))
	}
	return d.NameFn()
}

// Catalog calls CatalogFn.
func (d *Driver) Catalog() addon.Catalog {
	if d.CatalogFn == nil {
		panic(unset("Catalog"))
	}
	return d.CatalogFn()
}

// Abilities calls AbilitiesFn.
func (d *Driver) Abilities() addon.Abilities {
	if d.AbilitiesFn == nil {
		panic(unset("Abilities"))
	}
	return d.AbilitiesFn()
}

// Create calls CreateFn.
func (d *Driver) Create(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	if d.CreateFn == nil {
		panic(unset("Create"))
	}
	return d.CreateFn(ctx, r)
}

// ChangePlan calls ChangePlanFn.
func (d *Driver) ChangePlan(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
	if d.ChangePlanFn == nil {
		panic(unset("ChangePlan"))
	}
	return d.ChangePlanFn(ctx, r, to)
}

// Destroy calls DestroyFn.
func (d *Driver) Destroy(ctx context.Context, r addon.Resource) error {
	if d.DestroyFn == nil {
		panic(unset("Destroy"))
	}
	return d.DestroyFn(ctx, r)
}

// RotateCredentials calls RotateCredentialsFn.
func (d *Driver) RotateCredentials(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	if d.RotateCredentialsFn == nil {
		panic(unset("RotateCredentials"))
	}
	return d.RotateCredentialsFn(ctx, r)
}

// Roll calls RollFn.
func (d *Driver) Roll(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	if d.RollFn == nil {
		panic(unset("Roll"))
	}
	return d.RollFn(ctx, r)
}

// Revoke calls RevokeFn.
func (d *Driver) Revoke(ctx context.Context, r addon.Resource, old addon.Vars) error {
	if d.RevokeFn == nil {
		panic(unset("Revoke"))
	}
	return d.RevokeFn(ctx, r, old)
}

// Panel calls PanelFn.
func (d *Driver) Panel(ctx context.Context, r addon.Resource) ([]addon.PanelField, error) {
	if d.PanelFn == nil {
		panic(unset("Panel"))
	}
	return d.PanelFn(ctx, r)
}
