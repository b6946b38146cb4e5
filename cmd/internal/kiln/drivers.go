package kiln

import (
	"log/slog"

	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/drivers/account"
	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
	"github.com/kiln-dev/kiln/internal/postgres"
)

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
