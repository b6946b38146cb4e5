package postgres

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/kiln-dev/kiln/internal/addon"
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

// defaultPlansName names the embedded catalog in error messages.
const defaultPlansName = "plans.json (built in)"

// catalogFile is the on-disk shape of a plan catalog: a list, so the file
// reads in the order an operator wrote it, with the slug inside each entry.
type catalogFile struct {
	Plans []addon.Plan `json:"plans"`
}

// LoadCatalog reads and validates a plan catalog file for this driver; an
// empty path means the catalog shipped in the package. It is exported so the
// commands can refuse to start on a broken catalog, with an error naming the
// file and the plan, instead of failing on the first customer's provision.
func LoadCatalog(path string) (addon.Catalog, error) {
	name, data := defaultPlansName, defaultPlans
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
	dec.DisallowUnknownFields() // a misspelt key is an error, not a silently ignored limit
	var f catalogFile
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
		if p.Slug == "" {
			return nil, fmt.Errorf("plan #%d has no slug", i+1)
		}
		if _, dup := c[p.Slug]; dup {
			return nil, fmt.Errorf("plan %q is listed twice", p.Slug)
		}
		if err := checkLimits(p); err != nil {
			return nil, fmt.Errorf("plan %q: %w", p.Slug, err)
		}
		c[p.Slug] = p
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkLimits refuses a plan this driver could not enforce.
func checkLimits(p addon.Plan) error {
	known := map[string]bool{LimitConnections: true, LimitSizeBytes: true}
	var unknown []string
	for k := range p.Limits {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown limit %s (this driver knows %s and %s)", strings.Join(unknown, ", "), LimitConnections, LimitSizeBytes)
	}
	_, err := limitsOf(p)
	return err
}

// limits are a plan's limits as this driver uses them.
type limits struct {
	Connections int64 `json:"connection_limit"`
	SizeBytes   int64 `json:"size_limit_bytes"`
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
