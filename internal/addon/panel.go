package addon

import "context"

// PanelField is one line of the resource panel on the customer's dashboard:
// a label and a value the driver formatted for people ("12.3 MB of 1 GB").
type PanelField struct {
	Label string
	Value string
}

// Paneler is implemented by drivers that can tell the customer about their
// resource (usage, limits, last use). It is optional: the dashboard shows
// the add-on without a panel for drivers that do not implement it.
type Paneler interface {
	// Panel describes the resource. It must be cheap (the dashboard calls
	// it on every page view) and reveal no credentials.
	Panel(ctx context.Context, r Resource) ([]PanelField, error)
}

// Panel returns the driver's panel for a provisioned add-on, and nothing
// (no error) for an add-on whose resource does not exist yet or any more, or
// whose driver has no panel.
func (s *Service) Panel(ctx context.Context, a *Addon) ([]PanelField, error) {
	p, ok := s.Driver.(Paneler)
	if !ok || a.State != StateProvisioned {
		return nil, nil
	}
	plan, err := s.Driver.Catalog().Lookup(a.Plan)
	if err != nil {
		return nil, err
	}
	return p.Panel(ctx, resourceOf(a, plan))
}
