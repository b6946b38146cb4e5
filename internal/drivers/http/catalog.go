package http

import (
	_ "embed"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/drivers/catalog"
)

// defaultPlans is the catalog used when RESOURCE_PLANS_FILE is not set: the
// two plans the runtime contract requires. A partner sells its own plans
// by listing them in a file; Kiln passes the slug to the service.
//
//go:embed plans.json
var defaultPlans []byte

// LoadCatalog reads and validates the plan catalog (RESOURCE_PLANS_FILE; an
// empty path means the built-in test and basic plans), so a broken file
// stops Kiln at start with the file and the plan named, not at a
// customer's provision. The format is every driver's ({"plans": [{"slug",
// "name", "limits"}]}); the limits are the partner's service's business, so
// any names are allowed, each a number of at least 0, and Kiln only shows
// them.
func LoadCatalog(path string) (addon.Catalog, error) {
	return catalog.Load(path, defaultPlans, addon.ParseShownCatalog)
}
