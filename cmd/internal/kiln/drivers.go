package kiln

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/drivers/account"
	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
	pgdriver "github.com/kiln-dev/kiln/internal/drivers/postgres"
	"github.com/kiln-dev/kiln/internal/postgres"
)

// Driver builds the resource driver RESOURCE_DRIVER names, slowed down by
// RESOURCE_DRIVER_DELAY when that is set (benchmarks and failure drills; see
// Delay), and the Tenants of a driver whose resources are accounts Kiln
// serves itself (the account driver; nil for the others).
func Driver(ctx context.Context, c *config.Config, db *postgres.DB, log *slog.Logger) (addon.Driver, addon.Tenants, error) {
	d, tenants, err := newDriver(ctx, c, db, log)
	if err != nil {
		return nil, nil, err
	}
	return Delay(d, c.ResourceDriverDelay), tenants, nil
}

// newDriver builds the driver config.Drivers names in RESOURCE_DRIVER; a
// name config accepts but no case here builds is a wiring bug, caught by
// this package's tests.
func newDriver(ctx context.Context, c *config.Config, db *postgres.DB, log *slog.Logger) (addon.Driver, addon.Tenants, error) {
	switch c.ResourceDriver {
	case account.Name:
		d, err := newAccountDriver(c, db)
		if err != nil {
			return nil, nil, err
		}
		return d, d, nil
	case pgdriver.Name:
		d, err := pgdriver.New(ctx, pgdriver.Options{
			AdminURL:    c.ResourceDBURL,
			PublicHost:  c.ResourcePublic,
			CatalogFile: c.PlansFile,
			Log:         log,
		})
		if err != nil {
			return nil, nil, err
		}
		return d, nil, nil
	case httpdriver.Name:
		d, err := newHTTPDriver(c, log)
		if err != nil {
			return nil, nil, err
		}
		return d, nil, nil
	default:
		return nil, nil, fmt.Errorf("RESOURCE_DRIVER is malformed: unknown driver %q (want %s)", c.ResourceDriver, config.DriverChoice())
	}
}

// newAccountDriver builds the account driver, selling RESOURCE_PLANS_FILE's
// plans when it is set (validated here, so a broken file stops the process).
func newAccountDriver(c *config.Config, db *postgres.DB) (*account.Driver, error) {
	if c.PlansFile == "" {
		return account.New(db.Gorm(), c.PublicURL), nil
	}
	cat, err := account.LoadCatalog(c.PlansFile)
	if err != nil {
		return nil, err
	}
	return account.NewWithCatalog(db.Gorm(), c.PublicURL, cat), nil
}

// newHTTPDriver builds the http driver from RESOURCE_HTTP_* and
// RESOURCE_PLANS_FILE; a broken catalog stops the process at start.
func newHTTPDriver(c *config.Config, log *slog.Logger) (*httpdriver.Driver, error) {
	cat, err := httpdriver.LoadCatalog(c.PlansFile)
	if err != nil {
		return nil, err
	}
	return httpdriver.New(httpdriver.Options{
		URL:     c.HTTPURL,
		Secret:  c.HTTPSecret,
		Timeout: c.HTTPTimeout,
		Catalog: cat,
		Log:     log,
	})
}
