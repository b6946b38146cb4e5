package addon_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/addon/mock"
)

func TestDeprovision(t *testing.T) {
	const requested = "deprovision requested by Heroku"
	enqueued := []string{"Enqueue addon:deprovision #1"}
	runJobCases(t, []jobCase{
		{name: "provisioned", shape: []func(a *addon.Addon){provisioned},
			state: addon.StateDeprovisioning, reason: requested, calls: enqueued, events: []string{"state deprovisioning: " + requested}},
		{name: "still provisioning: the pipeline stops at its next step",
			state: addon.StateDeprovisioning, reason: requested, calls: enqueued, events: []string{"state deprovisioning: " + requested}},
		{name: "failed", shape: []func(a *addon.Addon){inState(addon.StateFailed, "boom")},
			state: addon.StateDeprovisioning, reason: requested, calls: enqueued, events: []string{"state deprovisioning: " + requested}},
		{name: "a repeat while the job runs", shape: []func(a *addon.Addon){inState(addon.StateDeprovisioning, requested)},
			state: addon.StateDeprovisioning, reason: requested, calls: enqueued},
		{name: "a repeat after the job finished", shape: []func(a *addon.Addon){inState(addon.StateDeprovisioned, "resource destroyed")},
			code: addon.EGONE, state: addon.StateDeprovisioned, reason: "resource destroyed"},
	}, (*addon.Service).Deprovision)
	t.Run("unknown", func(t *testing.T) {
		f := newFixture(t)
		wantCode(t, f.svc.Deprovision(context.Background(), f.nextID()), addon.ENOTFOUND)
		f.wantCalls(t)
	})
	t.Run("the queue is down: flagged for the outbox", func(t *testing.T) {
		f := newFixture(t)
		id := f.add(t, provisioned)
		f.queue.EnqueueFn = func(context.Context, addon.JobKind, addon.ID) error {
			return addon.Errorf(addon.EUNAVAILABLE, "Redis is down.")
		}
		if err := f.svc.Deprovision(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if a := f.wantState(t, id, addon.StateDeprovisioning, requested); !a.Requeue {
			t.Error("not flagged for the outbox")
		}
	})
}

func TestDeprovisionJob(t *testing.T) {
	deprovisioning := inState(addon.StateDeprovisioning, "deprovision requested by Heroku")
	tests := []struct {
		name    string
		shape   []func(a *addon.Addon)
		setup   func(f *fixture, t *testing.T, id addon.ID)
		code    string
		state   addon.State
		calls   []string
		events  []string
		cleared bool // secrets dropped
	}{
		{
			name:  "the resource is destroyed and the secrets dropped",
			shape: []func(a *addon.Addon){provisioned, deprovisioning, func(a *addon.Addon) { a.Requeue = true }},
			state: addon.StateDeprovisioned, cleared: true,
			calls:  []string{"Destroy #1 basic"},
			events: []string{"state deprovisioned: resource destroyed"},
		},
		{
			name:  "not deprovisioning",
			shape: []func(a *addon.Addon){provisioned},
			state: addon.StateProvisioned,
		},
		{
			name:  "the driver refuses: retried all the same",
			shape: []func(a *addon.Addon){provisioned, deprovisioning},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.driver.DestroyFn = func(context.Context, addon.Resource) error { f.called("Destroy"); return errRefused }
			},
			code: addon.EINTERNAL, state: addon.StateDeprovisioning,
			calls: []string{"Destroy"},
		},
		{
			name:  "the driver is down: retried",
			shape: []func(a *addon.Addon){provisioned, deprovisioning},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.driver.DestroyFn = func(context.Context, addon.Resource) error {
					f.called("Destroy")
					return addon.Errorf(addon.ERATELIMIT, "Slow down.")
				}
			},
			code: addon.ERATELIMIT, state: addon.StateDeprovisioning,
			calls: []string{"Destroy"},
		},
		{
			name:  "the end cannot be recorded: retried",
			shape: []func(a *addon.Addon){provisioned, deprovisioning},
			setup: func(f *fixture, t *testing.T, id addon.ID) { f.failing("Record", 1) },
			code:  addon.EUNAVAILABLE, state: addon.StateDeprovisioning,
			calls: []string{"Destroy #1 basic"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, id := arrange(t, tt.shape, tt.setup)
			err := f.svc.DeprovisionJob(context.Background(), id)
			wantCode(t, err, tt.code)
			if err != nil && !addon.Transient(err) {
				t.Errorf("DeprovisionJob = %v: every failure must be retried", err)
			}
			f.store.Before = nil
			a := f.get(t, id)
			if a.State != tt.state {
				t.Errorf("state %s, want %s", a.State, tt.state)
			}
			if cleared := a.Vars == nil && a.Tokens == nil && a.Grant == nil && !a.Requeue && a.DeprovisionedAt.Equal(t0); cleared != tt.cleared {
				t.Errorf("secrets dropped and end recorded: %v, want %v (%+v)", cleared, tt.cleared, a)
			}
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
			f.wantFree(t, id)
		})
	}
}

// TestDeprovisionJobTellsTheDriver: the driver destroys what the add-on
// holds: its vars are how it finds the resource.
func TestDeprovisionJobTellsTheDriver(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, provisioned, inState(addon.StateDeprovisioning, ""))
	var got addon.Resource
	f.driver.DestroyFn = func(ctx context.Context, r addon.Resource) error { got = r; return nil }
	if err := f.svc.DeprovisionJob(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if got.ID != string(id) || got.Plan.Slug != "basic" || got.Vars["URL"] != "fake://basic" {
		t.Errorf("driver told %+v", got)
	}
}

func TestForceDeprovision(t *testing.T) {
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		reason string
		code   string
		state  addon.State
		want   string // the reason recorded
		calls  []string
	}{
		{"with the operator's reason", []func(a *addon.Addon){provisioned}, " abuse ", "",
			addon.StateDeprovisioning, "forced by an operator: abuse", []string{"Enqueue addon:deprovision #1"}},
		{"without a reason", []func(a *addon.Addon){provisioned}, "  ", "",
			addon.StateDeprovisioning, "forced by an operator", []string{"Enqueue addon:deprovision #1"}},
		{"already deprovisioning: unchanged", []func(a *addon.Addon){inState(addon.StateDeprovisioning, "deprovision requested by Heroku")}, "abuse", "",
			addon.StateDeprovisioning, "deprovision requested by Heroku", []string{"Enqueue addon:deprovision #1"}},
		{"deprovisioned", []func(a *addon.Addon){inState(addon.StateDeprovisioned, "resource destroyed")}, "abuse", addon.EGONE,
			addon.StateDeprovisioned, "resource destroyed", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			id := f.add(t, tt.shape...)
			a, err := f.svc.ForceDeprovision(context.Background(), id, tt.reason)
			wantCode(t, err, tt.code)
			if err == nil && (a == nil || a.Reason != tt.want) {
				t.Errorf("answered %+v, want reason %q", a, tt.want)
			}
			f.wantState(t, id, tt.state, tt.want)
			f.wantCalls(t, tt.calls...)
		})
	}
}

func TestFail(t *testing.T) {
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		code   string
		state  addon.State
		reason string
	}{
		{"provisioning", nil, "", addon.StateFailed, "given up"},
		{"provisioned: left alone", []func(a *addon.Addon){provisioned}, "", addon.StateProvisioned, ""},
		{"deprovisioning: left alone", []func(a *addon.Addon){inState(addon.StateDeprovisioning, "x")}, "", addon.StateDeprovisioning, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			id := f.add(t, tt.shape...)
			wantCode(t, f.svc.Fail(context.Background(), id, "given up"), tt.code)
			f.wantState(t, id, tt.state, tt.reason)
		})
	}
	t.Run("unknown", func(t *testing.T) {
		f := newFixture(t)
		wantCode(t, f.svc.Fail(context.Background(), f.nextID(), "x"), addon.ENOTFOUND)
	})
}

func TestGiveUp(t *testing.T) {
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		setup  func(f *fixture, t *testing.T, id addon.ID)
		code   string
		busy   bool
		state  addon.State
		reason string
		calls  []string
		events []string
	}{
		{
			name:  "the resource is destroyed and the add-on fails",
			shape: []func(a *addon.Addon){exchanged},
			state: addon.StateFailed, reason: "too late",
			calls: []string{"Destroy #1 basic"}, events: []string{"state failed: too late"},
		},
		{
			name:  "no longer provisioning: left alone",
			shape: []func(a *addon.Addon){provisioned},
			state: addon.StateProvisioned,
		},
		{
			name:  "the cleanup fails: left for the next sweep",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.driver.DestroyFn = func(context.Context, addon.Resource) error { f.called("Destroy"); return errRefused }
			},
			code: addon.EINTERNAL, state: addon.StateProvisioning,
			calls: []string{"Destroy"},
		},
		{
			name:  "deprovisioned while the resource is destroyed: not failed",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.driver.DestroyFn = func(ctx context.Context, r addon.Resource) error {
					f.called("Destroy")
					return f.svc.Deprovision(ctx, id)
				}
			},
			state: addon.StateDeprovisioning, reason: "deprovision requested by Heroku",
			calls:  []string{"Destroy", "Enqueue addon:deprovision #1"},
			events: []string{"state deprovisioning: deprovision requested by Heroku"},
		},
		{
			name:  "another writer holds it: left for the next sweep",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) { f.holdLease(t, id) },
			busy:  true, state: addon.StateProvisioning,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, id := arrange(t, tt.shape, tt.setup)
			left, err := f.svc.GiveUp(context.Background(), id, "too late")
			if err == nil && left != tt.state {
				t.Errorf("GiveUp left %s, want %s", left, tt.state)
			}
			if tt.busy {
				if !addon.IsBusy(err) {
					t.Errorf("GiveUp = %v, want busy", err)
				}
			} else {
				wantCode(t, err, tt.code)
			}
			f.wantState(t, id, tt.state, tt.reason)
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
		})
	}
}

// TestGiveUpAsksHeroku: before a give-up destroys a recorded resource it
// asks Heroku for the add-on: an earlier attempt may have marked it
// provisioned and lost only the record of that, and then the customer
// has it (and pays for it) with these credentials. Only a definite "not
// provisioned" (still provisioning, 404, a refused token) lets it go on.
func TestGiveUpAsksHeroku(t *testing.T) {
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		answer func(ctx context.Context, token string, id addon.ID) (addon.HerokuAddon, error)
		code   string
		state  addon.State
		reason string
		asked  bool
		calls  []string
	}{
		{"Heroku has it provisioned: recorded so, nothing destroyed", []func(a *addon.Addon){exchanged, withResource}, herokuSays("provisioned", nil), "",
			addon.StateProvisioned, "", true, nil},
		{"Heroku has it provisioning: destroyed, failed", []func(a *addon.Addon){exchanged, withResource}, herokuSays("provisioning", nil), "",
			addon.StateFailed, "too late", true, []string{"Destroy #1 basic"}},
		{"Heroku answers 404: destroyed, failed", []func(a *addon.Addon){exchanged, withResource}, herokuSays("", addon.NotFound(addon.ID("x"))), "",
			addon.StateFailed, "too late", true, []string{"Destroy #1 basic"}},
		{"Heroku unreachable: nothing destroyed, tried again later", []func(a *addon.Addon){exchanged, withResource}, herokuSays("", errDown), addon.EUNAVAILABLE,
			addon.StateProvisioning, "", true, nil},
		{"no resource recorded: nothing to ask", []func(a *addon.Addon){exchanged}, herokuSays("provisioned", nil), "",
			addon.StateFailed, "too late", false, []string{"Destroy #1 basic"}},
		{"no tokens: nothing to ask with", []func(a *addon.Addon){withResource}, herokuSays("provisioned", nil), "",
			addon.StateFailed, "too late", false, []string{"Destroy #1 basic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, id := arrange(t, tt.shape, nil)
			asked := false
			f.asking(&mock.Watcher{GetAddonFn: func(ctx context.Context, token string, id addon.ID) (addon.HerokuAddon, error) {
				asked = true
				return tt.answer(ctx, token, id)
			}})
			left, err := f.svc.GiveUp(context.Background(), id, "too late")
			if err == nil && left != tt.state {
				t.Errorf("GiveUp left %s, want %s", left, tt.state)
			}
			wantCode(t, err, tt.code)
			a := f.wantState(t, id, tt.state, tt.reason)
			if asked != tt.asked {
				t.Errorf("Heroku asked: %v, want %v", asked, tt.asked)
			}
			if tt.state == addon.StateProvisioned && (a.Vars["URL"] != "fake://basic" || a.ConfigPushedAt.IsZero() || a.ProvisionedAt.IsZero()) {
				t.Errorf("recorded vars %v, pushed %v, provisioned %v; want the live credentials, pushed and provisioned", a.Vars, a.ConfigPushedAt, a.ProvisionedAt)
			}
			f.wantCalls(t, tt.calls...)
			f.wantFree(t, id)
		})
	}
}

// TestProvisionJobPastDeadlineLiveOnHeroku: the provision job past the
// deadline finds Heroku has the add-on provisioned: it records that and
// hands the add-on on to the plan change recorded meanwhile.
func TestProvisionJobPastDeadlineLiveOnHeroku(t *testing.T) {
	f, id := arrange(t, []func(a *addon.Addon){exchanged, pending("pro"), withResource}, nil)
	f.asking(&mock.Watcher{GetAddonFn: herokuSays("provisioned", nil)})
	f.advance(2 * time.Hour) // the deadline is an hour after the request
	if err := f.svc.ProvisionJob(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	f.wantState(t, id, addon.StateProvisioned, "")
	f.wantCalls(t, "Enqueue addon:plan #1")
}

// TestRetryAfterGiveUp: a provision abandoned at its deadline has its
// resource destroyed; an operator's retry (possible only inside the
// deadline, so after PROVISION_DEADLINE was raised since the give-up; here
// GiveUp is called early) must create it again and push the new
// credentials, not push the destroyed resource's and mark the add-on
// provisioned on them.
func TestRetryAfterGiveUp(t *testing.T) {
	const dead = "fake://destroyed"
	f, id := arrange(t, []func(a *addon.Addon){exchanged, func(a *addon.Addon) {
		a.Vars = addon.Vars{"URL": dead}
		a.ResourceCreatedAt, a.ConfigPushedAt = a.CreatedAt, a.CreatedAt
	}}, nil)
	ctx := context.Background()
	if _, err := f.svc.GiveUp(ctx, id, "too late"); err != nil {
		t.Fatal(err)
	}
	if a := f.get(t, id); a.Vars != nil || !a.ResourceCreatedAt.IsZero() || !a.ConfigPushedAt.IsZero() {
		t.Errorf("after the resource was destroyed: vars %v, created %v, pushed %v; want none", a.Vars, a.ResourceCreatedAt, a.ConfigPushedAt)
	}
	if _, err := f.svc.Retry(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.ProvisionJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "Destroy #1 basic", "Enqueue addon:provision #1", "Create #1 basic",
		"SetConfig #1 access-1 KILN_URL=fake://basic", "MarkProvisioned #1 access-1")
	if a := f.wantState(t, id, addon.StateProvisioned, "retried by an operator"); a.Vars["URL"] != "fake://basic" {
		t.Errorf("vars %v, want the new resource's", a.Vars)
	}
}

// TestRetryForgetsADestroyedResource: an add-on given up at its deadline
// by a release before giveUp forgot the destroyed resource's vars (or
// between the release phase's migration and the old dynos' end) still
// holds them; a retry must make the resource anew all the same.
func TestRetryForgetsADestroyedResource(t *testing.T) {
	f, id := arrange(t, []func(a *addon.Addon){exchanged, func(a *addon.Addon) {
		a.Vars = addon.Vars{"URL": "fake://destroyed"}
		a.ResourceCreatedAt, a.ConfigPushedAt = a.CreatedAt, a.CreatedAt
	}, inState(addon.StateFailed, addon.ReasonDeadline)}, nil)
	ctx := context.Background()
	if _, err := f.svc.Retry(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.ProvisionJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "Enqueue addon:provision #1", "Create #1 basic",
		"SetConfig #1 access-1 KILN_URL=fake://basic", "MarkProvisioned #1 access-1")
}
