package addon

import (
	"fmt"
	"sort"
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
		return Plan{}, Errorf(EINVALID, "Unknown plan %q. Available plans: %s.", slug, c.slugList())
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
