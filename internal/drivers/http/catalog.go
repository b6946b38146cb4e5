package http

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/kiln-dev/kiln/internal/addon"
)

// defaultPlans is the catalog used when RESOURCE_PLANS_FILE is not set: the
// two plans the runtime contract requires. A partner sells its own plans
// by listing them in a file; Kiln passes the slug to the service.
//
//go:embed plans.json
var defaultPlans []byte

// slugPattern is what Heroku allows in a plan slug.
var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// LoadCatalog reads and validates the plan catalog (RESOURCE_PLANS_FILE; an
// empty path means the built-in test and basic plans), so a broken file
// stops Kiln at start with the file and the plan named, not at a
// customer's provision. The format is every driver's ({"plans": [{"slug",
// "name", "limits"}]}); the limits are the partner's service's business, so
// any names are allowed, each a number of at least 0, and Kiln only shows
// them.
func LoadCatalog(path string) (addon.Catalog, error) {
	name, data := "plans.json (built in)", defaultPlans
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("plan catalog %s: %w", path, err)
		}
		name, data = path, b
	}
	c, err := parseCatalog(data)
	if err != nil {
		return nil, fmt.Errorf("plan catalog %s: %w", name, err)
	}
	return c, nil
}

func parseCatalog(data []byte) (addon.Catalog, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f struct {
		Plans []addon.Plan `json:"plans"`
	}
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a valid catalog (want JSON {\"plans\": [{\"slug\", \"name\", \"limits\": {...}}]}): %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not a valid catalog: data after the JSON object")
	}
	if len(f.Plans) == 0 {
		return nil, errors.New("no plans")
	}
	c := make(addon.Catalog, len(f.Plans))
	for i, p := range f.Plans {
		if !slugPattern.MatchString(p.Slug) {
			return nil, fmt.Errorf("plan #%d: slug %q is not a Heroku plan slug (lower-case letters, digits and -)", i+1, p.Slug)
		}
		if _, dup := c[p.Slug]; dup {
			return nil, fmt.Errorf("plan %q is listed twice", p.Slug)
		}
		for k, v := range p.Limits {
			if k == "" || v < 0 {
				return nil, fmt.Errorf("plan %q: limit %q must be named and at least 0", p.Slug, k)
			}
		}
		if p.Name == "" {
			p.Name = p.Slug
		}
		c[p.Slug] = p
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
