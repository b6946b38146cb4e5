package account

import (
	_ "embed"
	"sync"

	"github.com/kiln-dev/kiln/internal/addon"
)

// The limits every plan of this driver states, as keys of addon.Plan.Limits.
// Kiln's API enforces them against an account's usage.
const (
	// LimitRequestsPerMonth is how many API requests an account may make in
	// a calendar month.
	LimitRequestsPerMonth = addon.TenantMonthlyQuota
	// LimitRequestsPerSecond is the sustained request rate an account may
	// use; Kiln's tenant API enforces it (addon.TenantRateLimit).
	LimitRequestsPerSecond = addon.TenantRateLimit
)

// plansJSON is the catalog this driver sells, shipped inside the binary so it
// cannot drift from the code that enforces it.
//
//go:embed plans.json
var plansJSON []byte

// shipped parses plansJSON once. The embedded file is part of the build and
// a test validates it, so a broken one never ships; parsing lazily keeps a
// broken file from stopping processes that use another driver.
var shipped = sync.OnceValues(func() (addon.Catalog, error) { return LoadCatalog("") })

// parseCatalog requires every plan to state the limits the tenant API
// enforces.
func parseCatalog(data []byte) (addon.Catalog, error) {
	return addon.ParseCatalog(data, LimitRequestsPerMonth, LimitRequestsPerSecond)
}
