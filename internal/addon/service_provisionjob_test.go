package addon_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// setConfig makes Heroku's config call answer err for token (nil for any
// other).
func setConfig(f *fixture, token string, err error) {
	f.platform.SetConfigFn = func(ctx context.Context, tok string, id addon.ID, vars map[string]*string) error {
		f.called("SetConfig %s %s %s", short(id), tok, config(vars))
		if tok == token {
			return err
		}
		return nil
	}
}

// refreshing makes the token refresh run fn (another writer acting while
// the call is out) and answer tok, err.
func refreshing(f *fixture, fn func(), tok addon.Tokens, err error) {
	f.platform.RefreshTokensFn = func(ctx context.Context, refresh string) (addon.Tokens, error) {
		f.called("RefreshTokens %s", refresh)
		if fn != nil {
			fn()
		}
		return tok, err
	}
}

func TestProvisionJob(t *testing.T) {
	const (
		create   = "Create #1 basic"
		push     = "SetConfig #1 access-1 KILN_URL=fake://basic"
		mark     = "MarkProvisioned #1 access-1"
		created  = "step: resource created by driver fake"
		pushed   = "step: config vars pushed"
		done     = "state provisioned: "
		deadline = "provisioning did not finish before the deadline"
	)
	down := addon.Errorf(addon.EUNAVAILABLE, "Down.")
	madeBefore := func(a *addon.Addon) { a.ResourceCreatedAt, a.Vars = a.CreatedAt, addon.Vars{"URL": "fake://basic"} }
	expiring := func(a *addon.Addon) { a.Tokens.ExpiresAt = a.CreatedAt.Add(time.Minute) }
	runJobCases(t, []jobCase{
		{
			name:  "every step, in order",
			shape: []func(a *addon.Addon){exchanged},
			state: addon.StateProvisioned,
			calls: []string{create, push, mark}, events: []string{created, pushed, done},
			check: func(t *testing.T, a *addon.Addon) {
				if a.ResourceCreatedAt.IsZero() || a.ConfigPushedAt.IsZero() || a.ProvisionedAt.IsZero() || a.Vars["URL"] != "fake://basic" {
					t.Errorf("steps not all recorded: %+v", a)
				}
			},
		},
		{
			name:  "no longer provisioning",
			shape: []func(a *addon.Addon){provisioned},
			state: addon.StateProvisioned,
		},
		{
			name:  "the deadline passed: the resource is destroyed and the add-on fails",
			shape: []func(a *addon.Addon){exchanged, func(a *addon.Addon) { a.Deadline = a.CreatedAt.Add(-time.Second) }},
			state: addon.StateFailed, reason: deadline,
			calls: []string{"Destroy #1 basic"}, events: []string{"state failed: " + deadline},
		},
		{
			name:  "the deadline passed and the cleanup fails: retried",
			shape: []func(a *addon.Addon){exchanged, func(a *addon.Addon) { a.Deadline = a.CreatedAt.Add(-time.Second) }},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.driver.DestroyFn = func(context.Context, addon.Resource) error { return errRefused }
			},
			code: addon.EINTERNAL, state: addon.StateProvisioning,
		},
		{
			name:  "a synchronous provision was interrupted",
			shape: []func(a *addon.Addon){synchronous},
			state: addon.StateFailed, reason: "the synchronous provision was interrupted",
			calls: []string{"Destroy #1 basic"}, events: []string{"state failed: the synchronous provision was interrupted"},
		},
		{
			name:  "the grant comes first",
			state: addon.StateProvisioning,
			calls: []string{"Enqueue addon:grant #1"},
		},
		{
			name:  "resumed after the resource was made",
			shape: []func(a *addon.Addon){exchanged, madeBefore},
			state: addon.StateProvisioned,
			calls: []string{push, mark}, events: []string{pushed, done},
		},
		{
			name:  "resumed after the push",
			shape: []func(a *addon.Addon){exchanged, madeBefore, func(a *addon.Addon) { a.ConfigPushedAt = a.CreatedAt }},
			state: addon.StateProvisioned,
			calls: []string{mark}, events: []string{done},
		},
		{
			name: "resumed after Heroku was told",
			shape: []func(a *addon.Addon){exchanged, madeBefore,
				func(a *addon.Addon) { a.ConfigPushedAt, a.ProvisionedAt = a.CreatedAt, a.CreatedAt }},
			state:  addon.StateProvisioned,
			events: []string{done},
		},
		{
			name:  "the driver refuses: the add-on fails",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.driver.CreateFn = returns(nil, errRefused)(f, t)
			},
			code: addon.EINVALID, state: addon.StateFailed, reason: "Refused for good.",
			events: []string{"state failed: Refused for good."},
		},
		{
			name:  "the driver is down: retried",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.driver.CreateFn = returns(nil, down)(f, t)
			},
			code: addon.EUNAVAILABLE, state: addon.StateProvisioning,
		},
		{
			name:  "deprovisioned while the driver creates: what was made is recorded for the deprovision",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.driver.CreateFn = func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
					f.called("Create %s %s", short(id), r.Plan.Slug)
					if err := f.svc.Deprovision(ctx, id); err != nil {
						t.Fatal(err)
					}
					return addon.Vars{"URL": "fake://basic"}, nil
				}
			},
			state: addon.StateDeprovisioning, reason: "deprovision requested by Heroku",
			// The deprovision request enqueues its job, and the provision
			// job, finding the add-on deprovisioning, hands it on to the same
			// job (Addon.NextJob); the queue's task id makes that one job.
			calls:  []string{create, "Enqueue addon:deprovision #1", "Enqueue addon:deprovision #1"},
			events: []string{"state deprovisioning: deprovision requested by Heroku", created},
			check: func(t *testing.T, a *addon.Addon) {
				if a.Vars["URL"] != "fake://basic" {
					t.Errorf("vars %v not recorded: the deprovision could not find the resource", a.Vars)
				}
			},
		},
		{
			name:  "exchanged but without tokens: nothing to push or mark",
			shape: []func(a *addon.Addon){exchanged, func(a *addon.Addon) { a.Tokens = nil }},
			state: addon.StateProvisioned,
			calls: []string{create}, events: []string{created, done},
			check: func(t *testing.T, a *addon.Addon) {
				if !a.ProvisionedAt.IsZero() || !a.ConfigPushedAt.IsZero() {
					t.Error("recorded as pushed or marked on Heroku without a call to Heroku")
				}
			},
		},
		{
			name:  "the push fails for now: retried",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) { setConfig(f, "access-1", down) },
			code:  addon.EUNAVAILABLE, state: addon.StateProvisioning,
			calls: []string{create, push}, events: []string{created},
		},
		{
			name:  "the push is refused: the add-on fails",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) { setConfig(f, "access-1", errRefused) },
			code:  addon.EINVALID, state: addon.StateFailed, reason: "Refused for good.",
			calls: []string{create, push}, events: []string{created, "state failed: Refused for good."},
		},
		{
			name:  "Heroku does not know the add-on: it fails",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				setConfig(f, "access-1", addon.Errorf(addon.ENOTFOUND, "No such add-on on Heroku."))
			},
			code: addon.ENOTFOUND, state: addon.StateFailed, reason: "No such add-on on Heroku.",
			calls: []string{create, push}, events: []string{created, "state failed: No such add-on on Heroku."},
		},
		{
			name:  "marking fails: the push is recorded with the mark, so it is repeated",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.platform.MarkProvisionedFn = func(ctx context.Context, tok string, id addon.ID) error {
					f.called("MarkProvisioned %s %s", short(id), tok)
					return down
				}
			},
			code: addon.EUNAVAILABLE, state: addon.StateProvisioning,
			calls: []string{create, push, mark}, events: []string{created},
			check: func(t *testing.T, a *addon.Addon) {
				if !a.ConfigPushedAt.IsZero() {
					t.Error("push recorded before the step after it")
				}
			},
		},
		{
			name:  "the token is refused: refreshed once and the call repeated",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				setConfig(f, "access-1", addon.Errorf(addon.EUNAUTHORIZED, "Token refused."))
			},
			state: addon.StateProvisioned,
			calls: []string{create, push, "RefreshTokens refresh-1",
				"SetConfig #1 access-2 KILN_URL=fake://basic", "MarkProvisioned #1 access-2"},
			events: []string{created, "step: access token refreshed", pushed, done},
			check: func(t *testing.T, a *addon.Addon) {
				if a.Tokens.Access != "access-2" || a.Tokens.Refresh != "refresh-2" || a.Tokens.UserID != "user-1" {
					t.Errorf("tokens %+v, want the refreshed ones (user kept)", a.Tokens)
				}
			},
		},
		{
			name:  "the token is about to expire: refreshed first",
			shape: []func(a *addon.Addon){exchanged, expiring},
			state: addon.StateProvisioned,
			calls: []string{create, "RefreshTokens refresh-1",
				"SetConfig #1 access-2 KILN_URL=fake://basic", "MarkProvisioned #1 access-2"},
			events: []string{created, "step: access token refreshed", pushed, done},
		},
		{
			name:  "Heroku's refresh omits the refresh token: the old one is kept",
			shape: []func(a *addon.Addon){exchanged, expiring},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				refreshing(f, nil, addon.Tokens{Access: "access-2", ExpiresAt: t0.Add(time.Hour)}, nil)
			},
			state: addon.StateProvisioned,
			calls: []string{create, "RefreshTokens refresh-1",
				"SetConfig #1 access-2 KILN_URL=fake://basic", "MarkProvisioned #1 access-2"},
			events: []string{created, "step: access token refreshed", pushed, done},
			check: func(t *testing.T, a *addon.Addon) {
				if a.Tokens.Refresh != "refresh-1" || a.Tokens.UserID != "user-1" {
					t.Errorf("tokens %+v, want the old refresh token and user kept", a.Tokens)
				}
			},
		},
		{
			name:  "the refresh fails for now: retried",
			shape: []func(a *addon.Addon){exchanged, expiring},
			setup: func(f *fixture, t *testing.T, id addon.ID) { refreshing(f, nil, addon.Tokens{}, down) },
			code:  addon.EUNAVAILABLE, state: addon.StateProvisioning,
			calls: []string{create, "RefreshTokens refresh-1"}, events: []string{created},
		},
		{
			name:  "another writer refreshed first: its tokens are used",
			shape: []func(a *addon.Addon){exchanged, expiring},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				refreshing(f, func() {
					f.update(t, id, func(a *addon.Addon) {
						a.Tokens = &addon.Tokens{Access: "access-9", Refresh: "refresh-9", ExpiresAt: t0.Add(time.Hour)}
					})
				}, addon.Tokens{Access: "access-2", Refresh: "refresh-2", ExpiresAt: t0.Add(time.Hour)}, nil)
			},
			state: addon.StateProvisioned,
			calls: []string{create, "RefreshTokens refresh-1",
				"SetConfig #1 access-9 KILN_URL=fake://basic", "MarkProvisioned #1 access-9"},
			events: []string{created, pushed, done},
		},
		{
			name:  "the tokens were dropped while refreshing (deprovisioned)",
			shape: []func(a *addon.Addon){exchanged, expiring},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				refreshing(f, func() {
					f.update(t, id, func(a *addon.Addon) { a.State, a.Tokens = addon.StateDeprovisioned, nil })
				}, addon.Tokens{Access: "access-2", Refresh: "refresh-2", ExpiresAt: t0.Add(time.Hour)}, nil)
			},
			code: addon.EGONE, state: addon.StateDeprovisioned,
			calls: []string{create, "RefreshTokens refresh-1"}, events: []string{created},
		},
		{
			name:  "the plan left the catalog: the add-on fails",
			shape: []func(a *addon.Addon){exchanged, func(a *addon.Addon) { a.Plan = "gold" }},
			code:  addon.EINVALID, state: addon.StateFailed, reason: `Unknown plan "gold". Available plans: basic, pro, test.`,
			events: []string{`state failed: Unknown plan "gold". Available plans: basic, pro, test.`},
		},
		{
			name:  "recorded vars Heroku would refuse: nothing is pushed",
			shape: []func(a *addon.Addon){exchanged, func(a *addon.Addon) { a.ResourceCreatedAt, a.Vars = a.CreatedAt, addon.Vars{"bad-name": "x"} }},
			code:  addon.EINTERNAL, state: addon.StateProvisioning,
		},
		{
			name:  "deprovisioned while Heroku is told: not marked provisioned",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.platform.MarkProvisionedFn = func(ctx context.Context, tok string, id addon.ID) error {
					f.called("MarkProvisioned %s %s", short(id), tok)
					return f.svc.Deprovision(ctx, id)
				}
			},
			state: addon.StateDeprovisioning, reason: "deprovision requested by Heroku",
			calls:  []string{create, push, mark, "Enqueue addon:deprovision #1", "Enqueue addon:deprovision #1"},
			events: []string{created, "state deprovisioning: deprovision requested by Heroku"},
		},
		{
			name:  "the token is refused and the refresh fails: retried",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				setConfig(f, "access-1", addon.Errorf(addon.EUNAUTHORIZED, "Token refused."))
				refreshing(f, nil, addon.Tokens{}, down)
			},
			code: addon.EUNAVAILABLE, state: addon.StateProvisioning,
			calls: []string{create, push, "RefreshTokens refresh-1"}, events: []string{created},
		},
		{
			// Unrecorded, the failure has not happened: the job is retried
			// (the record's error decides), not dropped as permanent.
			name:  "the driver refuses and the failure cannot be recorded: retried",
			shape: []func(a *addon.Addon){exchanged},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.driver.CreateFn = func(context.Context, addon.Resource) (addon.Vars, error) {
					f.failing("Update", -1)
					return nil, errRefused
				}
			},
			code: addon.EUNAVAILABLE, state: addon.StateProvisioning,
		},
		{
			name:  "a plan change waited for provisioning",
			shape: []func(a *addon.Addon){exchanged, func(a *addon.Addon) { a.PendingPlan = "pro" }},
			state: addon.StateProvisioned,
			calls: []string{create, push, mark, "Enqueue addon:plan #1"}, events: []string{created, pushed, done},
		},
		{
			// The plan job clears it (at once, not at the reconciler's next sweep).
			name:  "a pending plan that is the plan already",
			shape: []func(a *addon.Addon){exchanged, func(a *addon.Addon) { a.PendingPlan = "basic" }},
			state: addon.StateProvisioned,
			calls: []string{create, push, mark, "Enqueue addon:plan #1"}, events: []string{created, pushed, done},
		},
	}, (*addon.Service).ProvisionJob)
}

// TestProvisionJobTellsTheDriver: the driver gets the add-on as recorded,
// with its plan's limits from the catalog.
func TestProvisionJobTellsTheDriver(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, exchanged, func(a *addon.Addon) { a.Options = map[string]string{"size": "s"} })
	var got addon.Resource
	f.driver.CreateFn = func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
		got = r
		return addon.Vars{"URL": "fake://basic"}, nil
	}
	if err := f.svc.ProvisionJob(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	want := addon.Resource{ID: string(id), Name: "acme", Plan: catalog()["basic"], Region: "us", Options: map[string]string{"size": "s"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("driver got %+v, want %+v", got, want)
	}
}

func TestProvisionJobBusyOrUnknown(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, exchanged)
	f.holdLease(t, id)
	if err := f.svc.ProvisionJob(context.Background(), id); !addon.IsBusy(err) {
		t.Errorf("ProvisionJob on a held add-on = %v, want busy", err)
	}
	f.wantState(t, id, addon.StateProvisioning, "")
	wantCode(t, f.svc.ProvisionJob(context.Background(), f.nextID()), addon.ENOTFOUND)
	f.wantCalls(t)
}

// TestFollowQueueDown: a job whose next job cannot be enqueued flags the
// add-on for the outbox and succeeds; when the flag cannot be saved
// either, the job fails so that it is retried.
func TestFollowQueueDown(t *testing.T) {
	queueDown := addon.Errorf(addon.EUNAVAILABLE, "Redis is down.")
	tests := []struct {
		name     string
		storeOK  bool
		wantFlag bool
	}{
		{"flagged for the outbox", true, true},
		{"the flag cannot be saved: the job fails", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			id := f.add(t)
			f.queue.EnqueueFn = func(ctx context.Context, kind addon.JobKind, id addon.ID) error {
				f.called("Enqueue %s %s", kind, short(id))
				if !tt.storeOK {
					f.failing("Update", -1)
				}
				return queueDown
			}
			err := f.svc.ProvisionJob(context.Background(), id)
			if tt.storeOK && err != nil {
				t.Errorf("ProvisionJob = %v, want success", err)
			}
			if !tt.storeOK && (!errors.Is(err, queueDown) || !errors.Is(err, errDown)) {
				t.Errorf("ProvisionJob = %v, want both the queue's and the store's errors", err)
			}
			f.store.Before = nil
			if a := f.get(t, id); a.Requeue != tt.wantFlag {
				t.Errorf("requeue %v, want %v", a.Requeue, tt.wantFlag)
			}
			f.wantCalls(t, "Enqueue addon:grant #1")
		})
	}
}

// TestProvisionJobLeaseLostInRefresh: a writer whose lease was taken over
// while it refreshed the access token keeps the new tokens (they are the
// only live ones) but calls Heroku no more: the add-on is another
// writer's now.
func TestProvisionJobLeaseLostInRefresh(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, exchanged, func(a *addon.Addon) { a.Tokens.ExpiresAt = a.CreatedAt.Add(time.Minute) })
	refreshing(f, func() { f.takeOver(t, id) }, addon.Tokens{Access: "access-2", Refresh: "refresh-2", ExpiresAt: t0.Add(time.Hour)}, nil)
	wantCode(t, f.svc.ProvisionJob(context.Background(), id), addon.EUNAVAILABLE)
	f.wantCalls(t, "Create #1 basic", "RefreshTokens refresh-1")
	if a := f.wantState(t, id, addon.StateProvisioning, ""); a.Tokens == nil || a.Tokens.Access != "access-2" {
		t.Errorf("tokens %+v, want the refreshed ones kept", a.Tokens)
	}
}
