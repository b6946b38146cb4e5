package addon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"
)

// PlanChange is the outcome of Heroku's plan change call. Async means the
// change continues in a job (Heroku gets 202); Config, when not nil, holds the
// new config vars Heroku should set (they changed with the plan).
type PlanChange struct {
	Addon   *Addon
	Async   bool
	Config  map[string]string
	Message string
}

// ChangePlan applies Heroku's plan change call. The same plan is a no-op. On
// a provisioned add-on the driver applies the change inside the request when
// it can (its refusal becomes a 422 Heroku shows); when it is slow the change
// continues in a job that pushes the new config. On an add-on still
// provisioning the change is recorded and applied once provisioning
// finishes, so it is not lost.
func (s *Service) ChangePlan(ctx context.Context, id, slug string) (*PlanChange, error) {
	if !ValidID(id) {
		return nil, NotFound(id)
	}
	plan, err := s.Driver.Catalog().Lookup(slug)
	if err != nil {
		return nil, err
	}
	a, err := s.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch a.State {
	case StateDeprovisioning, StateDeprovisioned:
		return nil, Errorf(EGONE, "Add-on %s was deprovisioned.", id)
	}
	if a.Plan == slug && (a.PendingPlan == "" || a.PendingPlan == slug) {
		return &PlanChange{Addon: a, Message: fmt.Sprintf("Already on plan %s.", slug)}, nil
	}
	if a.State == StateProvisioning || a.State == StateFailed {
		a, err = s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
			now := s.now()
			if a.State == StateFailed {
				// Nothing exists to change: the next retry uses the new plan.
				a.Note(now, "plan", fmt.Sprintf("plan changed from %s to %s", a.Plan, slug))
				a.Plan, a.PendingPlan = slug, ""
				return nil
			}
			a.PendingPlan = slug
			a.Note(now, "plan", fmt.Sprintf("plan change to %s recorded; applied once provisioning finishes", slug))
			return nil
		})
		if err != nil {
			return nil, err
		}
		if a.State == StateProvisioned && a.PendingPlan != "" {
			// Provisioning finished between our read and our write.
			s.enqueue(ctx, JobPlanChange, id)
		}
		if a.PendingPlan == "" {
			return &PlanChange{Addon: a, Message: fmt.Sprintf("Plan changed to %s.", slug)}, nil
		}
		return &PlanChange{Addon: a, Async: true, Message: fmt.Sprintf("Plan change to %s will be applied once provisioning finishes.", slug)}, nil
	}

	// Provisioned: try the driver within Heroku's answer budget.
	cctx, cancel := context.WithTimeout(ctx, SyncBudget)
	defer cancel()
	vars, err := s.Driver.ChangePlan(cctx, s.resource(a), plan)
	if ErrorCode(err) == EINVALID {
		return nil, err
	}
	if err != nil {
		// Slow or failing for now: hand it to a job, which retries.
		s.log().WarnContext(ctx, "plan change continues in the background", "addon", id, "err", err)
		a, uerr := s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
			a.PendingPlan = slug
			a.Note(s.now(), "plan", fmt.Sprintf("plan change to %s continues in the background", slug))
			return nil
		})
		if uerr != nil {
			return nil, uerr
		}
		s.enqueue(ctx, JobPlanChange, id)
		return &PlanChange{Addon: a, Async: true, Message: fmt.Sprintf("Changing plan to %s; the new config will follow.", slug)}, nil
	}
	changed := !maps.Equal(vars, a.Vars)
	a, err = s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		a.Note(s.now(), "plan", fmt.Sprintf("plan changed from %s to %s", a.Plan, slug))
		a.Plan, a.PendingPlan, a.Vars = slug, "", vars
		return nil
	})
	if err != nil {
		return nil, err
	}
	pc := &PlanChange{Addon: a, Message: fmt.Sprintf("Plan changed to %s.", slug)}
	if changed {
		pc.Config = s.Config(a)
	}
	return pc, nil
}

// ChangePlanJob applies a recorded plan change in the background: the driver
// changes the resource, new config vars are pushed through the Platform API,
// and the plan is recorded. A driver refusal after Heroku was already
// answered cannot become a 422 any more; it is recorded in the audit trail
// and the add-on stays on its plan.
func (s *Service) ChangePlanJob(ctx context.Context, id string) error {
	// A change recorded while this job ran cannot enqueue a job of its own
	// (the running one holds the task id), so keep going until none is left.
	for range 10 {
		more, err := s.changePlanOnce(ctx, id)
		if err != nil || !more {
			return err
		}
	}
	return Errorf(EINTERNAL, "Plan of add-on %s keeps changing; the reconciler will continue.", id)
}

// changePlanOnce applies the pending plan and reports whether a newer one
// arrived meanwhile.
func (s *Service) changePlanOnce(ctx context.Context, id string) (more bool, err error) {
	a, err := s.Store.Get(ctx, id)
	if err != nil {
		return false, err
	}
	if a.State != StateProvisioned || a.PendingPlan == "" {
		return false, nil // provisioning enqueues this again when it finishes
	}
	target := a.PendingPlan
	if target == a.Plan {
		_, err := s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
			if a.PendingPlan == target {
				a.PendingPlan = ""
			}
			return nil
		})
		return err == nil, err
	}
	plan, err := s.Driver.Catalog().Lookup(target)
	if err != nil {
		return true, s.refusePlan(ctx, id, target, err)
	}
	vars, err := s.Driver.ChangePlan(ctx, s.resource(a), plan)
	if ErrorCode(err) == EINVALID {
		return true, s.refusePlan(ctx, id, target, err)
	}
	if err != nil {
		return false, transient(fmt.Errorf("change plan: %w", err))
	}
	// Push even when the vars look unchanged: the job is also how a change
	// that timed out inside Heroku's call reaches the app, and a PATCH of the
	// same values is harmless.
	if a.Tokens != nil {
		cfg, err := s.configVars(vars)
		if err != nil {
			return false, err
		}
		if err := s.withToken(ctx, a, func(token string) error {
			return s.Platform.SetConfig(ctx, token, id, cfg)
		}); err != nil {
			return false, fmt.Errorf("push config after plan change: %w", err)
		}
	}
	a, err = s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		a.Note(s.now(), "plan", fmt.Sprintf("plan changed from %s to %s", a.Plan, target))
		a.Plan, a.Vars = target, vars
		if a.PendingPlan == target {
			a.PendingPlan = ""
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return a.PendingPlan != "", nil
}

func (s *Service) refusePlan(ctx context.Context, id, target string, cause error) error {
	_, err := s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if a.PendingPlan == target {
			a.PendingPlan = ""
		}
		a.Note(s.now(), "plan", fmt.Sprintf("plan change to %s refused: %s", target, ErrorMessage(cause)))
		return nil
	})
	s.log().WarnContext(ctx, "plan change refused after Heroku was answered", "addon", id, "plan", target, "err", cause)
	return err
}

// Deprovision applies Heroku's deprovision call: the add-on moves to
// deprovisioning (stopping a running provision pipeline at its next step) and
// a job destroys the resource. A repeat while that job runs succeeds again; a
// repeat after it finished is EGONE.
func (s *Service) Deprovision(ctx context.Context, id string) error {
	if !ValidID(id) {
		return NotFound(id)
	}
	a, err := s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		switch a.State {
		case StateDeprovisioned:
			return Errorf(EGONE, "Add-on %s was already deprovisioned.", id)
		case StateDeprovisioning:
			return nil
		}
		return a.Transition(s.now(), StateDeprovisioning, "deprovision requested by Heroku")
	})
	if err != nil {
		return err
	}
	if a.State == StateDeprovisioning {
		s.enqueue(ctx, JobDeprovision, id)
	}
	return nil
}

// DeprovisionJob destroys the resource of a deprovisioning add-on and records
// it deprovisioned. The driver is retried until it succeeds: every failure is
// treated as transient, because giving up would leave a customer's resource
// behind after Heroku stopped billing for it.
func (s *Service) DeprovisionJob(ctx context.Context, id string) error {
	a, err := s.Store.Get(ctx, id)
	if err != nil {
		return err
	}
	if a.State != StateDeprovisioning {
		return nil
	}
	if err := s.Driver.Destroy(ctx, s.resource(a)); err != nil {
		return transient(fmt.Errorf("destroy resource: %w", err))
	}
	_, err = s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if a.State != StateDeprovisioning {
			return nil
		}
		now := s.now()
		a.DeprovisionedAt = now
		// The credentials and tokens are of no use any more: keep none.
		a.Vars, a.Tokens, a.Grant = nil, nil, nil
		return a.Transition(now, StateDeprovisioned, "resource destroyed")
	})
	return err
}

// Retry restarts the provisioning of a failed add-on with a fresh deadline,
// for operators who fixed what made it fail.
func (s *Service) Retry(ctx context.Context, id string) (*Addon, error) {
	a, err := s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if a.State != StateFailed {
			return Errorf(ECONFLICT, "Add-on %s is %s; only failed add-ons can be retried.", id, a.State)
		}
		if a.Synchronous() {
			// Its config could only travel in the answer to Heroku's
			// provision call, which is long gone: a retry would give up at once.
			return Errorf(EINVALID, "Add-on %s came without an OAuth grant, so it can only be provisioned inside Heroku's request; a retry cannot deliver its config. Ask the customer to create it again.", id)
		}
		now := s.now()
		a.Deadline = now.Add(s.Deadline)
		return a.Transition(now, StateProvisioning, "retried by an operator")
	})
	if err != nil {
		return nil, err
	}
	kind := JobProvision
	if a.Grant != nil && a.GrantExchangedAt.IsZero() {
		kind = JobGrant
	}
	s.enqueue(ctx, kind, id)
	return a, nil
}

// RotateCredentials replaces a provisioned add-on's credentials through the
// driver and pushes the new config vars to Heroku, so the app restarts with
// them. Drivers without credentials refuse with EINVALID.
func (s *Service) RotateCredentials(ctx context.Context, id string) (*Addon, error) {
	r, ok := s.Driver.(Rotator)
	if !ok {
		return nil, Errorf(EINVALID, "The %s driver has no credentials to rotate.", s.Driver.Name())
	}
	a, err := s.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.State != StateProvisioned {
		return nil, Errorf(ECONFLICT, "Add-on %s is %s; only provisioned add-ons can rotate credentials.", id, a.State)
	}
	if a.Tokens == nil {
		// Checked before rotating: without Platform API access the new
		// credentials could not reach the app, which would keep dead ones.
		return nil, Errorf(EINVALID, "Add-on %s has no Platform API access (Heroku sent no OAuth grant), so new credentials could not reach the app; nothing was rotated.", id)
	}
	vars, err := r.RotateCredentials(ctx, s.resource(a))
	if err != nil {
		return nil, fmt.Errorf("rotate credentials: %w", err)
	}
	// Record first: the new credentials are the only working ones now, and
	// the push below can be retried from what is recorded.
	a, err = s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		a.Vars = vars
		a.ConfigPushedAt = time.Time{}
		a.Note(s.now(), "credentials", "credentials rotated")
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.PushConfig(ctx, id); err != nil {
		// The app still has the old, now dead, credentials: a job keeps
		// pushing until Heroku takes the new ones (and the reconciler
		// re-enqueues it if that job is lost).
		s.enqueue(ctx, JobPushConfig, id)
		return a, err
	}
	return s.Store.Get(ctx, id)
}

// PushConfigJob pushes recorded config vars that have not reached Heroku yet
// (after a credential rotation whose push failed). Provisioning pushes its
// own config; this job leaves add-ons in any other state alone.
func (s *Service) PushConfigJob(ctx context.Context, id string) error {
	a, err := s.Store.Get(ctx, id)
	if err != nil {
		return err
	}
	if a.State != StateProvisioned || !a.ConfigPushedAt.IsZero() || a.Tokens == nil {
		return nil
	}
	return s.PushConfig(ctx, id)
}

// PushConfig sends the add-on's recorded config vars to Heroku and records
// when. It is how rotated credentials reach the app.
func (s *Service) PushConfig(ctx context.Context, id string) error {
	a, err := s.Store.Get(ctx, id)
	if err != nil {
		return err
	}
	if a.Tokens == nil {
		return Errorf(EINVALID, "Add-on %s has no Platform API access (Heroku sent no OAuth grant).", id)
	}
	cfg, err := s.configVars(a.Vars)
	if err != nil {
		return err
	}
	if err := s.withToken(ctx, a, func(token string) error {
		return s.Platform.SetConfig(ctx, token, id, cfg)
	}); err != nil {
		return fmt.Errorf("push config: %w", err)
	}
	_, err = s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		now := s.now()
		a.ConfigPushedAt = now
		a.Note(now, "step", "config vars pushed")
		return nil
	})
	return err
}

// transient marks err as worth retrying even when its cause is a refusal.
func transient(err error) error {
	var e *Error
	if errors.As(err, &e) && Transient(e) {
		return err
	}
	return &Error{Code: EINTERNAL, Message: "A retryable step failed.", Err: err}
}
