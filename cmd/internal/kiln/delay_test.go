package kiln

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// countingDriver is a resource driver that only counts its calls.
type countingDriver struct {
	calls  map[string]int
	closed bool
}

func (d *countingDriver) Name() string           { return "counting" }
func (d *countingDriver) Catalog() addon.Catalog { return addon.Catalog{} }
func (d *countingDriver) Create(context.Context, addon.Resource) (addon.Vars, error) {
	d.calls["create"]++
	return addon.Vars{"URL": "x://y"}, nil
}
func (d *countingDriver) ChangePlan(context.Context, addon.Resource, addon.Plan) (addon.Vars, error) {
	d.calls["plan"]++
	return nil, nil
}
func (d *countingDriver) Destroy(context.Context, addon.Resource) error {
	d.calls["destroy"]++
	return nil
}
func (d *countingDriver) Close() error { d.closed = true; return nil }

// rotatingDriver can also rotate credentials.
type rotatingDriver struct{ countingDriver }

func (d *rotatingDriver) RotateCredentials(context.Context, addon.Resource) (addon.Vars, error) {
	d.calls["rotate"]++
	return nil, nil
}

func TestDelay(t *testing.T) {
	t.Run("no delay keeps the driver", func(t *testing.T) {
		d := &countingDriver{calls: map[string]int{}}
		if got := Delay(d, 0); got != addon.Driver(d) {
			t.Errorf("Delay(d, 0) = %T, want the driver itself", got)
		}
	})
	t.Run("calls pass through after the wait", func(t *testing.T) {
		d := &countingDriver{calls: map[string]int{}}
		w := Delay(d, time.Millisecond)
		ctx := context.Background()
		if _, err := w.Create(ctx, addon.Resource{}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.ChangePlan(ctx, addon.Resource{}, addon.Plan{}); err != nil {
			t.Fatal(err)
		}
		if err := w.Destroy(ctx, addon.Resource{}); err != nil {
			t.Fatal(err)
		}
		if d.calls["create"] != 1 || d.calls["plan"] != 1 || d.calls["destroy"] != 1 {
			t.Errorf("calls = %v, want one of each", d.calls)
		}
		if w.Name() != "counting" {
			t.Errorf("Name = %q", w.Name())
		}
		// A driver without credentials: the wrapper refuses as the service
		// would, without waiting, and has no panel to show.
		if _, err := w.(addon.Rotator).RotateCredentials(ctx, addon.Resource{}); addon.ErrorCode(err) != addon.EINVALID {
			t.Errorf("RotateCredentials of a driver that cannot = %v, want EINVALID", err)
		}
		if f, err := w.(addon.Paneler).Panel(ctx, addon.Resource{}); f != nil || err != nil {
			t.Errorf("Panel of a driver without one = %v, %v", f, err)
		}
		if u, ok := w.(interface{ Unwrap() addon.Driver }); !ok || u.Unwrap() != addon.Driver(d) {
			t.Error("Unwrap does not give the driver back")
		}
		if err := w.(io.Closer).Close(); err != nil || !d.closed {
			t.Errorf("Close = %v, closed = %v; want the driver closed", err, d.closed)
		}
	})
	t.Run("a cancelled call never reaches the driver", func(t *testing.T) {
		d := &rotatingDriver{countingDriver{calls: map[string]int{}}}
		w := Delay(d, time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := w.Create(ctx, addon.Resource{})
		if addon.ErrorCode(err) != addon.EUNAVAILABLE {
			t.Errorf("Create = %v, want EUNAVAILABLE", err)
		}
		r, ok := w.(addon.Rotator)
		if !ok {
			t.Fatal("the wrapper lost the driver's Rotator")
		}
		if _, err := r.RotateCredentials(ctx, addon.Resource{}); addon.ErrorCode(err) != addon.EUNAVAILABLE {
			t.Errorf("RotateCredentials = %v, want EUNAVAILABLE", err)
		}
		if len(d.calls) != 0 {
			t.Errorf("driver called: %v", d.calls)
		}
	})
}
