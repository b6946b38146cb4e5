package addon

import (
	"context"
	"strings"
)

// ForcedPrefix starts the audit-trail reason of a deprovision an operator
// forced, so it can be told apart from one Heroku asked for.
const ForcedPrefix = "forced by an operator"

// ForceDeprovision starts deprovisioning an add-on Heroku did not ask to
// remove (abuse, a customer's request through support, a DELETE that never
// arrived): the add-on moves to deprovisioning with the operator's reason in
// the audit trail, and the usual job destroys the resource.
//
// Heroku is not told. Its Platform API action that marks an add-on
// deprovisioned is documented only to finish a deprovision Heroku started
// (asynchronous deprovisioning, a beta that needs Heroku's approval); what
// it does to an add-on Heroku still bills is not public. So the add-on stays
// attached (and billed) on Heroku until it is removed there; Heroku's DELETE
// then gets 410, which Heroku accepts as done.
//
// A deprovisioned add-on is EGONE; one already deprovisioning is returned
// unchanged.
func (s *Service) ForceDeprovision(ctx context.Context, id ID, reason string) (*Addon, error) {
	msg := ForcedPrefix
	if r := strings.TrimSpace(reason); r != "" {
		msg += ": " + r
	}
	a, err := s.store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		switch a.State {
		case StateDeprovisioned:
			return Errorf(EGONE, "Add-on %s was already deprovisioned.", id)
		case StateDeprovisioning:
			return nil
		}
		return a.Transition(s.now(), StateDeprovisioning, msg)
	})
	if err != nil {
		return nil, err
	}
	s.handOn(ctx, a) // to the deprovision job
	s.log().WarnContext(ctx, "deprovision forced by an operator", "addon", id)
	return a, nil
}
