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
func (d *countingDriver) Abilities() addon.Abilities {
	return addon.Abilities{Rotate: true, Roll: true, Panel: true}
}
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
func (d *countingDriver) RotateCredentials(context.Context, addon.Resource) (addon.Vars, error) {
	d.calls["rotate"]++
	return nil, nil
}
func (d *countingDriver) Roll(context.Context, addon.Resource) (addon.Vars, error) {
	d.calls["roll"]++
	return nil, nil
}
func (d *countingDriver) Revoke(context.Context, addon.Resource, addon.Vars) error {
	d.calls["revoke"]++
	return nil
}
func (d *countingDriver) Panel(context.Context, addon.Resource) ([]addon.PanelField, error) {
	d.calls["panel"]++
	return []addon.PanelField{{Label: "calls", Value: "counted"}}, nil
}
func (d *countingDriver) Close() error { d.closed = true; return nil }

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
		if _, err := w.RotateCredentials(ctx, addon.Resource{}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Roll(ctx, addon.Resource{}); err != nil {
			t.Fatal(err)
		}
		if err := w.Revoke(ctx, addon.Resource{}, nil); err != nil {
			t.Fatal(err)
		}
		for _, call := range []string{"create", "plan", "destroy", "rotate", "roll", "revoke"} {
			if d.calls[call] != 1 {
				t.Errorf("calls = %v, want one %s", d.calls, call)
			}
		}
		if w.Name() != "counting" || w.Abilities() != d.Abilities() {
			t.Errorf("Name, Abilities = %q, %+v; want the driver's", w.Name(), w.Abilities())
		}
		if err := w.(io.Closer).Close(); err != nil || !d.closed {
			t.Errorf("Close = %v, closed = %v; want the driver closed", err, d.closed)
		}
	})
	t.Run("the panel is not delayed", func(t *testing.T) {
		d := &countingDriver{calls: map[string]int{}}
		w := Delay(d, time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if f, err := w.Panel(ctx, addon.Resource{}); err != nil || len(f) != 1 {
			t.Errorf("Panel = %v, %v; want the driver's at once", f, err)
		}
	})
	t.Run("a cancelled call never reaches the driver", func(t *testing.T) {
		d := &countingDriver{calls: map[string]int{}}
		w := Delay(d, time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		calls := map[string]func() error{
			"create": func() error { _, err := w.Create(ctx, addon.Resource{}); return err },
			"plan":   func() error { _, err := w.ChangePlan(ctx, addon.Resource{}, addon.Plan{}); return err },
			"delete": func() error { return w.Destroy(ctx, addon.Resource{}) },
			"rotate": func() error { _, err := w.RotateCredentials(ctx, addon.Resource{}); return err },
			"roll":   func() error { _, err := w.Roll(ctx, addon.Resource{}); return err },
			"revoke": func() error { return w.Revoke(ctx, addon.Resource{}, nil) },
		}
		for name, call := range calls {
			if err := call(); addon.ErrorCode(err) != addon.EUNAVAILABLE {
				t.Errorf("%s = %v, want EUNAVAILABLE", name, err)
			}
		}
		if len(d.calls) != 0 {
			t.Errorf("driver called: %v", d.calls)
		}
	})
}
