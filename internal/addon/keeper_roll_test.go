package addon_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// rolls: the driver holds two sets of credentials at once.
func rolls(f *fixture) {
	f.driver.AbilitiesFn = func() addon.Abilities { return addon.Abilities{Rotate: true, Roll: true} }
}

// rolling is setup, when given, on a driver that rolls.
func rolling(setup func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID)) func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
	return func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
		rolls(f)
		if setup != nil {
			setup(f, t, k, id)
		}
	}
}

// rollingWith makes the driver's Roll call fn, as a forced ordering, before
// it answers with the rolled credentials.
func rollingWith(f *fixture, fn func(ctx context.Context)) {
	f.driver.RollFn = func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
		f.called("Roll %s", short(addon.ID(r.ID)))
		fn(ctx)
		return addon.Vars{"URL": "fake://basic?rolled"}, nil
	}
}

// leaseLost, as a case's code, wants the error to be ErrLeaseLost.
const leaseLost = "lease lost"

func TestKeeperRotate(t *testing.T) {
	const (
		roll    = "Roll #1"
		push    = "SetConfig #1 access-1 KILN_URL=fake://basic?rolled"
		rolled  = "fake://basic?rolled"
		oldURL  = "fake://basic"
		pushed  = "step: config vars pushed"
		grace   = "credentials: credentials rotated; the old ones keep working until 2030-01-02T04:04:05Z"
		retired = oldURL // the Link's retired credentials afterwards
	)
	tests := []struct {
		name    string
		shape   []func(a *addon.Addon)
		setup   func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID)
		code    string
		answer  bool   // the add-on comes back
		url     string // stored afterwards
		retired string // the Link's retired URL afterwards
		calls   []string
		events  []string
	}{
		{
			name:   "rolled: the old credentials keep working for the grace",
			shape:  []func(a *addon.Addon){provisioned},
			answer: true, url: rolled, retired: retired,
			calls: []string{roll, push}, events: []string{grace, pushed},
		},
		{
			name:   "no grace: retired at once",
			shape:  []func(a *addon.Addon){provisioned},
			setup:  func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) { k.Grace = 0 },
			answer: true, url: rolled, retired: retired,
			calls:  []string{roll, push, "Enqueue addon:retire #1"},
			events: []string{"credentials: credentials rotated", pushed},
		},
		{
			name:  "a driver without overlap rotates outright",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.driver.AbilitiesFn = func() addon.Abilities { return addon.Abilities{Rotate: true} }
			},
			answer: true, url: "fake://basic?rotated",
			calls:  []string{"RotateCredentials #1", "SetConfig #1 access-1 KILN_URL=fake://basic?rotated"},
			events: []string{"credentials: credentials rotated", pushed},
		},
		{
			name:  "a second roll while the first one's old credentials still work",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) {
					l.RetiredVars, l.RetireAt = addon.Vars{"URL": "fake://older"}, t0.Add(time.Minute)
				})
			},
			code: addon.ECONFLICT, url: oldURL, retired: "fake://older",
		},
		{
			name:  "a repeat of a roll that never recorded its credentials",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.RetiredVars, l.RetireAt = addon.Vars{"URL": oldURL}, t0 })
			},
			answer: true, url: rolled, retired: retired,
			calls: []string{roll, push}, events: []string{grace, pushed},
		},
		{
			name: "not provisioned",
			code: addon.ECONFLICT,
		},
		{
			name:  "the driver fails: the old credentials stay the add-on's",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.driver.RollFn = func(context.Context, addon.Resource) (addon.Vars, error) {
					f.called("Roll")
					return nil, addon.Errorf(addon.EUNAVAILABLE, "Down.")
				}
			},
			code: addon.EUNAVAILABLE, url: oldURL, retired: retired,
			calls: []string{"Roll"},
		},
		{
			name:  "the push fails: a job keeps pushing",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				setConfig(f, "access-1", addon.Errorf(addon.EUNAVAILABLE, "Down."))
			},
			code: addon.EUNAVAILABLE, answer: true, url: rolled, retired: retired,
			calls: []string{roll, push, "Enqueue addon:config #1"}, events: []string{grace},
		},
		{
			name:  "the new credentials cannot be recorded",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.driver.RollFn = func(context.Context, addon.Resource) (addon.Vars, error) {
					f.called("Roll")
					f.store.Before = func(op string, _ addon.ID) error {
						if op == "Record" {
							return errRefused
						}
						return nil
					}
					return addon.Vars{"URL": rolled}, nil
				}
			},
			code: addon.EINVALID, url: oldURL, retired: retired,
			calls: []string{"Roll"},
		},
		{
			name:  "the retirement cannot be recorded: nothing is rolled",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.links.Before = func(op string, _ addon.ID) error { return errDown }
			},
			code: addon.EUNAVAILABLE, url: oldURL,
		},
		{
			name:   "a halted push is retried with the new vars",
			shape:  []func(a *addon.Addon){provisioned, haltedPush},
			answer: true, url: rolled, retired: retired,
			calls: []string{roll, push}, events: []string{grace, pushed},
		},
		{
			name:  "the lease is lost while the driver rolls: saved all the same, pushed by a job",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				rollingWith(f, func(context.Context) { f.takeOver(t, id) })
			},
			code: leaseLost, answer: true, url: rolled, retired: retired,
			calls: []string{roll, "Enqueue addon:config #1"}, events: []string{grace},
		},
		{
			name:  "the lease is lost and the new writer changed the vars: theirs are kept",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				rollingWith(f, func(context.Context) {
					f.takeOver(t, id)
					f.update(t, id, func(a *addon.Addon) { a.Vars = addon.Vars{"URL": "fake://other"} })
				})
			},
			code: leaseLost, answer: true, url: "fake://other", retired: retired,
			calls: []string{roll},
		},
		{
			name:  "rolled, but the add-on cannot be read back",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) { f.failing("Get", 1) },
			code:  addon.EUNAVAILABLE, url: rolled, retired: retired,
			calls: []string{roll, push}, events: []string{grace, pushed},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, k, id := arrangeKeeper(t, tt.shape, rolling(tt.setup))
			a, err := k.Rotate(context.Background(), id)
			if tt.code == leaseLost {
				if !errors.Is(err, addon.ErrLeaseLost) {
					t.Errorf("Rotate = %v, want lease lost", err)
				}
			} else {
				wantCode(t, err, tt.code)
			}
			switch {
			case tt.answer && (a == nil || a.Vars["URL"] != tt.url):
				t.Errorf("answered %+v, want the add-on with %s", a, tt.url)
			case !tt.answer && a != nil:
				t.Errorf("answered %+v with the error %v", a, err)
			}
			f.store.Before, f.links.Before = nil, nil
			if got := f.get(t, id).Vars["URL"]; got != tt.url {
				t.Errorf("stored URL %q, want %q", got, tt.url)
			}
			if got := f.link(t, id).RetiredVars["URL"]; got != tt.retired {
				t.Errorf("retired URL %q, want %q", got, tt.retired)
			}
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
		})
	}
}

// TestKeeperRotateOutlivesTheCaller: once asked, the driver's roll runs to
// its end and is recorded even if the caller goes away: rolled credentials
// thrown away midway would work, and nobody would revoke them.
func TestKeeperRotateOutlivesTheCaller(t *testing.T) {
	f, k, id := arrangeKeeper(t, []func(a *addon.Addon){provisioned}, rolling(nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rollingWith(f, cancelsCaller(t, cancel, "driver's roll"))
	if _, err := k.Rotate(ctx, id); err != nil {
		t.Fatal(err)
	}
	if a := f.get(t, id); a.Vars["URL"] != "fake://basic?rolled" {
		t.Errorf("rolled vars not recorded: %v", a.Vars)
	}
}

func TestKeeperRotateBusy(t *testing.T) {
	f := newFixture(t)
	k := f.keeper()
	rolls(f)
	id := f.add(t, provisioned)
	f.holdLease(t, id)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := k.Rotate(ctx, id); !addon.IsBusy(err) {
		t.Errorf("Rotate on a held add-on = %v, want busy", err)
	}
	f.wantCalls(t)
}

func TestKeeperRetire(t *testing.T) {
	const old = "fake://old"
	due := func(f *fixture, t *testing.T, id addon.ID) {
		f.setLink(t, id, func(l *addon.Link) { l.RetiredVars, l.RetireAt = addon.Vars{"URL": old}, t0.Add(-time.Second) })
	}
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		setup  func(f *fixture, t *testing.T, id addon.ID)
		code   string
		kept   bool // the retired credentials are still waiting
		calls  []string
		events []string
	}{
		{
			name:  "grace over: revoked",
			shape: []func(a *addon.Addon){provisioned},
			setup: due,
			calls: []string{"Revoke #1 " + old}, events: []string{"credentials: old credentials revoked"},
		},
		{
			name:  "nothing retired",
			shape: []func(a *addon.Addon){provisioned},
		},
		{
			name:  "still in their grace",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.RetiredVars, l.RetireAt = addon.Vars{"URL": old}, t0.Add(time.Second) })
			},
			kept: true,
		},
		{
			name:  "the new credentials have not reached the app: wait",
			shape: []func(a *addon.Addon){provisioned, func(a *addon.Addon) { a.ConfigPushedAt = time.Time{} }},
			setup: due, kept: true,
		},
		{
			name:  "the roll never recorded its credentials: the retired ones are the current ones",
			shape: []func(a *addon.Addon){provisioned, func(a *addon.Addon) { a.Vars = addon.Vars{"URL": old} }},
			setup: due,
		},
		{
			name:  "deprovisioning destroys every credential",
			shape: []func(a *addon.Addon){provisioned, inState(addon.StateDeprovisioning, "")},
			setup: due,
		},
		{
			name:  "the driver no longer rolls",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				due(f, t, id)
				f.driver.AbilitiesFn = func() addon.Abilities { return addon.Abilities{Rotate: true} }
			},
		},
		{
			name:  "the driver refuses: retried all the same",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				due(f, t, id)
				f.driver.RevokeFn = func(context.Context, addon.Resource, addon.Vars) error { f.called("Revoke"); return errRefused }
			},
			code: addon.EINTERNAL, kept: true, calls: []string{"Revoke"},
		},
		{
			name:  "the revocation cannot be noted",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				due(f, t, id)
				f.failing("Record", 1)
			},
			code: addon.EUNAVAILABLE, calls: []string{"Revoke #1 " + old},
		},
		{
			name:  "the add-on cannot be claimed",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				due(f, t, id)
				f.failing("Acquire", 1)
			},
			code: addon.EUNAVAILABLE, kept: true,
		},
		{
			// The roll has recorded the retiring set and is in the driver:
			// the retiring credentials are still the add-on's vars.
			name:  "a roll under way: wait for it",
			shape: []func(a *addon.Addon){provisioned, func(a *addon.Addon) { a.Vars = addon.Vars{"URL": old} }},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				due(f, t, id)
				f.holdLease(t, id)
			},
			code: addon.EUNAVAILABLE, kept: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, k, id := arrangeKeeper(t, tt.shape, rolling(func(f *fixture, t *testing.T, _ *addon.Keeper, id addon.ID) {
				if tt.setup != nil {
					tt.setup(f, t, id)
				}
			}))
			err := k.Retire(context.Background(), id)
			wantCode(t, err, tt.code)
			if err != nil && !addon.Transient(err) {
				t.Errorf("Retire = %v: every failure must be retried", err)
			}
			f.store.Before = nil
			l := f.link(t, id)
			if kept := l.RetiredVars != nil && !l.RetireAt.IsZero(); kept != tt.kept {
				t.Errorf("retired credentials kept %v (%+v), want %v", kept, l, tt.kept)
			}
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
		})
	}
	t.Run("the link cannot be read", func(t *testing.T) {
		f := newFixture(t)
		k := f.keeper()
		id := f.add(t, provisioned)
		f.links.Before = func(string, addon.ID) error { return errDown }
		if err := k.Retire(context.Background(), id); !errors.Is(err, errDown) {
			t.Errorf("Retire = %v, want the store's error", err)
		}
	})
}
