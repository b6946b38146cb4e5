package kiln

import (
	"context"
	"io"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Delay wraps a driver so that every call that makes, changes or destroys a
// resource first waits d (or until its context ends). It exists for
// benchmarks and failure drills (RESOURCE_DRIVER_DELAY): real drivers can be
// slow — creating a database takes a while — and the built-in account driver
// is not, so this is how a test rig builds a resource backlog and checks that
// OAuth grants still get exchanged in time. A zero or negative d returns the
// driver unchanged. Every other method (Abilities, Panel) passes straight
// through, and Close reaches the driver's when it has one.
func Delay(d addon.Driver, by time.Duration) addon.Driver {
	if by <= 0 || d == nil {
		return d
	}
	return delayed{Driver: d, by: by}
}

// delayed is a driver slowed down by a fixed wait before each resource call.
type delayed struct {
	addon.Driver
	by time.Duration
}

func (d delayed) wait(ctx context.Context) error {
	t := time.NewTimer(d.by)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return addon.Wrap(addon.EUNAVAILABLE, ctx.Err(), "The resource driver did not answer in time.")
	}
}

func (d delayed) Create(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return d.Driver.Create(ctx, r)
}

func (d delayed) ChangePlan(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return d.Driver.ChangePlan(ctx, r, to)
}

func (d delayed) Destroy(ctx context.Context, r addon.Resource) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	return d.Driver.Destroy(ctx, r)
}

// Close closes the wrapped driver when it holds connections of its own, so
// the process's shutdown (which looks for io.Closer) still releases them.
func (d delayed) Close() error {
	if c, ok := d.Driver.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// RotateCredentials waits, then rotates (a driver that cannot answers so).
func (d delayed) RotateCredentials(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return d.Driver.RotateCredentials(ctx, r)
}

// Roll waits, then makes new credentials beside the current ones.
func (d delayed) Roll(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return d.Driver.Roll(ctx, r)
}

// Revoke waits, then ends rotated-out credentials.
func (d delayed) Revoke(ctx context.Context, r addon.Resource, old addon.Vars) error {
	if err := d.wait(ctx); err != nil {
		return err
	}
	return d.Driver.Revoke(ctx, r, old)
}
