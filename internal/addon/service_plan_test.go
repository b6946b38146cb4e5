package addon_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// changing makes the driver's plan change run fn (another writer acting
// while the driver works) and answer with the new plan's vars, or err.
func changing(f *fixture, fn func(to string), err error) {
	f.driver.ChangePlanFn = func(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
		f.called("ChangePlan %s %s->%s", short(addon.ID(r.ID)), r.Plan.Slug, to.Slug)
		if fn != nil {
			fn(to.Slug)
		}
		if err != nil {
			return nil, err
		}
		return addon.Vars{"URL": "fake://" + to.Slug}, nil
	}
}

// once runs fn at the first store operation op, as another writer acting
// between the service's calls.
func once(f *fixture, op string, fn func()) {
	f.store.Before = func(o string, id addon.ID) error {
		if o == op {
			f.store.Before = nil
			fn()
		}
		return nil
	}
}

func pending(plan string) func(a *addon.Addon) { return func(a *addon.Addon) { a.PendingPlan = plan } }

func haltedPlan(a *addon.Addon) { a.Halted, a.HaltReason = addon.JobPlanChange, "refused before" }

func TestChangePlan(t *testing.T) {
	const background = "Changing plan to pro; the new config will follow."
	down := addon.Errorf(addon.EUNAVAILABLE, "Slow.")
	tests := []struct {
		name    string
		shape   []func(a *addon.Addon)
		setup   func(f *fixture, t *testing.T, id addon.ID)
		slug    string // "pro" when empty
		code    string
		async   bool
		msg     string
		config  map[string]string
		plan    string // stored afterwards
		pending string
		calls   []string
		events  []string
		// retryAfter: the 503 tells Heroku when to try again.
		retryAfter bool
	}{
		{
			name:  "a provisioned add-on changes inside Heroku's call",
			shape: []func(a *addon.Addon){provisioned},
			msg:   "Plan changed to pro.", config: map[string]string{"KILN_URL": "fake://pro"},
			plan:   "pro",
			calls:  []string{"ChangePlan #1 basic->pro"},
			events: []string{"plan: plan changed from basic to pro"},
		},
		{
			name:  "the vars did not change: no config in the answer",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.driver.ChangePlanFn = func(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
					return maps.Clone(r.Vars), nil
				}
			},
			msg: "Plan changed to pro.", plan: "pro",
			events: []string{"plan: plan changed from basic to pro"},
		},
		{
			name:  "a request for the current plan overrides a pending change",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			slug:  "basic",
			msg:   "Plan changed to basic.", plan: "basic",
			calls:  []string{"ChangePlan #1 basic->basic"},
			events: []string{"plan: plan changed from basic to basic"},
		},
		{
			name:  "the same plan",
			shape: []func(a *addon.Addon){provisioned},
			slug:  "basic",
			msg:   "Already on plan basic.", plan: "basic",
		},
		{
			name:  "the same plan, pending already",
			shape: []func(a *addon.Addon){provisioned, func(a *addon.Addon) { a.Plan, a.PendingPlan = "pro", "pro" }},
			msg:   "Already on plan pro.", plan: "pro", pending: "pro",
		},
		{
			name:  "a plan outside the catalog",
			shape: []func(a *addon.Addon){provisioned},
			slug:  "gold", code: addon.EINVALID, plan: "basic",
		},
		{
			name:  "deprovisioning",
			shape: []func(a *addon.Addon){provisioned, inState(addon.StateDeprovisioning, "")},
			code:  addon.EGONE, plan: "basic",
		},
		{
			name:  "deprovisioned",
			shape: []func(a *addon.Addon){inState(addon.StateDeprovisioned, "")},
			code:  addon.EGONE, plan: "basic",
		},
		{
			name:  "still provisioning: applied once provisioning finishes",
			async: true, msg: "Plan change to pro will be applied once provisioning finishes.",
			plan: "basic", pending: "pro",
			events: []string{"plan: plan change to pro recorded; applied once provisioning finishes"},
		},
		{
			name:  "failed: the next retry uses the new plan",
			shape: []func(a *addon.Addon){inState(addon.StateFailed, "boom")},
			msg:   "Plan changed to pro.", plan: "pro",
			events: []string{"plan: plan changed from basic to pro"},
		},
		{
			name:  "failed after its resource was made: applied once provisioned",
			shape: []func(a *addon.Addon){inState(addon.StateFailed, "boom"), func(a *addon.Addon) { a.ResourceCreatedAt = t0 }},
			async: true, msg: "Plan change to pro will be applied once provisioning finishes.",
			plan: "basic", pending: "pro",
			events: []string{"plan: plan change to pro recorded; applied once provisioning finishes"},
		},
		{
			name:  "the same plan while another writer holds the add-on: a job settles it",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) { f.holdLease(t, id) },
			slug:  "basic",
			async: true, msg: "Changing plan to basic; the new config will follow.",
			plan: "basic", pending: "basic",
			calls:  []string{"Enqueue addon:plan #1"},
			events: []string{"plan: plan change to basic continues in the background"},
		},
		{
			name:  "failed, and the change cannot be recorded",
			shape: []func(a *addon.Addon){inState(addon.StateFailed, "boom")},
			setup: func(f *fixture, t *testing.T, id addon.ID) { f.failing("Update", 1) },
			code:  addon.EUNAVAILABLE, plan: "basic",
		},
		{
			name: "provisioning finished between the read and the write",
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				once(f, "Update", func() { f.update(t, id, provisioned) })
			},
			async: true, msg: "Plan change to pro will be applied once provisioning finishes.",
			plan: "basic", pending: "pro",
			calls:  []string{"Enqueue addon:plan #1"},
			events: []string{"plan: plan change to pro recorded; applied once provisioning finishes"},
		},
		{
			name:  "the driver refuses: Heroku shows the refusal",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) { changing(f, nil, errRefused) },
			code:  addon.EINVALID, plan: "basic",
			calls: []string{"ChangePlan #1 basic->pro"},
		},
		{
			name:  "the driver is slow: the change continues in a job",
			shape: []func(a *addon.Addon){provisioned, haltedPlan},
			setup: func(f *fixture, t *testing.T, id addon.ID) { changing(f, nil, down) },
			async: true, msg: background, plan: "basic", pending: "pro",
			calls:  []string{"ChangePlan #1 basic->pro", "Enqueue addon:plan #1"},
			events: []string{"plan: plan change to pro continues in the background"},
		},
		{
			name:  "no tokens: changes inside Heroku's call as any other",
			shape: []func(a *addon.Addon){provisioned, tokenless},
			msg:   "Plan changed to pro.", config: map[string]string{"KILN_URL": "fake://pro"},
			plan:   "pro",
			calls:  []string{"ChangePlan #1 basic->pro"},
			events: []string{"plan: plan changed from basic to pro"},
		},
		{
			name:  "no tokens, another writer holds it: 503, as its config could never follow",
			shape: []func(a *addon.Addon){provisioned, tokenless},
			setup: func(f *fixture, t *testing.T, id addon.ID) { f.holdLease(t, id) },
			code:  addon.EUNAVAILABLE, plan: "basic",
			retryAfter: true,
		},
		{
			name:  "no tokens, the driver is slow: 503",
			shape: []func(a *addon.Addon){provisioned, tokenless},
			setup: func(f *fixture, t *testing.T, id addon.ID) { changing(f, nil, down) },
			code:  addon.EUNAVAILABLE, plan: "basic",
			retryAfter: true,
			calls:      []string{"ChangePlan #1 basic->pro"},
		},
		{
			name:  "no tokens, the writer cannot record the change made: recorded as made, its config in the answer",
			shape: []func(a *addon.Addon){provisioned, tokenless},
			setup: func(f *fixture, t *testing.T, id addon.ID) { f.refusing("Record") },
			msg:   "Plan changed to pro.", config: map[string]string{"KILN_URL": "fake://pro"},
			plan:   "pro",
			calls:  []string{"ChangePlan #1 basic->pro"},
			events: []string{"plan: plan changed from basic to pro"},
		},
		{
			name:  "no tokens, the change made cannot be recorded and another writer changed the add-on: 503",
			shape: []func(a *addon.Addon){provisioned, tokenless},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				changing(f, func(string) {
					f.update(t, id, func(a *addon.Addon) { a.Vars = addon.Vars{"URL": "fake://other"} })
					f.refusing("Record")
				}, nil)
			},
			code: addon.EUNAVAILABLE, plan: "basic",
			calls:      []string{"ChangePlan #1 basic->pro"},
			retryAfter: true,
		},
		{
			name:  "no tokens, still provisioning inside Heroku's request: 503",
			shape: []func(a *addon.Addon){synchronous},
			code:  addon.EUNAVAILABLE, plan: "basic",
			retryAfter: true,
		},
		{
			name:  "another writer holds the add-on: the change waits for it",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) { f.holdLease(t, id) },
			async: true, msg: background, plan: "basic", pending: "pro",
			calls:  []string{"Enqueue addon:plan #1"},
			events: []string{"plan: plan change to pro continues in the background"},
		},
		{
			name:  "the change made cannot be recorded: a job applies it again",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) { f.refusing("Record") },
			async: true, msg: background, plan: "basic", pending: "pro",
			calls:  []string{"ChangePlan #1 basic->pro", "Enqueue addon:plan #1"},
			events: []string{"plan: plan change to pro continues in the background"},
		},
		{
			name:  "deprovisioned before the claim",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				once(f, "Acquire", func() {
					if err := f.svc.Deprovision(context.Background(), id); err != nil {
						t.Fatal(err)
					}
				})
			},
			code: addon.EGONE, plan: "basic",
			calls:  []string{"Enqueue addon:deprovision #1"},
			events: []string{"state deprovisioning: deprovision requested by Heroku"},
		},
		{
			name:  "the pending change was dropped before the claim",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				once(f, "Acquire", func() { f.update(t, id, pending("")) })
			},
			slug: "basic", msg: "Already on plan basic.", plan: "basic",
		},
		{
			name:  "the claim fails: Heroku retries",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) { f.failing("Acquire", -1) },
			code:  addon.EUNAVAILABLE, plan: "basic",
		},
		{
			name:  "the change can neither be made nor recorded for a job",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				changing(f, func(string) { f.failing("Update", -1) }, down)
			},
			code: addon.EUNAVAILABLE, plan: "basic",
			calls: []string{"ChangePlan #1 basic->pro"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, id := arrange(t, tt.shape, tt.setup)
			slug := tt.slug
			if slug == "" {
				slug = "pro"
			}
			pc, err := f.svc.ChangePlan(context.Background(), id, slug)
			wantCode(t, err, tt.code)
			if tt.retryAfter && addon.RetryAfter(err) == 0 {
				t.Errorf("a 503 without Retry-After: %v", err)
			}
			if err == nil {
				if pc.Async != tt.async || pc.Message != tt.msg || !maps.Equal(pc.Config, tt.config) || pc.Addon == nil {
					t.Errorf("answer %+v, want async %v, %q, config %v", pc, tt.async, tt.msg, tt.config)
				}
			}
			f.store.Before = nil
			a := f.get(t, id)
			if a.Plan != tt.plan || a.PendingPlan != tt.pending {
				t.Errorf("plan %q, pending %q; want %q, %q", a.Plan, a.PendingPlan, tt.plan, tt.pending)
			}
			if tt.async && a.Halted != "" {
				t.Errorf("halted %q kept: Heroku's new request is worth a new try", a.Halted)
			}
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
			if a.LeaseOwner == "test.1" {
				t.Error("the change left its lease held")
			}
		})
	}
}

// TestChangePlanSyncDetails: the driver works within Heroku's answer
// budget, and a change applied at once clears a halted older one.
func TestChangePlanSyncDetails(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, provisioned, haltedPlan)
	changing(f, nil, nil)
	inner := f.driver.ChangePlanFn
	f.driver.ChangePlanFn = func(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > addon.SyncBudget {
			t.Errorf("the driver runs without Heroku's budget (deadline %v, %v)", dl, ok)
		}
		if r.Plan.Slug != "basic" || to.Slug != "pro" || to.Limits["requests_per_second"] != 50 {
			t.Errorf("driver told %+v -> %+v", r.Plan, to)
		}
		return inner(ctx, r, to)
	}
	if _, err := f.svc.ChangePlan(context.Background(), id, "pro"); err != nil {
		t.Fatal(err)
	}
	if a := f.get(t, id); a.Halted != "" || a.HaltReason != "" {
		t.Errorf("halted %q (%q) kept after Heroku's newest plan was applied", a.Halted, a.HaltReason)
	}
	f.wantFree(t, id)
}

func TestChangePlanUnknown(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.ChangePlan(context.Background(), f.nextID(), "pro")
	wantCode(t, err, addon.ENOTFOUND)
}

func TestPlanChangeJob(t *testing.T) {
	const (
		toPro   = "ChangePlan #1 basic->pro"
		pushPro = "SetConfig #1 access-1 KILN_URL=fake://pro"
		changed = "plan: plan changed from basic to pro"
		pushed  = "step: config vars pushed"
	)
	forbidden := addon.Errorf(addon.EFORBIDDEN, "The resource is locked.")
	tests := []struct {
		name    string
		shape   []func(a *addon.Addon)
		setup   func(f *fixture, t *testing.T, id addon.ID)
		code    string
		busy    bool
		plan    string
		pending string
		halted  addon.JobKind
		calls   []string
		events  []string
	}{
		{
			name:  "the pending change is applied and its config pushed",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			plan:  "pro",
			calls: []string{toPro, pushPro}, events: []string{changed, pushed},
		},
		{
			name:  "nothing pending",
			shape: []func(a *addon.Addon){provisioned},
			plan:  "basic",
		},
		{
			name:  "still provisioning: provisioning enqueues the change when it finishes",
			shape: []func(a *addon.Addon){exchanged, pending("pro")},
			plan:  "basic", pending: "pro",
		},
		{
			name:  "halted: left for an operator",
			shape: []func(a *addon.Addon){provisioned, pending("pro"), haltedPlan},
			plan:  "basic", pending: "pro", halted: addon.JobPlanChange,
		},
		{
			name:  "pending the plan it is on: cleared",
			shape: []func(a *addon.Addon){provisioned, pending("basic")},
			plan:  "basic",
		},
		{
			name:  "without Platform API access: applied, nothing pushed",
			shape: []func(a *addon.Addon){provisioned, pending("pro"), func(a *addon.Addon) { a.Tokens = nil }},
			plan:  "pro",
			calls: []string{toPro}, events: []string{changed},
		},
		{
			name:   "a plan that left the catalog: refused in the audit trail",
			shape:  []func(a *addon.Addon){provisioned, pending("gold")},
			plan:   "basic",
			events: []string{`plan: plan change to gold refused: Unknown plan "gold". Available plans: basic, pro, test.`},
		},
		{
			name:  "the driver refuses: refused in the audit trail, the plan stays",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			setup: func(f *fixture, t *testing.T, id addon.ID) { changing(f, nil, errRefused) },
			plan:  "basic",
			calls: []string{toPro}, events: []string{"plan: plan change to pro refused: Refused for good."},
		},
		{
			name:  "the driver is down: retried",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				changing(f, nil, addon.Errorf(addon.EUNAVAILABLE, "Down."))
			},
			code: addon.EUNAVAILABLE, plan: "basic", pending: "pro",
			calls: []string{toPro},
		},
		{
			name:  "the driver fails for good: halted until an operator retries",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			setup: func(f *fixture, t *testing.T, id addon.ID) { changing(f, nil, forbidden) },
			code:  addon.EFORBIDDEN, plan: "basic", pending: "pro", halted: addon.JobPlanChange,
			calls: []string{toPro}, events: []string{"halted: addon:plan stopped: The resource is locked."},
		},
		{
			name:  "the driver fails for good on a plan Heroku no longer wants: the newer one is tried",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				changing(f, func(to string) {
					if to == "pro" {
						f.update(t, id, pending("test"))
						changing(f, nil, nil)
					}
				}, forbidden)
			},
			plan:  "test",
			calls: []string{toPro, "ChangePlan #1 basic->test", "SetConfig #1 access-1 KILN_URL=fake://test"},
			events: []string{"plan: plan change to pro failed (The resource is locked.); plan test asked for since is tried next",
				"plan: plan changed from basic to test", pushed},
		},
		{
			name:  "a newer plan arrives while the driver works: applied before the job lets go",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				changing(f, func(to string) {
					if to == "pro" {
						f.update(t, id, pending("test"))
					}
				}, nil)
			},
			plan:   "test",
			calls:  []string{toPro, "ChangePlan #1 pro->test", "SetConfig #1 access-1 KILN_URL=fake://test"},
			events: []string{changed, "plan: plan changed from pro to test", pushed},
		},
		{
			name:  "the change made cannot be recorded: retried",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				changing(f, func(string) { f.failing("Record", 1) }, nil)
			},
			code: addon.EUNAVAILABLE, plan: "basic", pending: "pro",
			calls: []string{toPro},
		},
		{
			name:  "the driver fails for good and the halt cannot be recorded",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				changing(f, func(string) { f.failing("Record", 1) }, forbidden)
			},
			// The store's code: the halt has not happened, so the job is
			// retried rather than dropped as permanent.
			code: addon.EUNAVAILABLE, plan: "basic", pending: "pro",
			calls: []string{toPro},
		},
		{
			name:  "the push fails: retried, the plan is recorded",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				setConfig(f, "access-1", addon.Errorf(addon.EUNAVAILABLE, "Down."))
			},
			code: addon.EUNAVAILABLE, plan: "pro",
			calls: []string{toPro, pushPro}, events: []string{changed},
		},
		{
			name:  "the push is refused for good: halted until an operator retries it",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				setConfig(f, "access-1", addon.Errorf(addon.EINVALID, "Config refused."))
			},
			code: addon.EINVALID, plan: "pro", halted: addon.JobPushConfig,
			calls:  []string{toPro, pushPro},
			events: []string{changed, "halted: addon:config stopped: Config refused."},
		},
		{
			name: "an older push was halted: this change's config is pushed all the same",
			shape: []func(a *addon.Addon){provisioned, pending("pro"), func(a *addon.Addon) {
				a.ConfigPushedAt = time.Time{}
				a.Halted, a.HaltReason = addon.JobPushConfig, "refused before"
			}},
			plan:  "pro",
			calls: []string{toPro, pushPro}, events: []string{changed, pushed},
		},
		{
			name:  "a change recorded during the final push: the job comes back soon",
			shape: []func(a *addon.Addon){provisioned, pending("pro")},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.platform.SetConfigFn = func(ctx context.Context, tok string, id addon.ID, vars map[string]*string) error {
					f.called("SetConfig %s %s %s", short(id), tok, config(vars))
					f.update(t, id, pending("test"))
					return nil
				}
			},
			busy: true, plan: "pro", pending: "test",
			calls: []string{toPro, pushPro}, events: []string{changed, pushed},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, id := arrange(t, tt.shape, tt.setup)
			err := f.svc.PlanChangeJob(context.Background(), id)
			if tt.busy {
				if !addon.IsBusy(err) {
					t.Errorf("PlanChangeJob = %v, want busy", err)
				}
			} else {
				wantCode(t, err, tt.code)
			}
			a := f.get(t, id)
			if a.Plan != tt.plan || a.PendingPlan != tt.pending || a.Halted != tt.halted {
				t.Errorf("plan %q, pending %q, halted %q; want %q, %q, %q", a.Plan, a.PendingPlan, a.Halted, tt.plan, tt.pending, tt.halted)
			}
			if want := "fake://" + tt.plan; a.State == addon.StateProvisioned && a.Vars["URL"] != want {
				t.Errorf("vars %v, want the plan's (%s)", a.Vars, want)
			}
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
			f.wantFree(t, id)
		})
	}
}

// TestPlanChangeJobKeepsChanging: a plan that changes on every driver call
// ends the job after ten tries with a retryable error.
func TestPlanChangeJobKeepsChanging(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, provisioned, pending("pro"))
	n := 0
	changing(f, func(string) {
		n++
		f.update(t, id, pending([]string{"pro", "test"}[n%2]))
	}, nil)
	err := f.svc.PlanChangeJob(context.Background(), id)
	wantCode(t, err, addon.EINTERNAL)
	if n != 10 {
		t.Errorf("driver called %d times, want 10", n)
	}
	f.wantFree(t, id)
}

func TestPlanChangeJobBusy(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, provisioned, pending("pro"))
	f.holdLease(t, id)
	if err := f.svc.PlanChangeJob(context.Background(), id); !addon.IsBusy(err) {
		t.Errorf("PlanChangeJob on a held add-on = %v, want busy", err)
	}
	f.wantCalls(t)
}

// TestPlanChangeKeepsNewerCredentials: credentials another writer stored
// while a plan change's driver call ran (a rotation whose lease lapsed
// saves them anyway: the resource honours only them now) are kept when
// the call gives back the vars it was given, in the job and inside
// Heroku's call alike, and they are what reaches Heroku; writing the
// claimed ones back would leave the app a dead key.
func TestPlanChangeKeepsNewerCredentials(t *testing.T) {
	const rotated = "fake://basic?rotated"
	tests := []struct {
		name   string
		job    bool
		got    func(r addon.Resource) addon.Vars // what ChangePlan gives back
		want   string                            // URL stored afterwards
		calls  []string
		config map[string]string // Heroku's answer, inside its call
	}{
		{
			name:  "job: the change gives back what it was given",
			job:   true,
			got:   func(r addon.Resource) addon.Vars { return r.Vars },
			want:  rotated,
			calls: []string{"ChangePlan #1 basic->pro", "SetConfig #1 access-1 KILN_URL=" + rotated},
		},
		{
			name:  "job: the change makes new vars too: the lease holder's are recorded",
			job:   true,
			got:   func(r addon.Resource) addon.Vars { return addon.Vars{"URL": "fake://pro"} },
			want:  "fake://pro",
			calls: []string{"ChangePlan #1 basic->pro", "SetConfig #1 access-1 KILN_URL=fake://pro"},
		},
		{
			name:   "inside Heroku's call: the change gives back what it was given",
			got:    func(r addon.Resource) addon.Vars { return r.Vars },
			want:   rotated,
			calls:  []string{"ChangePlan #1 basic->pro"},
			config: map[string]string{"KILN_URL": rotated},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shape := []func(a *addon.Addon){provisioned}
			if tt.job {
				shape = append(shape, pending("pro"))
			}
			f, id := arrange(t, shape, nil)
			f.driver.ChangePlanFn = func(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
				f.called("ChangePlan %s %s->%s", short(addon.ID(r.ID)), r.Plan.Slug, to.Slug)
				// A rotation that lost its lease saves its new
				// credentials without one (giveVars).
				f.update(t, id, func(a *addon.Addon) { a.Vars = addon.Vars{"URL": rotated} })
				return tt.got(r), nil
			}
			if tt.job {
				if err := f.svc.PlanChangeJob(context.Background(), id); err != nil {
					t.Fatalf("PlanChangeJob = %v", err)
				}
			} else {
				pc, err := f.svc.ChangePlan(context.Background(), id, "pro")
				if err != nil {
					t.Fatalf("ChangePlan = %v", err)
				}
				if !maps.Equal(pc.Config, tt.config) {
					t.Errorf("config for Heroku %v, want %v", pc.Config, tt.config)
				}
			}
			a := f.get(t, id)
			if a.Plan != "pro" || a.Vars["URL"] != tt.want {
				t.Errorf("plan %q, vars %v; want pro with URL %s", a.Plan, a.Vars, tt.want)
			}
			f.wantCalls(t, tt.calls...)
			f.wantFree(t, id)
		})
	}
}

// TestChangePlanLeaseLostWhileDriverWorks: when the claim's renewal finds
// the lease taken over while the driver changes the plan inside Heroku's
// call, the change it could not record continues as a job (pending, 202),
// not as an error that leaves Heroku on the old plan and the resource on
// the new one.
func TestChangePlanLeaseLostWhileDriverWorks(t *testing.T) {
	f := newFixture(t, func(o *addon.Options) { o.LeaseTTL = 30 * time.Millisecond })
	id := f.add(t, provisioned)
	f.driver.ChangePlanFn = func(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
		f.advance(time.Minute)
		f.holdLease(t, id)
		lostLease(t, ctx)
		return addon.Vars{"URL": "fake://" + to.Slug}, nil
	}
	pc, err := f.svc.ChangePlan(context.Background(), id, "pro")
	if err != nil || !pc.Async {
		t.Fatalf("ChangePlan = %+v, %v; want it to continue as a job", pc, err)
	}
	if a := f.get(t, id); a.Plan != "basic" || a.PendingPlan != "pro" {
		t.Errorf("plan %q, pending %q; want basic, pro (for the job)", a.Plan, a.PendingPlan)
	}
}
