package addon

// NextJob is the job that moves the add-on on from where it is recorded,
// and false when none is owed. It is the one place that decides: the
// service hands an add-on on with it when a call or a job has changed it,
// the reconciler and the outbox sweep re-enqueue lost work with it, and an
// operator's retry restarts with it, so none of them can drift from the
// others (Store.Stale lists exactly the add-ons it owes a job, see there).
//
//   - provisioning: the grant exchange while Heroku's grant has not been
//     traded for tokens (it comes first, always: it dies in minutes), else
//     the provision job. An add-on provisioned synchronously (no grant) is
//     provisioning only while Heroku's request runs; if one is found later,
//     the web process died inside it, and the provision job gives it up.
//   - deprovisioning: the deprovision job.
//   - provisioned: a pending plan change, else config vars that never
//     reached Heroku (only with Platform API tokens to push them). A halted
//     job (Halted) stops only its own kind until an operator retries it: a
//     halted plan change must not keep a rotation's vars from Heroku. The
//     plan change comes first because its job pushes the config it leaves
//     behind, so one job delivers both; that is also why a retried halted
//     push runs as the plan job while a plan change is pending. A pending
//     plan equal to the current one is owed too: its job clears it.
//   - failed and deprovisioned: nothing; a failed add-on waits for an
//     operator's Retry (until its deadline) or, past Heroku's 12-hour
//     limit, for the reconciler's Service.RemoveLeftover.
func (a *Addon) NextJob() (JobKind, bool) {
	switch a.State {
	case StateProvisioning:
		if a.grantPending() {
			return JobGrant, true
		}
		return JobProvision, true
	case StateDeprovisioning:
		return JobDeprovision, true
	case StateProvisioned:
		switch {
		case a.planOwed():
			return JobPlanChange, true
		case a.pushOwed():
			return JobPushConfig, true
		}
	}
	return "", false
}

// grantPending reports whether Heroku's OAuth grant still waits to be
// exchanged.
func (a *Addon) grantPending() bool {
	return a.Grant != nil && a.GrantExchangedAt.IsZero()
}

// planOwed reports whether a provisioned add-on has a plan change to apply
// that is not halted.
func (a *Addon) planOwed() bool {
	return a.State == StateProvisioned && a.PendingPlan != "" && a.Halted != JobPlanChange
}

// pushOwed reports whether a provisioned add-on has config vars Heroku has
// not got, Platform API tokens to push them, and no halted push.
func (a *Addon) pushOwed() bool {
	return a.State == StateProvisioned && a.ConfigPushedAt.IsZero() && a.Tokens != nil && a.Halted != JobPushConfig
}
