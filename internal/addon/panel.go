package addon

import "context"

// PanelField is one line of the resource panel on the customer's dashboard:
// a label and a value the driver formatted for people ("12.3 MB of 1 GB").
type PanelField struct {
	Label string
	Value string
}

// Panel returns the driver's panel for a provisioned add-on, and nothing
// (no error) for an add-on whose resource does not exist yet or any more, or
// whose driver has no panel (Abilities.Panel).
func (s *Service) Panel(ctx context.Context, a *Addon) ([]PanelField, error) {
	if !s.driver.Abilities().Panel || a.State != StateProvisioned {
		return nil, nil
	}
	plan, err := s.driver.Catalog().Lookup(a.Plan)
	if err != nil {
		return nil, err
	}
	return s.driver.Panel(ctx, resourceOf(a, plan))
}
