package addon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Plan is one entry of a driver's plan catalog: what a customer can buy.
// Limits are driver-defined numbers (connections, bytes, requests) that the
// driver enforces; the domain only carries them.
type Plan struct {
	Slug   string           `json:"slug"`
	Name   string           `json:"name"`
	Limits map[string]int64 `json:"limits,omitempty"`
}

// Catalog is the set of plans a driver offers, keyed by slug. Heroku sends
// only the slug, so a slug outside the catalog is refused with 422.
type Catalog map[string]Plan

// Lookup returns the plan for slug or an EINVALID error Heroku can show.
func (c Catalog) Lookup(slug string) (Plan, error) {
	p, ok := c[slug]
	if !ok {
		return Plan{}, Errorf(EINVALID, "Unknown plan %q. Available plans: %s.", Clip(slug, MaxEchoLen), c.slugList())
	}
	return p, nil
}

// Slugs lists the plan slugs in a stable order.
func (c Catalog) Slugs() []string {
	s := make([]string, 0, len(c))
	for k := range c {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

func (c Catalog) slugList() string {
	out := ""
	for i, s := range c.Slugs() {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

// Validate checks the catalog is usable: every entry keyed by its own slug,
// and at least the plans the runtime contract promises.
func (c Catalog) Validate() error {
	for k, p := range c {
		if p.Slug != k {
			return fmt.Errorf("plan %q is listed under %q", p.Slug, k)
		}
		if p.Slug == "" {
			return fmt.Errorf("a plan has no slug")
		}
	}
	for _, need := range []string{"test", "basic"} {
		if _, ok := c[need]; !ok {
			return fmt.Errorf("the catalog has no %q plan (the contract requires test and basic)", need)
		}
	}
	return nil
}

// ParseCatalog reads a plan catalog file, the format every driver ships:
// {"plans": [{"slug", "name", "limits": {...}}]}, in the order plans are
// sold. It is strict, because a misspelt key would otherwise be a silently
// ignored limit: unknown fields, limits the driver does not know (limits
// lists the ones it enforces, each required and above 0), slugs Heroku
// would refuse, duplicate slugs and trailing data are errors. A plan with
// no name is named by its slug.
func ParseCatalog(data []byte, limits ...string) (Catalog, error) {
	return parseCatalog(data, func(p Plan) error { return checkLimits(p, limits) })
}

// ParseShownCatalog is ParseCatalog for a driver that enforces no limit
// itself and only shows them, such as the http driver, whose limits are the
// partner service's business: any names are allowed, each at least 0.
func ParseShownCatalog(data []byte) (Catalog, error) {
	return parseCatalog(data, checkShownLimits)
}

// planSlug is what Heroku allows in a plan slug.
var planSlug = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// parseCatalog is ParseCatalog with check judging each plan's limits.
func parseCatalog(data []byte, check func(Plan) error) (Catalog, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f struct {
		Plans []Plan `json:"plans"`
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
	c := make(Catalog, len(f.Plans))
	for i, p := range f.Plans {
		switch {
		case p.Slug == "":
			return nil, fmt.Errorf("plan #%d has no slug", i+1)
		case !planSlug.MatchString(p.Slug):
			return nil, fmt.Errorf("plan #%d: slug %q is not a Heroku plan slug (lower-case letters, digits and -)", i+1, p.Slug)
		}
		if _, dup := c[p.Slug]; dup {
			return nil, fmt.Errorf("plan %q is listed twice", p.Slug)
		}
		if err := check(p); err != nil {
			return nil, fmt.Errorf("plan %q: %w", p.Slug, err)
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

func checkShownLimits(p Plan) error {
	for k, v := range p.Limits {
		if k == "" || v < 0 {
			return fmt.Errorf("limit %q must be named and at least 0", k)
		}
	}
	return nil
}

func checkLimits(p Plan, known []string) error {
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

// Clone returns a deep copy, so a caller editing the catalog it was given
// cannot change what every other caller sees.
func (c Catalog) Clone() Catalog {
	out := make(Catalog, len(c))
	for k, p := range c {
		p.Limits = maps.Clone(p.Limits)
		out[k] = p
	}
	return out
}
