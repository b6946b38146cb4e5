package addon_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/addon/mock"
)

// request is Heroku's provision call for id on plan basic, with a grant
// unless sync.
func request(id addon.ID, sync bool) addon.ProvisionRequest {
	r := addon.ProvisionRequest{ID: id, Name: "acme", Plan: "basic", Region: "us", Options: map[string]string{"size": "s"}}
	if !sync {
		r.Grant = &addon.Grant{Code: "grant-1", ExpiresAt: t0.Add(5 * time.Minute)}
	}
	return r
}

func TestProvisionRefusesBadRequests(t *testing.T) {
	tests := []struct {
		name string
		req  func(id addon.ID) addon.ProvisionRequest
		msg  string
	}{
		{"no uuid", func(id addon.ID) addon.ProvisionRequest { r := request(id, false); r.ID = ""; return r },
			"The uuid field is required."},
		{"no plan", func(id addon.ID) addon.ProvisionRequest { r := request(id, false); r.Plan = ""; return r },
			"The plan field is required."},
		{"a plan outside the catalog", func(id addon.ID) addon.ProvisionRequest { r := request(id, false); r.Plan = "gold"; return r },
			`Unknown plan "gold". Available plans: basic, pro, test.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			id := f.nextID()
			_, _, err := f.svc.Provision(context.Background(), tt.req(id))
			wantCode(t, err, addon.EINVALID)
			if addon.ErrorMessage(err) != tt.msg {
				t.Errorf("message %q, want %q", addon.ErrorMessage(err), tt.msg)
			}
			if _, err := f.store.Get(context.Background(), id); addon.ErrorCode(err) != addon.ENOTFOUND {
				t.Errorf("a refused request was stored: %v", err)
			}
			f.wantCalls(t)
		})
	}
}

// TestProvisionWithGrant: the request is recorded and the grant job
// queued; Heroku's answer does not wait for any of the work.
func TestProvisionWithGrant(t *testing.T) {
	f := newFixture(t)
	id := f.nextID()
	f.queue.EnqueueFn = func(ctx context.Context, kind addon.JobKind, got addon.ID) error {
		f.called("Enqueue %s %s", kind, short(got))
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > 500*time.Millisecond {
			t.Errorf("enqueue inside Heroku's call has no short budget (deadline %v, %v)", dl, ok)
		}
		return nil
	}
	a, created, err := f.svc.Provision(context.Background(), request(id, false))
	if err != nil || !created {
		t.Fatalf("Provision = %v, %v", created, err)
	}
	if a.State != addon.StateProvisioning || a.Grant == nil || a.Grant.Code != "grant-1" || !a.Deadline.Equal(t0.Add(time.Hour)) {
		t.Errorf("answered %+v", a)
	}
	got := f.wantState(t, id, addon.StateProvisioning, "")
	if got.Name != "acme" || got.Plan != "basic" || got.Region != "us" || got.Options["size"] != "s" || got.Requeue {
		t.Errorf("stored %+v", got)
	}
	f.wantCalls(t, "Enqueue addon:grant #1")
	f.wantEvents(t, id, "state provisioning: provision requested on plan basic")
}

// TestProvisionQueueDown: with Redis down the call still succeeds and the
// add-on is flagged for the outbox; when even the flag cannot be saved,
// the call succeeds all the same (the reconciler finds the add-on).
func TestProvisionQueueDown(t *testing.T) {
	tests := []struct {
		name     string
		storeOK  bool
		wantFlag bool
	}{
		{"flagged for the outbox", true, true},
		{"the flag cannot be saved either", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.queue.EnqueueFn = func(ctx context.Context, kind addon.JobKind, id addon.ID) error {
				f.called("Enqueue %s %s", kind, short(id))
				if !tt.storeOK {
					f.failing("Update", -1)
				}
				return addon.Errorf(addon.EUNAVAILABLE, "Redis is down.")
			}
			id := f.nextID()
			_, created, err := f.svc.Provision(context.Background(), request(id, false))
			if err != nil || !created {
				t.Fatalf("Provision = %v, %v; want success despite the queue", created, err)
			}
			f.store.Before = nil
			if a := f.get(t, id); a.Requeue != tt.wantFlag || a.State != addon.StateProvisioning {
				t.Errorf("requeue %v, state %s; want requeue %v, provisioning", a.Requeue, a.State, tt.wantFlag)
			}
			f.wantCalls(t, "Enqueue addon:grant #1")
		})
	}
}

// TestProvisionDuplicate: a repeat of a known uuid changes nothing and
// answers from what is recorded; one still provisioning has its next job
// enqueued again (the first request's enqueue may have been lost with its
// dyno), deduplicated by the queue.
func TestProvisionDuplicate(t *testing.T) {
	tests := []struct {
		name  string
		shape []func(a *addon.Addon)
		code  string
		msg   string
		calls []string
	}{
		{"still provisioning", nil, "", "", []string{"Enqueue addon:grant #1"}},
		{"still provisioning, the grant exchanged", []func(a *addon.Addon){exchanged}, "", "", []string{"Enqueue addon:provision #1"}},
		{"provisioned", []func(a *addon.Addon){provisioned}, "", "", nil},
		{"failed", []func(a *addon.Addon){inState(addon.StateFailed, "boom")}, "", "", nil},
		{"deprovisioning", []func(a *addon.Addon){provisioned, inState(addon.StateDeprovisioning, "")}, addon.EGONE, "", nil},
		{"deprovisioned", []func(a *addon.Addon){inState(addon.StateDeprovisioned, "")}, addon.EGONE, "", nil},
		{"synchronous and provisioned", []func(a *addon.Addon){synchronous, inState(addon.StateProvisioned, "")}, "", "", nil},
		{"synchronous and failed", []func(a *addon.Addon){synchronous, inState(addon.StateFailed, "too slow")},
			addon.EINVALID, "Provisioning failed: too slow.", nil},
		{"synchronous and still creating", []func(a *addon.Addon){synchronous},
			addon.EUNAVAILABLE, "This add-on is still being provisioned; try again shortly.", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			id := f.add(t, tt.shape...)
			before := f.get(t, id)
			req := request(id, false)
			req.Plan = "pro"
			a, created, err := f.svc.Provision(context.Background(), req)
			if created {
				t.Error("a duplicate was created")
			}
			wantCode(t, err, tt.code)
			if tt.msg != "" && addon.ErrorMessage(err) != tt.msg {
				t.Errorf("message %q, want %q", addon.ErrorMessage(err), tt.msg)
			}
			if tt.code == addon.EUNAVAILABLE && addon.RetryAfter(err) != time.Second {
				t.Errorf("retry after %v, want 1s", addon.RetryAfter(err))
			}
			if a == nil || a.Plan != "basic" || a.State != before.State {
				t.Errorf("answered %+v, want the add-on as recorded", a)
			}
			if got := f.get(t, id); !got.UpdatedAt.Equal(before.UpdatedAt) {
				t.Error("a duplicate changed the add-on")
			}
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id)
		})
	}
}

func TestProvisionStoreDown(t *testing.T) {
	f := newFixture(t)
	f.failing("Create", 1)
	_, _, err := f.svc.Provision(context.Background(), request(f.nextID(), false))
	wantCode(t, err, addon.EUNAVAILABLE)
	f.wantCalls(t)
}

// TestProvisionSynchronous: without a grant the resource is made inside
// Heroku's call; when that fails the add-on fails, what was made is
// destroyed and Heroku gets a 422 it shows the customer.
func TestProvisionSynchronous(t *testing.T) {
	const slow = "the resource could not be created within Heroku's request time"
	tests := []struct {
		name    string
		create  func(f *fixture, t *testing.T) func(ctx context.Context, r addon.Resource) (addon.Vars, error)
		destroy error
		msg     string // the answer's message; "" for success
		state   addon.State
		reason  string
		calls   []string
		events  []string
	}{
		{
			name:   "created in time",
			state:  addon.StateProvisioned,
			calls:  []string{"Create #1 basic"},
			events: []string{"step: resource created by driver fake", "state provisioned: "},
		},
		{
			name:   "the driver refuses",
			create: returns(nil, addon.Errorf(addon.EINVALID, "The region is full")),
			msg:    "Provisioning failed: The region is full.", state: addon.StateFailed, reason: "The region is full",
			calls:  []string{"Destroy #1 basic"},
			events: []string{"state failed: The region is full"},
		},
		{
			name:   "the driver is down",
			create: returns(nil, addon.Errorf(addon.EUNAVAILABLE, "Down.")),
			msg:    "Provisioning failed: " + slow + ".", state: addon.StateFailed, reason: slow,
			calls:  []string{"Destroy #1 basic"},
			events: []string{"state failed: " + slow},
		},
		{
			name: "the driver outlasts Heroku's budget",
			create: func(f *fixture, t *testing.T) func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
				return func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
					if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > addon.SyncBudget {
						t.Errorf("the driver runs without Heroku's budget (deadline %v, %v)", dl, ok)
					}
					return nil, context.DeadlineExceeded
				}
			},
			msg: "Provisioning failed: " + slow + ".", state: addon.StateFailed, reason: slow,
			calls:  []string{"Destroy #1 basic"},
			events: []string{"state failed: " + slow},
		},
		{
			name:   "the driver gives no URL",
			create: returns(addon.Vars{"HOST": "h"}, nil),
			msg:    "Provisioning failed: " + slow + ".", state: addon.StateFailed, reason: slow,
			calls:  []string{"Destroy #1 basic"},
			events: []string{"state failed: " + slow},
		},
		{
			name:   "the driver gives a var Heroku would refuse",
			create: returns(addon.Vars{"URL": "u", "bad-name": "x"}, nil),
			msg:    "Provisioning failed: " + slow + ".", state: addon.StateFailed, reason: slow,
			calls:  []string{"Destroy #1 basic"},
			events: []string{"state failed: " + slow},
		},
		{
			name:    "the cleanup fails too",
			create:  returns(nil, addon.Errorf(addon.EINVALID, "No")),
			destroy: addon.Errorf(addon.EUNAVAILABLE, "Down."),
			msg:     "Provisioning failed: No.", state: addon.StateFailed, reason: "No",
			calls:  []string{"Destroy #1 basic"},
			events: []string{"state failed: No"},
		},
		{
			name: "deprovisioned while the driver creates",
			create: func(f *fixture, t *testing.T) func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
				return func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
					if err := f.svc.Deprovision(ctx, addon.ID(r.ID)); err != nil {
						t.Fatal(err)
					}
					return addon.Vars{"URL": "fake://basic"}, nil
				}
			},
			msg:   "Provisioning failed: the add-on was deprovisioned while it was provisioned.",
			state: addon.StateDeprovisioning, reason: "deprovision requested by Heroku",
			calls: []string{"Enqueue addon:deprovision #1", "Destroy #1 basic"},
			events: []string{"state deprovisioning: deprovision requested by Heroku",
				"step: resource created by driver fake"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.create != nil {
				f.driver.CreateFn = tt.create(f, t)
			}
			f.driver.DestroyFn = func(ctx context.Context, r addon.Resource) error {
				f.called("Destroy %s %s", short(addon.ID(r.ID)), r.Plan.Slug)
				if ctx.Err() != nil {
					t.Error("the cleanup runs on a cancelled context")
				}
				return tt.destroy
			}
			id := f.nextID()
			a, created, err := f.svc.Provision(context.Background(), request(id, true))
			if !created {
				t.Error("created false for a new add-on")
			}
			if tt.msg == "" {
				if err != nil || a == nil || a.State != addon.StateProvisioned || a.Vars["URL"] != "fake://basic" {
					t.Fatalf("Provision = %+v, %v", a, err)
				}
				if got := f.get(t, id); got.ResourceCreatedAt.IsZero() || !got.ProvisionedAt.IsZero() || !got.ConfigPushedAt.IsZero() {
					t.Errorf("steps: created %v, pushed %v, marked %v; want only created (Heroku gets the config in the answer)",
						got.ResourceCreatedAt, got.ConfigPushedAt, got.ProvisionedAt)
				}
			} else {
				wantCode(t, err, addon.EINVALID)
				if addon.ErrorMessage(err) != tt.msg {
					t.Errorf("message %q, want %q", addon.ErrorMessage(err), tt.msg)
				}
			}
			f.wantState(t, id, tt.state, tt.reason)
			f.wantFree(t, id)
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, append([]string{"state provisioning: provision requested on plan basic"}, tt.events...)...)
		})
	}
}

// TestProvisionSynchronousFailureUnrecorded: when even the failure cannot
// be recorded, Heroku gets the store's error (a retryable 503), not a
// 422, and the resource is kept: the row may say provisioned (a last
// record committed unseen), and the deadline's give-up asks again.
func TestProvisionSynchronousFailureUnrecorded(t *testing.T) {
	f := newFixture(t)
	f.driver.CreateFn = func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
		f.failing("Update", -1)
		return nil, addon.Errorf(addon.EINVALID, "No")
	}
	id := f.nextID()
	a, _, err := f.svc.Provision(context.Background(), request(id, true))
	wantCode(t, err, addon.EUNAVAILABLE)
	if a != nil {
		t.Errorf("answered %+v with the error", a)
	}
	f.store.Before = nil
	f.wantState(t, id, addon.StateProvisioning, "")
	f.wantCalls(t)
}

// returns is a driver Create that answers vars, err.
func returns(vars addon.Vars, err error) func(f *fixture, t *testing.T) func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	return func(*fixture, *testing.T) func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
		return func(context.Context, addon.Resource) (addon.Vars, error) { return vars, err }
	}
}

// lossyStore loses the answer to a Record that committed: the write is
// done, the writer sees an error (a budget that ran out as Postgres
// replied, a dropped connection).
type lossyStore struct {
	*mock.Store
	lose func(a *addon.Addon) bool
}

func (s lossyStore) Record(ctx context.Context, l addon.Lease, seen *addon.Addon, release bool, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	a, err := s.Store.Record(ctx, l, seen, release, fn)
	if err == nil && s.lose(a) {
		return nil, addon.Errorf(addon.EUNAVAILABLE, "The connection was lost.")
	}
	return a, err
}

// TestProvisionSynchronousRecordedUnseen: the synchronous provision's last
// record commits but its writer sees an error. The add-on is provisioned:
// Heroku gets it with its config, and the customer's resource is kept,
// not destroyed under a row that says provisioned.
func TestProvisionSynchronousRecordedUnseen(t *testing.T) {
	f := newFixture(t)
	lossy := lossyStore{Store: f.store, lose: func(a *addon.Addon) bool { return a.State == addon.StateProvisioned }}
	f.rebuild(func(d *addon.Deps) { d.Store = lossy })
	id := f.nextID()
	a, _, err := f.svc.Provision(context.Background(), request(id, true))
	if err != nil || a == nil || a.State != addon.StateProvisioned || a.Vars["URL"] != "fake://basic" {
		t.Fatalf("Provision = %+v, %v; want it provisioned with its config", a, err)
	}
	f.wantState(t, id, addon.StateProvisioned, "")
	f.wantCalls(t, "Create #1 basic")
}
