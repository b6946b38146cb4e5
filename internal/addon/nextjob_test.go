package addon_test

import (
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestNextJob covers the one rule that decides an add-on's next job, for
// every state and the flags that matter in it (grant, halts, pending plan,
// unpushed config, synchronous add-ons), and checks that lifting a halt (an
// operator's Retry) makes the halted kind next.
func TestNextJob(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	type shape = func(*addon.Addon)
	// The add-ons as the pipeline leaves them.
	var (
		// accepted: Heroku's provision call recorded, its grant not exchanged.
		accepted shape = func(a *addon.Addon) {
			a.State = addon.StateProvisioning
			a.Grant = &addon.Grant{Code: "code", ExpiresAt: t0.Add(5 * time.Minute)}
		}
		// exchanging: a grant exchange started, its answer not recorded.
		exchanging shape = func(a *addon.Addon) { accepted(a); a.ExchangeStartedAt = t0 }
		// exchanged: the grant traded for tokens, the resource still to make.
		exchanged shape = func(a *addon.Addon) {
			a.State = addon.StateProvisioning
			a.GrantExchangedAt = t0
			a.Tokens = &addon.Tokens{Access: "access", Refresh: "refresh", ExpiresAt: t0.Add(time.Hour)}
		}
		// created: the resource made and its config pushed, Heroku not told.
		created shape = func(a *addon.Addon) {
			exchanged(a)
			a.ResourceCreatedAt, a.ConfigPushedAt = t0, t0
			a.Vars = addon.Vars{"URL": "fake://x"}
		}
		// synchronous: Heroku sent no grant; the web process provisions it.
		synchronous shape = func(a *addon.Addon) { a.State = addon.StateProvisioning }
		// provisioned: done, its config on Heroku.
		provisioned shape = func(a *addon.Addon) { created(a); a.ProvisionedAt = t0; a.State = addon.StateProvisioned }
		// provisionedSync: done without a grant, so without tokens.
		provisionedSync shape = func(a *addon.Addon) {
			a.State = addon.StateProvisioned
			a.ResourceCreatedAt = t0
			a.Vars = addon.Vars{"URL": "fake://x"}
		}
		// Flags on top of a state.
		unpushed shape = func(a *addon.Addon) { a.ConfigPushedAt = time.Time{} }
		flagged  shape = func(a *addon.Addon) { a.Requeue = true }
		pending        = func(plan string) shape { return func(a *addon.Addon) { a.PendingPlan = plan } }
		halted         = func(k addon.JobKind) shape { return func(a *addon.Addon) { a.Halted, a.HaltReason = k, "refused" } }
		in             = func(s addon.State) shape { return func(a *addon.Addon) { a.State = s } }
		of             = func(fs ...shape) []shape { return fs }
		build          = func(fs []shape) *addon.Addon {
			a := &addon.Addon{ID: "01234567-89ab-cdef-0123-456789abcdef", Plan: "test", CreatedAt: t0, UpdatedAt: t0}
			for _, f := range fs {
				f(a)
			}
			return a
		}
	)
	const none = addon.JobKind("")

	t.Run("by state", func(t *testing.T) {
		tests := []struct {
			name  string
			shape []shape
			want  addon.JobKind
		}{
			// Provisioning: the grant first, always, then the provision job.
			{"provisioning, grant not exchanged", of(accepted), addon.JobGrant},
			{"provisioning, grant exchange started", of(exchanging), addon.JobGrant},
			{"provisioning, grant not exchanged, plan pending", of(accepted, pending("pro")), addon.JobGrant},
			{"provisioning, grant not exchanged, flagged for the outbox", of(accepted, flagged), addon.JobGrant},
			{"provisioning, grant exchanged", of(exchanged), addon.JobProvision},
			{"provisioning, resource created and config pushed", of(created), addon.JobProvision},
			{"provisioning, grant exchanged, plan pending", of(exchanged, pending("pro")), addon.JobProvision},
			{"provisioning, grant exchanged, a halt recorded", of(exchanged, halted(addon.JobPlanChange)), addon.JobProvision},
			{"provisioning synchronously (the provision job gives it up)", of(synchronous), addon.JobProvision},

			// Deprovisioning: the deprovision job, whatever else was owed.
			{"deprovisioning", of(provisioned, in(addon.StateDeprovisioning)), addon.JobDeprovision},
			{"deprovisioning, grant never exchanged", of(accepted, in(addon.StateDeprovisioning)), addon.JobDeprovision},
			{"deprovisioning, plan pending, config unpushed", of(provisioned, pending("pro"), unpushed, in(addon.StateDeprovisioning)), addon.JobDeprovision},
			{"deprovisioning, synchronous", of(provisionedSync, in(addon.StateDeprovisioning)), addon.JobDeprovision},

			// Provisioned: a pending plan, then unpushed config, each unless halted.
			{"provisioned, nothing owed", of(provisioned), none},
			{"provisioned, nothing owed, flagged for the outbox", of(provisioned, flagged), none},
			{"provisioned, plan pending", of(provisioned, pending("pro")), addon.JobPlanChange},
			{"provisioned, pending plan is the current one (its job clears it)", of(provisioned, pending("test")), addon.JobPlanChange},
			{"provisioned, plan pending, config unpushed", of(provisioned, pending("pro"), unpushed), addon.JobPlanChange},
			{"provisioned, config unpushed", of(provisioned, unpushed), addon.JobPushConfig},
			{"provisioned, plan change halted", of(provisioned, pending("pro"), halted(addon.JobPlanChange)), none},
			{"provisioned, plan change halted, config unpushed", of(provisioned, pending("pro"), halted(addon.JobPlanChange), unpushed), addon.JobPushConfig},
			{"provisioned, push halted", of(provisioned, unpushed, halted(addon.JobPushConfig)), none},
			{"provisioned, push halted, plan pending", of(provisioned, unpushed, halted(addon.JobPushConfig), pending("pro")), addon.JobPlanChange},
			{"provisioned, push halted, config pushed since", of(provisioned, halted(addon.JobPushConfig)), none},
			{"provisioned synchronously, config never pushed", of(provisionedSync), none},
			{"provisioned synchronously, plan pending", of(provisionedSync, pending("pro")), addon.JobPlanChange},

			// Failed and deprovisioned: nothing until an operator acts.
			{"failed, grant not exchanged", of(accepted, in(addon.StateFailed)), none},
			{"failed, grant exchanged, plan pending", of(exchanged, pending("pro"), in(addon.StateFailed)), none},
			{"failed synchronously", of(synchronous, in(addon.StateFailed)), none},
			{"failed, flagged for the outbox", of(exchanged, flagged, in(addon.StateFailed)), none},
			{"deprovisioned", of(provisioned, in(addon.StateDeprovisioned)), none},
			{"deprovisioned, plan pending, config unpushed", of(provisioned, pending("pro"), unpushed, in(addon.StateDeprovisioned)), none},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, ok := build(tt.shape).NextJob()
				if got != tt.want || ok != (tt.want != none) {
					t.Errorf("NextJob() = %q, %v; want %q, %v", got, ok, tt.want, tt.want != none)
				}
			})
		}
	})

	// An operator's Retry lifts a halt and hands the add-on on by NextJob:
	// the halted kind, except that a halted push with a plan change pending
	// runs as the plan job, which pushes last.
	t.Run("after a halt is lifted", func(t *testing.T) {
		tests := []struct {
			name  string
			shape []shape
			want  addon.JobKind
		}{
			{"plan change", of(provisioned, pending("pro"), halted(addon.JobPlanChange)), addon.JobPlanChange},
			{"plan change, config unpushed", of(provisioned, pending("pro"), unpushed, halted(addon.JobPlanChange)), addon.JobPlanChange},
			{"push", of(provisioned, unpushed, halted(addon.JobPushConfig)), addon.JobPushConfig},
			{"push, plan pending", of(provisioned, unpushed, pending("pro"), halted(addon.JobPushConfig)), addon.JobPlanChange},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a := build(tt.shape)
				if got, _ := a.NextJob(); got == a.Halted {
					t.Fatalf("NextJob() = %q while it is halted", got)
				}
				a.Halted, a.HaltReason = "", ""
				if got, ok := a.NextJob(); got != tt.want || !ok {
					t.Errorf("NextJob() after the halt was lifted = %q, %v; want %q", got, ok, tt.want)
				}
			})
		}
	})
}
