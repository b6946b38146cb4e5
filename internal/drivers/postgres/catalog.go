package postgres

import (
	_ "embed"
	"fmt"
	"math"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/drivers/catalog"
)

// The limits every plan of this driver must state, as keys of addon.Plan.Limits.
const (
	// LimitConnections is the role's connection limit (ALTER ROLE ... CONNECTION LIMIT).
	LimitConnections = "connection_limit"
	// LimitSizeBytes is the largest database size the plan allows; a plan
	// change to a plan the current size does not fit is refused.
	LimitSizeBytes = "size_limit_bytes"
)

// defaultPlans is the catalog shipped with Kiln, used when no file is given.
//
//go:embed plans.json
var defaultPlans []byte

// LoadCatalog reads and validates a plan catalog file for this driver; an
// empty path means the catalog shipped in the package. It is exported so the
// commands can refuse to start on a broken catalog, with an error naming the
// file and the plan, instead of failing on the first customer's provision.
func LoadCatalog(path string) (addon.Catalog, error) {
	return catalog.Load(path, defaultPlans, parseCatalog)
}

func parseCatalog(data []byte) (addon.Catalog, error) {
	c, err := addon.ParseCatalog(data, LimitConnections, LimitSizeBytes)
	if err != nil {
		return nil, err
	}
	for _, p := range c {
		if _, err := limitsOf(p); err != nil {
			return nil, fmt.Errorf("plan %q: %w", p.Slug, err)
		}
	}
	return c, nil
}

// limits are a plan's limits as this driver uses them.
type limits struct {
	Connections int64 `json:"connection_limit"`
	SizeBytes   int64 `json:"size_limit_bytes"`
}

// usableLimits is limitsOf for a plan an add-on is on or moves to: the
// catalog was checked at start, so a plan without usable limits is Kiln's
// fault (EINTERNAL), not the customer's.
func usableLimits(p addon.Plan) (limits, error) {
	l, err := limitsOf(p)
	if err != nil {
		return l, addon.Wrap(addon.EINTERNAL, err, "Plan %s has no usable limits.", p.Slug)
	}
	return l, nil
}

func limitsOf(p addon.Plan) (limits, error) {
	l := limits{Connections: p.Limits[LimitConnections], SizeBytes: p.Limits[LimitSizeBytes]}
	switch {
	case l.Connections <= 0:
		return l, fmt.Errorf("limits.%s must be a number above 0", LimitConnections)
	case l.Connections > math.MaxInt32:
		return l, fmt.Errorf("limits.%s is larger than Postgres allows (%d)", LimitConnections, math.MaxInt32)
	case l.SizeBytes <= 0:
		return l, fmt.Errorf("limits.%s must be a number above 0", LimitSizeBytes)
	}
	return l, nil
}
