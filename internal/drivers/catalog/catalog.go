// Package catalog loads the plan catalog a resource driver sells:
// RESOURCE_PLANS_FILE when it is set, else the plans.json the driver ships
// inside its binary. Every driver reads the file the same way and names it
// the same way in errors, so that code lives here once; what a plan's
// limits must be stays with each driver (the parse function it passes).
package catalog

import (
	"fmt"
	"os"

	"github.com/kiln-dev/kiln/internal/addon"
)

// builtInName names a driver's embedded plans.json in error messages.
const builtInName = "plans.json (built in)"

// Load reads the catalog at path, or the driver's builtIn one when path is
// empty, and parses it with parse (addon.ParseCatalog with the driver's
// limits, or stricter). Every error names the file, so a broken catalog
// stops Kiln at start with the file and the plan named, not at a
// customer's provision.
func Load(path string, builtIn []byte, parse func([]byte) (addon.Catalog, error)) (addon.Catalog, error) {
	name, data := builtInName, builtIn
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("plan catalog %s: %w", path, err)
		}
		name, data = path, b
	}
	c, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("plan catalog %s: %w", name, err)
	}
	return c, nil
}
