package account

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/kiln-dev/kiln/internal/addon"
)

// The limits every plan of this driver states, as keys of addon.Plan.Limits.
// Kiln's API enforces them against an account's usage.
const (
	// LimitRequestsPerMonth is how many API requests an account may make in
	// a calendar month.
	LimitRequestsPerMonth = "requests_per_month"
	// LimitRequestsPerSecond is the sustained request rate an account may use.
	LimitRequestsPerSecond = "requests_per_second"
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

// catalogFile is the file's shape: a list, in the order the plans are sold.
type catalogFile struct {
	Plans []addon.Plan `json:"plans"`
}

func parseCatalog(data []byte) (addon.Catalog, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields() // a misspelt key is an error, not a silently ignored limit
	var f catalogFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("account plans.json: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("account plans.json: data after the JSON object")
	}
	c := make(addon.Catalog, len(f.Plans))
	for i, p := range f.Plans {
		if p.Slug == "" {
			return nil, fmt.Errorf("account plans.json: plan #%d has no slug", i+1)
		}
		if _, dup := c[p.Slug]; dup {
			return nil, fmt.Errorf("account plans.json: plan %q is listed twice", p.Slug)
		}
		if err := checkLimits(p); err != nil {
			return nil, fmt.Errorf("account plans.json: plan %q: %w", p.Slug, err)
		}
		c[p.Slug] = p
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("account plans.json: %w", err)
	}
	return c, nil
}

// checkLimits refuses a plan whose limits this driver could not enforce.
func checkLimits(p addon.Plan) error {
	known := []string{LimitRequestsPerMonth, LimitRequestsPerSecond}
	var unknown []string
	for k := range p.Limits {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown limit %s (this driver knows %s)", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	for _, k := range known {
		if p.Limits[k] <= 0 {
			return fmt.Errorf("limits.%s must be a number above 0", k)
		}
	}
	return nil
}

// copyCatalog returns a deep copy, so a caller editing the catalog it was
// given cannot change what every other caller sees.
func copyCatalog(c addon.Catalog) addon.Catalog {
	out := make(addon.Catalog, len(c))
	for k, p := range c {
		p.Limits = maps.Clone(p.Limits)
		out[k] = p
	}
	return out
}
