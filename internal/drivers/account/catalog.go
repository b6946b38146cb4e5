package account

import (
	_ "embed"
	"fmt"
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

// catalog parses plansJSON once. The embedded file is part of the build and
// a test validates it, so a broken one never ships; parsing lazily keeps a
// broken file from stopping processes that use another driver.
var catalog = sync.OnceValues(func() (addon.Catalog, error) { return parseCatalog(plansJSON) })

func parseCatalog(data []byte) (addon.Catalog, error) {
	c, err := addon.ParseCatalog(data, LimitRequestsPerMonth, LimitRequestsPerSecond)
	if err != nil {
		return nil, fmt.Errorf("account plans.json: %w", err)
	}
	return c, nil
}

// copyCatalog returns a deep copy, so a caller editing the catalog it was
// given cannot change what every other caller sees.
func copyCatalog(c addon.Catalog) addon.Catalog { return c.Clone() }
