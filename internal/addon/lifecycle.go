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

// ChangePlan applies Heroku's plan change call. The same plan is a no-op
// (unless an earlier change may still be under way). On
// a provisioned add-on the driver applies the change inside the request when
// it can (its refusal becomes a 422 Heroku shows); when it is slow the change
// continues in a job that pushes the new config. On an add-on still
// provisioning the change is recorded and applied once provisioning
// finishes, so it is not lost.
func (s *Service) ChangePlan(ctx context.Context, id ID, slug string) (*PlanChange, error) {
	plan, err := s.driver.Catalog().Lookup(slug)
	if err != nil {
		return nil, err
	}
	a, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch a.State {
	case StateDeprovisioning, StateDeprovisioned:
		return nil, Errorf(EGONE, "Add-on %s was deprovisioned.", id)
	}
	// The same plan is a no-op, unless a writer holds a provisioned
	// add-on: it may be an earlier change still in the driver, which this
	// call, Heroku's newest, must follow (the claim below waits for it).
	if a.Plan == slug && (a.PendingPlan == "" || a.PendingPlan == slug) && (a.State != StateProvisioned || a.LeaseOwner == "") {
		return &PlanChange{Addon: a, Message: fmt.Sprintf("Already on plan %s.", slug)}, nil
	}
	if a.State == StateProvisioning && a.Synchronous() {
		// Provisioned inside Heroku's request, whose answer carries its
		// config: a change recorded for later could never reach the app.
		return nil, &Error{Code: EUNAVAILABLE, RetryAfter: 2 * time.Second,
			Message: fmt.Sprintf("Add-on %s is still being provisioned; try again shortly.", id)}
	}
	if a.State == StateProvisioning || a.State == StateFailed {
		a, err = s.store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
			now := s.now()
			if a.State == StateFailed && a.ResourceCreatedAt.IsZero() {
				// Nothing exists to change: the next retry uses the new plan.
				// (A failed add-on whose resource exists keeps the change
				// pending, as a provisioning one does: a retry does not
				// create the resource again, so the plan job must change it.)
				a.changePlan(now, slug)
				a.PendingPlan = ""
				return nil
			}
			a.PendingPlan, a.PendingPlanAt = slug, now
			a.Note(now, "plan", fmt.Sprintf("plan change to %s recorded; applied once provisioning finishes", slug))
			return nil
		})
		if err != nil {
			return nil, err
		}
		if a.State == StateProvisioned {
			// Provisioning finished between our read and our write: its
			// hand-on did not see this plan.
			s.handOn(ctx, a)
		}
		if a.PendingPlan == "" {
			return &PlanChange{Addon: a, Message: fmt.Sprintf("Plan changed to %s.", slug)}, nil
		}
		return &PlanChange{Addon: a, Async: true, Message: fmt.Sprintf("Plan change to %s will be applied once provisioning finishes.", slug)}, nil
	}

	// Provisioned: apply it now, as the add-on's one writer, within Heroku's
	// answer budget. While another writer holds the add-on (an earlier
	// change still in the driver, a rotation), the change is recorded as
	// pending and the job applies it after that writer is done, so Kiln and
	// Heroku end on the plan Heroku asked for last.
	//
	// An add-on Heroku sent without a grant is the exception: Kiln has no
	// token to push its config later, so its change must finish inside
	// Heroku's call. When it cannot, Heroku gets a 503 and Heroku and Kiln
	// stay on the old plan (a driver cut off mid-change may have moved the
	// resource; the customer's next try applies the plan again); if only
	// the record failed, Heroku gets the new config, and the change is
	// recorded as made (recordUnrecorded).
	noPush := a.Tokens == nil
	cctx, cancel := context.WithTimeout(ctx, SyncBudget)
	defer cancel()
	var pc *PlanChange
	var (
		unrecorded Vars   // a change made for an add-on without tokens, not recorded
		claimed    *Addon // that add-on as the change found it
	)
	err = s.Exclusive(cctx, id, planClaimWait, func(ctx context.Context, c *Claim) error {
		a := c.Addon()
		switch a.State {
		case StateDeprovisioning, StateDeprovisioned:
			return Errorf(EGONE, "Add-on %s was deprovisioned.", id)
		case StateProvisioned:
		default:
			return Errorf(EUNAVAILABLE, "Add-on %s changed state; try again.", id)
		}
		if a.Plan == slug && a.PendingPlan == "" {
			pc = &PlanChange{Addon: a, Message: fmt.Sprintf("Already on plan %s.", slug)}
			return nil
		}
		found := a.Clone() // as the change found it (settlePending)
		vars, err := s.driver.ChangePlan(ctx, s.resource(a), plan)
		if ErrorCode(err) == EINVALID {
			return err
		}
		if err != nil {
			// Slow or failing for now: hand it to a job, which retries.
			s.log().WarnContext(ctx, "plan change continues in the background", "addon", id, "err", err)
			return errBackground
		}
		// The resource is on the new plan now: record it at any cost. If
		// that cannot be done, the change continues as a job (which applies
		// it again and records it), never as an error that leaves Heroku
		// and Kiln on the old plan and the resource on the new one.
		err = s.inHand(ctx, "plan change", id, func(ctx context.Context) error {
			var err error
			a, err = c.record(ctx, true, func(a *Addon, now time.Time) error {
				a.changePlan(now, slug)
				s.takeVars(ctx, a, vars, found.Vars)
				a.settlePending(slug, found)
				if a.Halted == JobPlanChange {
					// Heroku's newest plan is applied: a halted older change is moot.
					a.Halted, a.HaltReason = "", ""
				}
				return nil
			})
			return err
		})
		if err != nil {
			s.log().ErrorContext(ctx, "could not record a plan change the driver made; a job applies it again", "addon", id, "plan", slug, "err", err)
			if noPush {
				unrecorded, claimed = vars, found
			}
			return errBackground
		}
		if a.PendingPlan != "" {
			// Heroku asked for another plan since: its job (enqueued by
			// that call, and refused while this claim held the add-on)
			// applies it now.
			s.handOn(ctx, a)
		}
		pc = &PlanChange{Addon: a, Message: fmt.Sprintf("Plan changed to %s.", slug)}
		if !maps.Equal(a.Vars, found.Vars) {
			pc.Config = s.Config(a)
		}
		return nil
	})
	switch {
	case err == nil:
		return pc, nil
	case ErrorCode(err) == EINVALID || ErrorCode(err) == EGONE:
		return nil, err
	case !errors.Is(err, errBackground) && !IsBusy(err):
		return nil, err
	case noPush && unrecorded == nil:
		return nil, &Error{Code: EUNAVAILABLE, RetryAfter: 2 * time.Second, Err: err,
			Message: fmt.Sprintf("Add-on %s cannot change plan right now (another change is in progress, or the resource service is slow); try again shortly.", id)}
	case noPush:
		return s.recordUnrecorded(ctx, claimed, slug, unrecorded)
	}
	a, err = s.store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		now := s.now()
		a.PendingPlan, a.PendingPlanAt = slug, now
		a.Halted, a.HaltReason = "", "" // a new request from Heroku is worth a new try
		a.Note(now, "plan", fmt.Sprintf("plan change to %s continues in the background", slug))
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.handOn(ctx, a) // to the plan change job
	return &PlanChange{Addon: a, Async: true, Message: fmt.Sprintf("Changing plan to %s; the new config will follow.", slug)}, nil
}

// recordUnrecorded records, for an add-on without tokens, a plan change
// the driver made (vars) but its writer could not record (the lease lost,
// a failed write), and answers Heroku with its config: the resource is on
// the new plan, and Heroku's answer is the only way its config reaches the
// app. It is recorded as made, with those vars, rather than left to a job
// that would ask the driver again (and could get other credentials than
// the ones Heroku was given). Only if the add-on is still as the change
// found it (no other writer changed its plan or vars meanwhile); otherwise,
// or when it cannot be written, Heroku gets a 503 and an error is logged:
// the resource may be on the new plan, and an operator must look.
func (s *Service) recordUnrecorded(ctx context.Context, claimed *Addon, slug string, vars Vars) (*PlanChange, error) {
	a, err := s.store.Update(ctx, claimed.ID, func(ctx context.Context, a *Addon) error {
		if a.State != StateProvisioned || a.Plan != claimed.Plan || !maps.Equal(a.Vars, claimed.Vars) {
			return &Error{Code: EUNAVAILABLE, RetryAfter: 2 * time.Second,
				Message: fmt.Sprintf("Add-on %s changed during its plan change; try again shortly.", a.ID)}
		}
		now := s.now()
		a.changePlan(now, slug)
		a.Vars = vars
		a.settlePending(slug, claimed)
		return nil
	})
	if err != nil {
		s.log().ErrorContext(ctx, "a plan change the driver made for an add-on without tokens could not be recorded; the resource may be on the new plan", "addon", claimed.ID, "plan", slug, "err", err)
		return nil, err
	}
	if a.PendingPlan != "" {
		s.handOn(ctx, a) // a newer request, recorded while the driver worked
	}
	pc := &PlanChange{Addon: a, Message: fmt.Sprintf("Plan changed to %s.", slug)}
	if !maps.Equal(vars, claimed.Vars) {
		pc.Config = s.Config(a)
	}
	return pc, nil
}

// takeVars records on a, as stored, the vars a plan change's driver call
// gave back (got), made from the vars its writer claimed the add-on with
// (from). If another writer stored other credentials meanwhile (a
// rotation whose lease lapsed during its driver call saves them anyway:
// they are the only working ones) and the call gave back what it was
// given, the stored ones are kept: writing from back would leave the app
// a key that no longer works. If both changed, which set the resource
// honours depends on the order the two calls reached it: the plan
// change's is recorded, as its writer holds the lease, and an error is
// logged for an operator to check.
func (s *Service) takeVars(ctx context.Context, a *Addon, got, from Vars) {
	switch {
	case maps.Equal(a.Vars, from):
		a.Vars = got
	case maps.Equal(got, from):
		s.log().WarnContext(ctx, "plan change kept the credentials another writer stored meanwhile", "addon", a.ID)
	default:
		s.log().ErrorContext(ctx, "plan change and another writer both changed the credentials; the plan change's are recorded: check which the resource honours", "addon", a.ID)
		a.Vars = got
	}
}

// changePlan puts a on plan slug, noting the change in its audit trail:
// what every writer that changed the plan records.
func (a *Addon) changePlan(now time.Time, slug string) {
	a.Note(now, "plan", fmt.Sprintf("plan changed from %s to %s", a.Plan, slug))
	a.Plan = slug
}

// settlePending clears the pending plan that a change to slug, made
// inside Heroku's call from the add-on as found, settles: one for slug
// itself, or the one pending when the change began, which this newer
// request replaces. One recorded while the driver worked (its caller found
// the add-on busy) is newer and is kept, even for the plan that was
// pending: its time tells them apart.
func (a *Addon) settlePending(slug string, found *Addon) {
	if a.PendingPlan == slug || (a.PendingPlan == found.PendingPlan && a.PendingPlanAt.Equal(found.PendingPlanAt)) {
		a.PendingPlan = ""
	}
}

// planClaimWait is how long Heroku's plan change call waits for another
// writer before the change is handed to a job.
const planClaimWait = 300 * time.Millisecond

// errBackground says a request-time change continues in a job.
var errBackground = errors.New("continues in the background")

// PlanChangeJob applies a recorded plan change in the background, as the
// add-on's one writer: the driver changes the resource, the result is
// recorded, the new config vars are pushed through the Platform API. A
// driver refusal after Heroku was already answered cannot become a 422 any
// more; it is recorded in the audit trail and the add-on stays on its plan.
// A change recorded while this job ran is applied before it lets go.
func (s *Service) PlanChangeJob(ctx context.Context, id ID) error {
	err := s.Exclusive(ctx, id, 0, func(ctx context.Context, c *Claim) error {
		for range 10 {
			target := c.Addon().PendingPlan
			more, err := s.changePlanOnce(ctx, c)
			if err != nil {
				halted, herr := s.haltPlanIfPermanent(ctx, c, target, err)
				if !halted && herr == nil {
					continue // Heroku asked for another plan meanwhile: try that one
				}
				return herr
			}
			if !more {
				// A push refused for good halts as the push job's would,
				// rather than leaving the reconciler to find it owed.
				return s.haltIfPermanent(ctx, c, JobPushConfig, s.pushIfUnpushed(ctx, c))
			}
		}
		return Errorf(EINTERNAL, "Plan of add-on %s keeps changing; the job will continue.", id)
	})
	if err != nil {
		return err
	}
	// A change Heroku asked for while this job pushed found the add-on busy
	// and was recorded for a job, but its enqueue was deduplicated against
	// this running one: retry soon (Busy) rather than leave it for the
	// reconciler's slow sweep.
	if a, gerr := s.store.Get(ctx, id); gerr == nil && a.planOwed() {
		return Busy(id, "a plan change recorded during this job", 0)
	}
	return nil
}

// changePlanOnce applies the pending plan and reports whether a newer one
// arrived meanwhile.
func (s *Service) changePlanOnce(ctx context.Context, c *Claim) (more bool, err error) {
	a := c.Addon()
	if !a.planOwed() {
		return false, nil // provisioning hands the add-on on to this job when it finishes
	}
	target := a.PendingPlan
	if target == a.Plan {
		a, err := c.Record(ctx, func(a *Addon, now time.Time) error {
			if a.PendingPlan == target {
				a.PendingPlan = ""
			}
			return nil
		})
		return err == nil && a.PendingPlan != "", err
	}
	plan, err := s.driver.Catalog().Lookup(target)
	if err != nil {
		return true, s.refusePlan(ctx, c, target, err)
	}
	vars, err := s.driver.ChangePlan(ctx, s.resource(a), plan)
	if ErrorCode(err) == EINVALID {
		return true, s.refusePlan(ctx, c, target, err)
	}
	if err != nil {
		return false, fmt.Errorf("change plan: %w", err)
	}
	// Record what the driver did before pushing: the resource is on the new
	// plan now, whatever happens to the push. The push is owed even when the
	// vars look unchanged: the job is also how a change that timed out
	// inside Heroku's call reaches the app, and a PATCH of the same values
	// is harmless.
	from := a.Vars
	a, err = c.Record(ctx, func(a *Addon, now time.Time) error {
		a.changePlan(now, target)
		s.takeVars(ctx, a, vars, from)
		if a.PendingPlan == target {
			a.PendingPlan = ""
		}
		if a.Tokens != nil {
			a.ConfigPushedAt = time.Time{}
			if a.Halted == JobPushConfig {
				// This change's config is owed to Heroku: an older halted
				// push must not keep it from being pushed (giveVars).
				a.Halted, a.HaltReason = "", ""
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return a.PendingPlan != "", nil
}

func (s *Service) refusePlan(ctx context.Context, c *Claim, target string, cause error) error {
	_, err := c.Record(ctx, func(a *Addon, now time.Time) error {
		if a.PendingPlan == target {
			a.PendingPlan = ""
		}
		a.Note(now, "plan", fmt.Sprintf("plan change to %s refused: %s", target, ErrorMessage(cause)))
		return nil
	})
	s.log().WarnContext(ctx, "plan change refused after Heroku was answered", "addon", c.Addon().ID, "plan", target, "err", cause)
	return err
}

// haltPlanIfPermanent is haltIfPermanent for a plan change that failed
// trying target: it halts only while target is still the plan Heroku asked
// for. When a newer change was recorded meanwhile, halting would throw that
// one away too; it reports halted false and a nil error so the job tries
// the newer plan instead.
func (s *Service) haltPlanIfPermanent(ctx context.Context, c *Claim, target string, err error) (halted bool, _ error) {
	if err == nil || Transient(err) {
		return false, err
	}
	reason := ErrorMessage(err)
	a, rerr := c.Record(context.WithoutCancel(ctx), func(a *Addon, now time.Time) error {
		if a.PendingPlan != target {
			a.Note(now, "plan", fmt.Sprintf("plan change to %s failed (%s); plan %s asked for since is tried next", target, reason, a.PendingPlan))
			return nil
		}
		a.Halted, a.HaltReason = JobPlanChange, reason
		a.Note(now, "halted", fmt.Sprintf("%s stopped: %s", JobPlanChange, reason))
		return nil
	})
	if rerr != nil {
		// The record's error first: it decides whether the job retries.
		// Unrecorded, the halt has not happened, so the job must run again
		// rather than be dropped as permanent and revived by a sweep.
		return false, errors.Join(rerr, err)
	}
	if a.Halted != JobPlanChange {
		return false, nil
	}
	s.log().ErrorContext(ctx, "job failed permanently; halted until an operator retries it", "addon", a.ID, "job", JobPlanChange, "reason", reason)
	return true, err
}

// haltIfPermanent records a job that failed for good (a refusal, not an
// outage) as halted, so neither asynq nor the reconciler revives it every
// sweep; an operator retries it (Retry) once the cause is fixed. Transient
// errors are returned for the job to retry.
func (s *Service) haltIfPermanent(ctx context.Context, c *Claim, kind JobKind, err error) error {
	if err == nil || Transient(err) {
		return err
	}
	reason := ErrorMessage(err)
	if _, rerr := c.Record(context.WithoutCancel(ctx), func(a *Addon, now time.Time) error {
		a.Halted, a.HaltReason = kind, reason
		a.Note(now, "halted", fmt.Sprintf("%s stopped: %s", kind, reason))
		return nil
	}); rerr != nil {
		return errors.Join(rerr, err) // the record's error decides: see haltPlanIfPermanent
	}
	s.log().ErrorContext(ctx, "job failed permanently; halted until an operator retries it", "addon", c.Addon().ID, "job", kind, "reason", reason)
	return err
}

// Deprovision applies Heroku's deprovision call: the add-on moves to
// deprovisioning (stopping a running provision pipeline at its next step) and
// a job destroys the resource. A repeat while that job runs succeeds again; a
// repeat after it finished is EGONE.
func (s *Service) Deprovision(ctx context.Context, id ID) error {
	a, err := s.store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
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
	s.handOn(ctx, a) // to the deprovision job
	return nil
}

// DeprovisionJob destroys the resource of a deprovisioning add-on and records
// it deprovisioned. The driver is retried until it succeeds: every failure is
// treated as transient, because giving up would leave a customer's resource
// behind after Heroku stopped billing for it.
func (s *Service) DeprovisionJob(ctx context.Context, id ID) error {
	return s.Exclusive(ctx, id, 0, func(ctx context.Context, c *Claim) error {
		a := c.Addon()
		if a.State != StateDeprovisioning {
			return nil
		}
		if err := s.driver.Destroy(ctx, s.resource(a)); err != nil {
			return transient(fmt.Errorf("destroy resource: %w", err))
		}
		_, err := c.record(ctx, true, func(a *Addon, now time.Time) error {
			if a.State != StateDeprovisioning {
				return nil
			}
			a.DeprovisionedAt = now
			// The credentials and tokens are of no use any more: keep none.
			a.Vars, a.Tokens, a.Grant = nil, nil, nil
			a.Requeue = false
			return a.Transition(now, StateDeprovisioned, "resource destroyed")
		})
		return err
	})
}

// Retry restarts, for operators who fixed what made it stop, the
// provisioning of a failed add-on or a provisioned add-on's halted job: it
// lifts the failure or the halt and hands the add-on on to its next job
// (NextJob), which is the halted kind (a halted push with a plan change
// pending runs as the plan job, which pushes last). A failed add-on keeps
// its deadline, which counts from Heroku's request: past it, Heroku is
// about to remove the add-on (HerokuLimit) and the retry is refused.
func (s *Service) Retry(ctx context.Context, id ID) (*Addon, error) {
	a, err := s.store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if a.State == StateProvisioned && a.Halted != "" {
			// A plan change or config push that stopped for good.
			a.Note(s.now(), "halted", fmt.Sprintf("%s retried by an operator", a.Halted))
			a.Halted, a.HaltReason = "", ""
			return nil
		}
		if a.State != StateFailed {
			return Errorf(ECONFLICT, "Add-on %s is %s; only failed add-ons and halted jobs can be retried.", id, a.State)
		}
		if a.Synchronous() {
			// Its config could only travel in the answer to Heroku's
			// provision call, which is long gone: a retry would give up at once.
			return Errorf(EINVALID, "Add-on %s came without an OAuth grant, so it can only be provisioned inside Heroku's request; a retry cannot deliver its config. Ask the customer to create it again.", id)
		}
		now := s.now()
		// The deadline counts from Heroku's request, as Heroku's own limit
		// does: a retry cannot buy time Heroku will not give.
		deadline := a.CreatedAt.Add(s.opt.Deadline)
		if !now.Before(deadline) {
			return Errorf(EINVALID, "Add-on %s was requested at %s and its provisioning deadline passed at %s: Heroku removes an add-on not provisioned within 12 hours of its request, so a retry cannot finish it. Ask the customer to create it again.",
				id, a.CreatedAt.UTC().Format(time.RFC3339), deadline.UTC().Format(time.RFC3339))
		}
		if a.Reason == ReasonDeadline {
			// Its resource was destroyed; a release from before giveUp
			// forgot it left its vars here: make it anew.
			a.forgetResource()
		}
		a.Deadline = deadline
		return a.Transition(now, StateProvisioning, "retried by an operator")
	})
	if err != nil {
		return nil, err
	}
	s.handOn(ctx, a)
	return a, nil
}

// HerokuLimit is how long after its request Heroku waits for an add-on to
// be marked provisioned: then it removes the add-on from the app and
// charges nothing. PROVISION_DEADLINE is under it.
const HerokuLimit = 12 * time.Hour

// Leftovers lists failed add-ons past HerokuLimit that may still hold a
// resource, or hold tokens (Addon.Leftover), oldest request first, for the
// reconciler to remove with RemoveLeftover.
func (s *Service) Leftovers(ctx context.Context, limit int) ([]*Addon, error) {
	return s.store.Leftovers(ctx, s.now().Add(-HerokuLimit), limit)
}

// RemoveLeftover deprovisions a failed add-on that Heroku has removed (it
// was not provisioned within HerokuLimit of the request) while Kiln still
// holds what provisioning made (Addon.Leftover): the deprovision job
// destroys the resource (drivers find it by the add-on's id, even one
// whose creation was never recorded) and drops the tokens and credentials,
// as for an add-on Heroku deprovisioned. Heroku is not told
// (ReasonRemovedOnHeroku): it has done with the add-on already. It runs as
// the add-on's one writer and, with the add-on's tokens, asks Heroku first,
// as a give-up does: one Heroku has provisioned after all is live, and is
// recorded provisioned (an error log line tells operators). moved reports
// whether it was handed to the deprovision job; anything else is left as
// it is.
func (s *Service) RemoveLeftover(ctx context.Context, id ID) (moved bool, err error) {
	var after *Addon
	err = s.Exclusive(ctx, id, 0, func(ctx context.Context, c *Claim) error {
		due := func(a *Addon, now time.Time) bool {
			return a.Leftover() && a.CreatedAt.Before(now.Add(-HerokuLimit))
		}
		if !due(c.Addon(), s.now()) {
			return nil
		}
		live, err := s.liveOnHeroku(ctx, c)
		if err != nil {
			return err
		}
		if live {
			// An earlier attempt marked it provisioned and its record was
			// lost before the add-on failed: the customer has it, with
			// these credentials. Recorded as Heroku has it.
			s.log().ErrorContext(ctx, "Heroku has a failed add-on provisioned; recording it provisioned", "addon", id, "reason", c.Addon().Reason)
			after, err = c.Record(ctx, func(a *Addon, now time.Time) error {
				if !due(a, now) {
					return nil
				}
				a.Note(now, "heroku", fmt.Sprintf("failed (%s), but Heroku has it provisioned", a.Reason))
				if err := a.Transition(now, StateProvisioning, "Heroku has it provisioned"); err != nil {
					return err
				}
				if a.ConfigPushedAt.IsZero() {
					a.ConfigPushedAt = now
				}
				if a.ProvisionedAt.IsZero() {
					a.ProvisionedAt = now
				}
				return a.Transition(now, StateProvisioned, "")
			})
			return err
		}
		after, err = c.Record(ctx, func(a *Addon, now time.Time) error {
			moved = false
			if !due(a, now) {
				return nil
			}
			moved = true
			a.Note(now, "removed", fmt.Sprintf("failed (%s) and not provisioned within 12 hours of Heroku's request, so Heroku removed it; what it holds goes", a.Reason))
			return a.Transition(now, StateDeprovisioning, ReasonRemovedOnHeroku)
		})
		return err
	})
	if err != nil {
		return false, err
	}
	if after != nil && after.State == StateProvisioned {
		return false, s.follow(ctx, after) // a plan change recorded meanwhile, say
	}
	if !moved {
		return false, nil
	}
	s.log().WarnContext(ctx, "failed add-on removed by Heroku at its 12-hour limit; deprovisioning what it left", "addon", id)
	s.handOn(ctx, after)
	return true, nil
}

// RotateCredentials replaces a provisioned add-on's credentials through the
// driver and pushes the new config vars to Heroku, so the app restarts with
// them. Drivers without credentials (Abilities.Rotate) refuse with
// EUNSUPPORTED.
func (s *Service) RotateCredentials(ctx context.Context, id ID) (*Addon, error) {
	if !s.driver.Abilities().Rotate {
		return nil, Unsupported(s.driver.Name(), "rotate credentials: its resources have none")
	}
	var pushErr error
	err := s.Exclusive(ctx, id, rotateClaimWait, func(ctx context.Context, c *Claim) error {
		a := c.Addon()
		if err := a.rotatable(); err != nil {
			return err
		}
		// The driver call runs to its end whatever happens to the caller
		// (a dashboard request cancelled, the lease taken over): once the
		// driver has rotated, the old credentials are dead, and an answer
		// thrown away midway would leave nobody knowing the new ones.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rotateTimeout)
		vars, err := s.driver.RotateCredentials(dctx, s.resource(a))
		cancel()
		if err != nil {
			return fmt.Errorf("rotate credentials: %w", err)
		}
		// Record first, at any cost: the new credentials are the only working
		// ones now, and the push below can be retried from what is recorded.
		pushErr, err = s.giveVars(ctx, c, "rotated credentials", vars, "credentials rotated")
		return err
	})
	if err != nil {
		return nil, err
	}
	a, err := s.store.Get(context.WithoutCancel(ctx), id)
	if err != nil {
		return nil, err
	}
	return a, pushErr
}

// giveVars records vars, new credentials the driver has just made, as the
// add-on's, with a "credentials" event saying note, then pushes them to
// Heroku. Once the driver has made them they are the ones the app must be
// given, so the save is retried with them in hand (Service.inHand), and
// made even if the lease was taken over meanwhile, unless another writer
// has since recorded other vars or moved the add-on out of provisioned:
// theirs are kept, and the new set is dropped with an error line. err
// says the vars could not be saved. pushErr says they did not reach
// Heroku here: the push failed, or the lease was lost (LeaseLost, whether
// the fallback saved them or dropped them). Whatever is then recorded and
// owed is handed on to a job (the push job, or a pending plan change,
// whose last step pushes too).
func (s *Service) giveVars(ctx context.Context, c *Claim, what string, vars Vars, note string) (pushErr, err error) {
	id, before := c.Addon().ID, c.Addon().Vars
	set := func(a *Addon, now time.Time) error {
		a.Vars = vars
		a.ConfigPushedAt = time.Time{}
		if a.Halted == JobPushConfig {
			// New vars are owed to Heroku: an older halted push must not
			// keep this one from being retried.
			a.Halted, a.HaltReason = "", ""
		}
		a.Note(now, "credentials", note)
		return nil
	}
	lost := false
	var latest *Addon // as recorded last, for the hand-on
	err = s.inHand(ctx, what, id, func(ctx context.Context) error {
		if !lost {
			_, err := c.Record(ctx, set)
			if !errors.Is(err, ErrLeaseLost) {
				return err
			}
			lost = true
			s.log().ErrorContext(ctx, "lease lost while holding new credentials; saving them anyway", "what", what, "addon", id)
		}
		var err error
		latest, err = s.store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
			if a.State != StateProvisioned || !maps.Equal(a.Vars, before) {
				s.log().ErrorContext(ctx, "new credentials dropped: another writer changed the add-on meanwhile", "what", what, "addon", id, "state", a.State)
				return nil
			}
			return set(a, s.now())
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if lost {
		pushErr = LeaseLost(id)
	} else {
		pushErr = s.pushConfig(ctx, c)
		latest = c.Addon()
	}
	if pushErr != nil {
		s.handOn(context.WithoutCancel(ctx), latest)
	}
	return pushErr, nil
}

// rotatable says why a's credentials cannot be rotated now, or nil: only a
// provisioned add-on can rotate (ECONFLICT), and only with Platform API
// tokens to push the new config (EINVALID). Without them (Heroku sent no
// OAuth grant) the new credentials could not reach the app, which would
// keep dead ones. Checked before the driver is asked.
func (a *Addon) rotatable() error {
	if a.State != StateProvisioned {
		return Errorf(ECONFLICT, "Add-on %s is %s; only provisioned add-ons can rotate credentials.", a.ID, a.State)
	}
	if a.Tokens == nil {
		return Errorf(EINVALID, "Add-on %s has no Platform API access (Heroku sent no OAuth grant), so new credentials could not reach the app; nothing was rotated.", a.ID)
	}
	return nil
}

// CanRotate reports whether a rotation of a's credentials can work now:
// the driver can rotate (Abilities) and the add-on is rotatable (see
// RotateCredentials), so the dashboard offers the button only then.
func (s *Service) CanRotate(a *Addon) bool {
	return s.Abilities().Rotates() && a.rotatable() == nil
}

// rotateTimeout bounds a driver's credential rotation or roll, which runs
// on a context of its own (see RotateCredentials and Keeper.Rotate).
const rotateTimeout = time.Minute

// rotateClaimWait is how long a rotation asked for from the dashboard or the
// operator API waits for another writer (a plan change job, another
// rotation) before it is refused with a 503 to try again.
const rotateClaimWait = 2 * time.Second

// PushConfigJob pushes recorded config vars that have not reached Heroku yet
// (after a credential rotation or plan change whose push failed), as the
// add-on's one writer. Provisioning pushes its own config; this job leaves
// add-ons in any other state alone.
func (s *Service) PushConfigJob(ctx context.Context, id ID) error {
	return s.Exclusive(ctx, id, 0, func(ctx context.Context, c *Claim) error {
		return s.haltIfPermanent(ctx, c, JobPushConfig, s.pushIfUnpushed(ctx, c))
	})
}

// pushIfUnpushed pushes the claimed add-on's config if it is provisioned
// and its vars have not reached Heroku.
func (s *Service) pushIfUnpushed(ctx context.Context, c *Claim) error {
	if !c.Addon().pushOwed() {
		return nil
	}
	return s.pushConfig(ctx, c)
}

// PushConfig sends the add-on's recorded config vars to Heroku and records
// when, as the add-on's one writer.
func (s *Service) PushConfig(ctx context.Context, id ID) error {
	return s.Exclusive(ctx, id, rotateClaimWait, func(ctx context.Context, c *Claim) error {
		return s.pushConfig(ctx, c)
	})
}

// pushConfig pushes the vars recorded on the claimed add-on and records
// them pushed. Writers change vars under the claim, with one exception:
// new credentials saved by a writer whose lease was taken over
// (Service.giveVars), which may land while this push is out. So the push
// is recorded only while the vars are still the ones Heroku got; newer
// ones stay owed, and the writer that saved them has handed their push on.
func (s *Service) pushConfig(ctx context.Context, c *Claim) error {
	a := c.Addon()
	pushed := a.Vars
	if a.Tokens == nil {
		return Errorf(EINVALID, "Add-on %s has no Platform API access (Heroku sent no OAuth grant).", a.ID)
	}
	cfg, err := s.configVars(a.Vars)
	if err != nil {
		return err
	}
	if err := s.withToken(ctx, c, func(token string) error {
		return s.platform.SetConfig(ctx, token, a.ID, cfg)
	}); err != nil {
		return fmt.Errorf("push config: %w", err)
	}
	_, err = c.Record(ctx, func(a *Addon, now time.Time) error {
		if !maps.Equal(a.Vars, pushed) {
			return nil // Heroku got an older set: the newer one is still owed
		}
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
