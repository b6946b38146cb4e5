package kiln

import (
	"log/slog"

	"github.com/kiln-dev/kiln/internal/config"
	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
)

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
