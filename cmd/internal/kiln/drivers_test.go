package kiln

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/postgres/pgtest"
)

// TestNewDriver: every driver config accepts in RESOURCE_DRIVER is built
// by newDriver under its own name, and any other name is refused with the
// list config gives.
func TestNewDriver(t *testing.T) {
	db, url := pgtest.Store(t)
	ctx := context.Background()
	for _, name := range config.Drivers {
		t.Run(name, func(t *testing.T) {
			c := &config.Config{
				ResourceDriver: name,
				PublicURL:      "http://kiln.test",
				ResourceDBURL:  url,
				HTTPURL:        "http://resources.test",
				HTTPSecret:     "secret",
			}
			d, _, err := newDriver(ctx, c, db, nil)
			if err != nil {
				t.Fatalf("newDriver(%q): %v", name, err)
			}
			if cl, ok := d.(io.Closer); ok {
				t.Cleanup(func() { cl.Close() })
			}
			if d.Name() != name {
				t.Errorf("RESOURCE_DRIVER=%s built driver %q", name, d.Name())
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, _, err := newDriver(ctx, &config.Config{ResourceDriver: "ftp"}, db, nil)
		if err == nil || !strings.Contains(err.Error(), config.DriverChoice()) {
			t.Errorf("newDriver(ftp) = %v, want an error naming %s", err, config.DriverChoice())
		}
	})
}
