package account

import (
	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/drivers/catalog"
	"gorm.io/gorm"
)

// LoadCatalog reads and validates a plan catalog file for this driver
// (RESOURCE_PLANS_FILE; an empty path means the shipped plans.json): every
// plan must state requests_per_month and requests_per_second, because the
// tenant API enforces them. It is exported so the commands refuse to start
// on a broken file.
func LoadCatalog(path string) (addon.Catalog, error) {
	return catalog.Load(path, plansJSON, parseCatalog)
}

// NewWithCatalog is New selling the plans of c (LoadCatalog) instead of
// the embedded plans.json.
func NewWithCatalog(db *gorm.DB, publicURL string, c addon.Catalog) *Driver {
	d := New(db, publicURL)
	d.plans = c.Clone()
	return d
}
