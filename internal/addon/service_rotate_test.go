package addon_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// rotating makes the driver's rotation run fn (another writer acting
// while the driver works) and answer the rotated vars, or err.
func rotating(f *fixture, fn func(ctx context.Context), err error) {
	f.driver.RotateCredentialsFn = func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
		f.called("RotateCredentials %s", short(addon.ID(r.ID)))
		if fn != nil {
			fn(ctx)
		}
		if err != nil {
			return nil, err
		}
		return addon.Vars{"URL": "fake://basic?rotated"}, nil
	}
}

func haltedPush(a *addon.Addon) { a.Halted, a.HaltReason = addon.JobPushConfig, "refused before" }

func TestRotateCredentials(t *testing.T) {
	const (
		rotate  = "RotateCredentials #1"
		push    = "SetConfig #1 access-1 KILN_URL=fake://basic?rotated"
		rotated = "credentials: credentials rotated"
		pushed  = "step: config vars pushed"
		newURL  = "fake://basic?rotated"
		oldURL  = "fake://basic"
	)
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		setup  func(f *fixture, t *testing.T, id addon.ID)
		code   string
		lost   bool   // the answer's error is LeaseLost
		answer bool   // the add-on comes back (with or without an error)
		url    string // stored afterwards
		pushed bool   // ConfigPushedAt set
		calls  []string
		events []string
	}{
		{
			name:   "rotated, recorded and pushed",
			answer: true,
			shape:  []func(a *addon.Addon){provisioned},
			url:    newURL, pushed: true,
			calls: []string{rotate, push}, events: []string{rotated, pushed},
		},
		{
			name:   "a halted push is retried with the new vars",
			answer: true,
			shape:  []func(a *addon.Addon){provisioned, haltedPush},
			url:    newURL, pushed: true,
			calls: []string{rotate, push}, events: []string{rotated, pushed},
		},
		{
			name:  "the driver cannot rotate",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.driver.AbilitiesFn = func() addon.Abilities { return addon.Abilities{Roll: true, Panel: true} }
			},
			code: addon.EUNSUPPORTED, url: oldURL, pushed: true,
		},
		{
			name: "not provisioned",
			code: addon.ECONFLICT,
		},
		{
			name:  "without Platform API access the new vars could not reach the app",
			shape: []func(a *addon.Addon){provisioned, func(a *addon.Addon) { a.Tokens = nil }},
			code:  addon.EINVALID, url: oldURL, pushed: true,
		},
		{
			name:  "the driver fails: nothing changes",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				rotating(f, nil, addon.Errorf(addon.EUNAVAILABLE, "Down."))
			},
			code: addon.EUNAVAILABLE, url: oldURL, pushed: true,
			calls: []string{rotate},
		},
		{
			name:   "the push fails: a job keeps pushing",
			answer: true,
			shape:  []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				setConfig(f, "access-1", addon.Errorf(addon.EUNAVAILABLE, "Down."))
			},
			code: addon.EUNAVAILABLE, url: newURL,
			calls: []string{rotate, push, "Enqueue addon:config #1"}, events: []string{rotated},
		},
		{
			name:   "the record fails twice: retried with the vars in hand",
			answer: true,
			shape:  []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				rotating(f, func(context.Context) { f.failing("Record", 2) }, nil)
			},
			url: newURL, pushed: true,
			calls: []string{rotate, push}, events: []string{rotated, pushed},
		},
		{
			name:  "the record is refused: the error says so",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				rotating(f, func(context.Context) {
					f.store.Before = func(op string, _ addon.ID) error {
						if op == "Record" {
							return errRefused
						}
						return nil
					}
				}, nil)
			},
			code: addon.EINVALID, url: oldURL, pushed: true,
			calls: []string{rotate},
		},
		{
			name:  "rotated and pushed, but the add-on cannot be read back",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) { f.failing("Get", 1) },
			code:  addon.EUNAVAILABLE, url: newURL, pushed: true,
			calls: []string{rotate, push}, events: []string{rotated, pushed},
		},
		{
			name:   "the lease is lost while the driver rotates: saved all the same, pushed by a job",
			answer: true,
			shape:  []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				rotating(f, func(context.Context) { f.takeOver(t, id) }, nil)
			},
			lost: true, url: newURL,
			calls: []string{rotate, "Enqueue addon:config #1"}, events: []string{rotated},
		},
		{
			name:   "the lease is lost and the new writer changed the vars: theirs are kept",
			answer: true,
			shape:  []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				rotating(f, func(context.Context) {
					f.takeOver(t, id)
					f.update(t, id, func(a *addon.Addon) { a.Vars = addon.Vars{"URL": "fake://other"} })
				}, nil)
			},
			// Their vars are recorded as pushed: nothing is owed to Heroku
			// (Addon.NextJob), so no push job is enqueued.
			lost: true, url: "fake://other", pushed: true,
			calls: []string{rotate},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, id := arrange(t, tt.shape, tt.setup)
			a, err := f.svc.RotateCredentials(context.Background(), id)
			if tt.lost {
				if !errors.Is(err, addon.ErrLeaseLost) {
					t.Errorf("RotateCredentials = %v, want lease lost", err)
				}
			} else {
				wantCode(t, err, tt.code)
			}
			f.store.Before = nil
			got := f.get(t, id)
			switch {
			case tt.answer && (a == nil || a.Vars["URL"] != tt.url):
				t.Errorf("answered %+v, want the stored add-on with %s", a, tt.url)
			case !tt.answer && a != nil:
				t.Errorf("answered %+v with the error %v", a, err)
			}
			if got.Vars["URL"] != tt.url && !(tt.url == "" && got.Vars == nil) {
				t.Errorf("stored URL %q, want %q", got.Vars["URL"], tt.url)
			}
			if p := !got.ConfigPushedAt.IsZero(); p != tt.pushed {
				t.Errorf("config pushed %v, want %v", p, tt.pushed)
			}
			if got.Halted == addon.JobPushConfig && tt.url == newURL {
				t.Error("an older halted push still stops the new vars' push")
			}
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
		})
	}
}

// cancelsCaller is a hook for a call out (the driver's, Heroku's) that
// cancels the caller's context, then checks that the call (what)
// outlived it, within a bound.
func cancelsCaller(t *testing.T, cancel context.CancelFunc, what string) func(context.Context) {
	return func(dctx context.Context) {
		cancel()
		if dctx.Err() != nil {
			t.Errorf("the %s was cancelled with its caller", what)
		}
		if _, ok := dctx.Deadline(); !ok {
			t.Errorf("the %s runs without a bound", what)
		}
	}
}

// TestRotateCredentialsOutlivesTheCaller: once asked, the driver's
// rotation runs to its end even if the caller goes away: an answer thrown
// away midway would leave nobody knowing the only working credentials.
func TestRotateCredentialsOutlivesTheCaller(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, provisioned)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rotating(f, cancelsCaller(t, cancel, "driver's rotation"), nil)
	if _, err := f.svc.RotateCredentials(ctx, id); err != nil {
		t.Fatal(err)
	}
	if a := f.get(t, id); a.Vars["URL"] != "fake://basic?rotated" {
		t.Errorf("rotated vars not recorded: %v", a.Vars)
	}
}

func TestRotateCredentialsBusyOrUnknown(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, provisioned)
	f.holdLease(t, id)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := f.svc.RotateCredentials(ctx, id); !addon.IsBusy(err) {
		t.Errorf("RotateCredentials on a held add-on = %v, want busy", err)
	}
	_, err := f.svc.RotateCredentials(context.Background(), f.nextID())
	wantCode(t, err, addon.ENOTFOUND)
	f.wantCalls(t)
}

func TestPushConfigJob(t *testing.T) {
	const push = "SetConfig #1 access-1 KILN_URL=fake://basic"
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		setup  func(f *fixture, t *testing.T, id addon.ID)
		code   string
		pushed bool
		halted addon.JobKind
		calls  []string
		events []string
	}{
		{
			name:   "unpushed vars are pushed",
			shape:  []func(a *addon.Addon){provisioned, unpushed},
			pushed: true, calls: []string{push}, events: []string{"step: config vars pushed"},
		},
		{
			name:   "pushed already",
			shape:  []func(a *addon.Addon){provisioned},
			pushed: true,
		},
		{
			name:   "halted: left for an operator",
			shape:  []func(a *addon.Addon){provisioned, unpushed, haltedPush},
			halted: addon.JobPushConfig,
		},
		{
			name:  "without Platform API access",
			shape: []func(a *addon.Addon){provisioned, unpushed, func(a *addon.Addon) { a.Tokens = nil }},
		},
		{
			name:  "not provisioned",
			shape: []func(a *addon.Addon){exchanged},
		},
		{
			name:  "recorded vars Heroku would refuse: retried, not pushed",
			shape: []func(a *addon.Addon){provisioned, unpushed, func(a *addon.Addon) { a.Vars = addon.Vars{"bad-name": "x"} }},
			code:  addon.EINTERNAL,
		},
		{
			name:  "Heroku refuses for good: halted",
			shape: []func(a *addon.Addon){provisioned, unpushed},
			setup: func(f *fixture, t *testing.T, id addon.ID) { setConfig(f, "access-1", errRefused) },
			code:  addon.EINVALID, halted: addon.JobPushConfig,
			calls: []string{push}, events: []string{"halted: addon:config stopped: Refused for good."},
		},
		{
			name:  "Heroku is down: retried",
			shape: []func(a *addon.Addon){provisioned, unpushed},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				setConfig(f, "access-1", addon.Errorf(addon.EUNAVAILABLE, "Down."))
			},
			code: addon.EUNAVAILABLE, calls: []string{push},
		},
		{
			name:  "the halt cannot be recorded",
			shape: []func(a *addon.Addon){provisioned, unpushed},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.platform.SetConfigFn = func(ctx context.Context, tok string, id addon.ID, vars map[string]*string) error {
					f.called("SetConfig %s %s %s", short(id), tok, config(vars))
					f.failing("Record", -1)
					return errRefused
				}
			},
			// As for a plan change whose halt is not recorded (see
			// TestPlanChangeJob): the store's code, so the job is retried.
			code: addon.EUNAVAILABLE, calls: []string{push},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, id := arrange(t, tt.shape, tt.setup)
			err := f.svc.PushConfigJob(context.Background(), id)
			wantCode(t, err, tt.code)
			f.store.Before = nil
			a := f.get(t, id)
			if p := !a.ConfigPushedAt.IsZero(); p != tt.pushed || a.Halted != tt.halted {
				t.Errorf("pushed %v, halted %q; want %v, %q", p, a.Halted, tt.pushed, tt.halted)
			}
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
		})
	}
}

// TestPushConfig: an operator's push sends what is recorded, pushed or not.
func TestPushConfig(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, provisioned)
	if err := f.svc.PushConfig(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "SetConfig #1 access-1 KILN_URL=fake://basic")
	f.wantEvents(t, id, "step: config vars pushed")

	// New credentials saved meanwhile by a writer whose lease was taken
	// over (a rotation's giveVars) are not recorded as pushed: Heroku got
	// the older set, and the newer one stays owed.
	raced := f.add(t, provisioned)
	f.platform.SetConfigFn = func(ctx context.Context, tok string, id addon.ID, vars map[string]*string) error {
		f.called("SetConfig %s %s %s", short(id), tok, config(vars))
		f.update(t, id, func(a *addon.Addon) {
			a.Vars, a.ConfigPushedAt = addon.Vars{"URL": "fake://basic?rotated"}, time.Time{}
		})
		return nil
	}
	if err := f.svc.PushConfig(context.Background(), raced); err != nil {
		t.Fatal(err)
	}
	f.platform.SetConfigFn = nil
	if a := f.get(t, raced); !a.ConfigPushedAt.IsZero() || a.Vars["URL"] != "fake://basic?rotated" {
		t.Errorf("after a push raced by a save of new vars: vars %v, pushed at %v; want the new vars still owed", a.Vars, a.ConfigPushedAt)
	}
	f.wantCalls(t, "SetConfig #2 access-1 KILN_URL=fake://basic")

	sync := f.add(t, provisioned, func(a *addon.Addon) { a.Tokens = nil })
	wantCode(t, f.svc.PushConfig(context.Background(), sync), addon.EINVALID)
	f.wantCalls(t)
}
