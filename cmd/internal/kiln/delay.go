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
// driver unchanged. The wrapper keeps the driver's optional abilities
// (addon.Rotator, addon.Paneler, io.Closer), answering as the service would
// for a driver without them, and Unwrap gives the driver itself back.
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

// Unwrap returns the driver behind the delay, for code that needs the
// concrete driver (the account driver's Authenticate, say).
func (d delayed) Unwrap() addon.Driver { return d.Driver }

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

// RotateCredentials waits, then rotates when the driver can.
func (d delayed) RotateCredentials(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	rot, ok := d.Driver.(addon.Rotator)
	if !ok {
		return nil, addon.Errorf(addon.EINVALID, "The %s driver has no credentials to rotate.", d.Name())
	}
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return rot.RotateCredentials(ctx, r)
}

// Panel is the driver's dashboard panel, undelayed: the dashboard calls it on
// every page view, and the drill is about resource calls.
func (d delayed) Panel(ctx context.Context, r addon.Resource) ([]addon.PanelField, error) {
	if p, ok := d.Driver.(addon.Paneler); ok {
		return p.Panel(ctx, r)
	}
	return nil, nil
}
