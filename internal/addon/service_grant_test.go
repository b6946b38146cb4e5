package addon_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// exchanging makes Heroku's grant exchange run fn (another writer acting
// while the call is out) and then answer tok or err.
func exchanging(f *fixture, fn func(), err error) {
	f.platform.ExchangeGrantFn = func(ctx context.Context, code string) (addon.Tokens, error) {
		f.called("ExchangeGrant %s", code)
		if fn != nil {
			fn()
		}
		if err != nil {
			return addon.Tokens{}, err
		}
		return addon.Tokens{Access: "access-1", Refresh: "refresh-1", ExpiresAt: t0.Add(8 * time.Hour)}, nil
	}
}

// startedBefore: an earlier exchange attempt started and its answer was
// lost.
func startedBefore(a *addon.Addon) { a.ExchangeStartedAt = a.CreatedAt.Add(-time.Minute) }

func TestGrantJob(t *testing.T) {
	const exchange, next = "ExchangeGrant grant-1", "Enqueue addon:provision #1"
	const gotTokens = "step: OAuth grant exchanged"
	down := addon.Errorf(addon.EUNAVAILABLE, "id.heroku.com is down.")
	// theirTokens: another writer saves its tokens while the exchange is out.
	theirTokens := func(f *fixture, t *testing.T, id addon.ID) func() {
		return func() {
			f.update(t, id, func(a *addon.Addon) {
				a.Tokens = &addon.Tokens{Access: "access-0", Refresh: "refresh-0", ExpiresAt: t0.Add(time.Hour)}
				a.GrantExchangedAt, a.Grant = t0, nil
			})
		}
	}
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		setup  func(f *fixture, t *testing.T, id addon.ID)
		code   string
		state  addon.State
		reason string
		access string // the access token stored afterwards
		calls  []string
		events []string
		lost   bool // GrantLost called
	}{
		{
			name:  "the grant is exchanged and provisioning follows",
			state: addon.StateProvisioning, access: "access-1",
			calls: []string{exchange, next}, events: []string{gotTokens},
		},
		{
			name:  "the add-on is no longer provisioning",
			shape: []func(a *addon.Addon){inState(addon.StateDeprovisioning, "")},
			state: addon.StateDeprovisioning,
		},
		{
			name:  "exchanged by an earlier run",
			shape: []func(a *addon.Addon){exchanged},
			state: addon.StateProvisioning, access: "access-1",
			calls: []string{next},
		},
		{
			name:  "Heroku sent no grant",
			shape: []func(a *addon.Addon){synchronous},
			code:  addon.EINVALID, state: addon.StateFailed, reason: "Heroku sent no OAuth grant for add-on 00000000-0000-4000-8000-000000000001.",
			events: []string{"state failed: Heroku sent no OAuth grant for add-on 00000000-0000-4000-8000-000000000001."},
		},
		{
			// The claim records the exchange's start: a claim that fails
			// leaves no mark and calls nothing.
			name:  "the start of the exchange cannot be recorded",
			setup: func(f *fixture, t *testing.T, id addon.ID) { f.failing("Acquire", 1) },
			code:  addon.EUNAVAILABLE, state: addon.StateProvisioning,
		},
		{
			name:  "Heroku is down: the job retries",
			setup: func(f *fixture, t *testing.T, id addon.ID) { exchanging(f, nil, down) },
			code:  addon.EUNAVAILABLE, state: addon.StateProvisioning,
			calls: []string{exchange},
		},
		{
			name:  "Heroku refuses a first attempt: an invalid grant",
			setup: func(f *fixture, t *testing.T, id addon.ID) { exchanging(f, nil, errRefused) },
			code:  addon.EINVALID, state: addon.StateFailed, reason: "Refused for good.",
			calls: []string{exchange}, events: []string{"state failed: Refused for good."},
		},
		{
			name:  "Heroku refuses after an earlier attempt started: the grant is lost",
			shape: []func(a *addon.Addon){startedBefore},
			setup: func(f *fixture, t *testing.T, id addon.ID) { exchanging(f, nil, errRefused) },
			code:  addon.EINVALID, state: addon.StateFailed, reason: addon.GrantLostReason,
			calls: []string{exchange}, events: []string{"state failed: " + addon.GrantLostReason},
			lost: true,
		},
		{
			name:  "Heroku is down after an earlier attempt started",
			shape: []func(a *addon.Addon){startedBefore},
			setup: func(f *fixture, t *testing.T, id addon.ID) { exchanging(f, nil, down) },
			code:  addon.EUNAVAILABLE, state: addon.StateProvisioning,
			calls: []string{exchange},
		},
		{
			name:  "refused after an earlier attempt that saved its tokens meanwhile",
			shape: []func(a *addon.Addon){startedBefore},
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				exchanging(f, theirTokens(f, t, id), errRefused)
			},
			state: addon.StateProvisioning, access: "access-0",
			calls: []string{exchange, next},
		},
		{
			name: "the tokens' save fails twice: retried with the tokens in hand",
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				exchanging(f, func() { f.failing("Record", 2) }, nil)
			},
			state: addon.StateProvisioning, access: "access-1",
			calls: []string{exchange, next}, events: []string{gotTokens},
		},
		{
			name: "the lease is taken over during the exchange: the tokens are saved all the same",
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				exchanging(f, func() { f.takeOver(t, id) }, nil)
			},
			state: addon.StateProvisioning, access: "access-1",
			calls: []string{exchange, next}, events: []string{gotTokens},
		},
		{
			name: "another writer saved tokens first: theirs are kept",
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				exchanging(f, theirTokens(f, t, id), nil)
			},
			state: addon.StateProvisioning, access: "access-0",
			calls: []string{exchange, next},
		},
		{
			name: "reported lost while the tokens were in hand: provisioning resumes",
			setup: func(f *fixture, t *testing.T, id addon.ID) {
				exchanging(f, func() {
					f.update(t, id, func(a *addon.Addon) { a.State, a.Reason = addon.StateFailed, addon.GrantLostReason })
				}, nil)
			},
			state: addon.StateProvisioning, reason: "OAuth tokens saved after the grant was reported lost; provisioning resumes", access: "access-1",
			calls: []string{exchange, next},
			events: []string{gotTokens,
				"state provisioning: OAuth tokens saved after the grant was reported lost; provisioning resumes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, id := arrange(t, tt.shape, tt.setup)
			err := f.svc.GrantJob(context.Background(), id)
			wantCode(t, err, tt.code)
			f.store.Before = nil
			a := f.wantState(t, id, tt.state, tt.reason)
			switch {
			case tt.access == "" && a.Tokens != nil:
				t.Errorf("tokens %+v stored, want none", a.Tokens)
			case tt.access != "" && (a.Tokens == nil || a.Tokens.Access != tt.access):
				t.Errorf("tokens %+v, want access token %s", a.Tokens, tt.access)
			case tt.access != "" && (a.Grant != nil || a.GrantExchangedAt.IsZero()):
				t.Errorf("grant %+v, exchanged at %v: a spent grant must be dropped and the exchange recorded", a.Grant, a.GrantExchangedAt)
			}
			if lost := len(f.lost) > 0; lost != tt.lost {
				t.Errorf("GrantLost called %v, want %v", lost, tt.lost)
			}
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
			if a.LeaseOwner == "test.1" || (a.LeaseOwner == "" && !a.LeaseUntil.IsZero()) {
				t.Errorf("the job left its lease held (%q)", a.LeaseOwner)
			}
		})
	}
}

// TestGrantJobRecordsTheAttempt: the start of an exchange is recorded
// before the call, so a retry after a lost answer knows the grant may be
// spent; a definite refusal clears it again, so an operator's retry is a
// first attempt.
func TestGrantJobRecordsTheAttempt(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		started bool // ExchangeStartedAt set after the job
	}{
		{"the answer is lost", addon.Errorf(addon.EUNAVAILABLE, "Timeout."), true},
		{"a definite refusal", errRefused, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			id := f.add(t)
			exchanging(f, func() {
				if a := f.get(t, id); !a.ExchangeStartedAt.Equal(t0) {
					t.Errorf("exchange started at %v while the call is out, want %v", a.ExchangeStartedAt, t0)
				}
			}, tt.err)
			_ = f.svc.GrantJob(context.Background(), id)
			if started := !f.get(t, id).ExchangeStartedAt.IsZero(); started != tt.started {
				t.Errorf("exchange started recorded %v after the job, want %v", started, tt.started)
			}
		})
	}
}

// TestGrantJobTokensLostAfterTheBudget: a save of tokens in hand is
// retried only for InHandBudget; then the job fails, retryably, without
// exchanging again.
func TestGrantJobTokensLostAfterTheBudget(t *testing.T) {
	f := newFixture(t, func(o *addon.Options) { o.InHandBudget = 120 * time.Millisecond })
	id := f.add(t)
	exchanging(f, func() { f.failing("Record", -1) }, nil)
	err := f.svc.GrantJob(context.Background(), id)
	wantCode(t, err, addon.EUNAVAILABLE)
	f.store.Before = nil
	if a := f.get(t, id); a.Tokens != nil || !a.GrantExchangedAt.IsZero() {
		t.Errorf("tokens %+v recorded although every save failed", a.Tokens)
	}
	f.wantCalls(t, "ExchangeGrant grant-1")
}

// TestGrantLostUnrecorded: Heroku refuses the grant after an earlier
// attempt started, and the failure cannot be recorded under the claim (the
// database blinks). The job must not conclude anything from that: the
// earlier attempt may be saving its tokens right now. It should fail
// retryably and leave the add-on as it is.
func TestGrantLostUnrecorded(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, startedBefore)
	exchanging(f, func() { f.failing("Record", 1) }, errRefused)
	err := f.svc.GrantJob(context.Background(), id)
	if err == nil || !addon.Transient(err) {
		t.Errorf("GrantJob = %v, want a retryable error", err)
	}
	if !errors.Is(err, errDown) {
		t.Errorf("GrantJob = %v, want the store's error in it", err)
	}
	f.store.Before = nil
	f.wantState(t, id, addon.StateProvisioning, "")
	if len(f.lost) != 0 {
		t.Error("GrantLost called for a failure that was not recorded")
	}
}

// TestGrantLostThenRevived: the retried grant job records the add-on
// failed (grant lost) under its claim and lets go; before it returns, the
// earlier attempt, its answer late, saves its tokens and revives the
// add-on. The retry's failure was recorded already: nothing fails the
// add-on again after its claim is gone.
func TestGrantLostThenRevived(t *testing.T) {
	f := newFixture(t)
	id := f.add(t, startedBefore)
	exchanging(f, nil, errRefused)
	revived := false
	f.store.Before = func(op string, _ addon.ID) error {
		if op != "Release" || revived {
			return nil
		}
		revived = true
		// The earlier attempt's saveTokens, its claim long lost, as the
		// retry lets go.
		f.update(t, id, func(a *addon.Addon) {
			a.Tokens = &addon.Tokens{Access: "access-1", Refresh: "refresh-1", ExpiresAt: t0.Add(time.Hour)}
			a.Grant, a.GrantExchangedAt = nil, f.now()
			if err := a.Transition(f.now(), addon.StateProvisioning, "OAuth tokens saved after the grant was reported lost; provisioning resumes"); err != nil {
				t.Error(err)
			}
		})
		return nil
	}
	wantCode(t, f.svc.GrantJob(context.Background(), id), addon.EINVALID)
	f.store.Before = nil
	if !revived {
		t.Fatal("the claim was never let go")
	}
	f.wantState(t, id, addon.StateProvisioning, "OAuth tokens saved after the grant was reported lost; provisioning resumes")
}

func TestGrantJobBusyOrUnknown(t *testing.T) {
	f := newFixture(t)
	id := f.add(t)
	f.holdLease(t, id)
	err := f.svc.GrantJob(context.Background(), id)
	if !addon.IsBusy(err) || !addon.Transient(err) {
		t.Errorf("GrantJob on a held add-on = %v, want busy (transient)", err)
	}
	f.wantState(t, id, addon.StateProvisioning, "")
	err = f.svc.GrantJob(context.Background(), f.nextID())
	wantCode(t, err, addon.ENOTFOUND)
	f.wantCalls(t)
}

// TestTokenCallsOutliveTheCaller: once asked, id.heroku.com's answer to a
// grant exchange or a token refresh is awaited and saved even if the
// caller goes away (a job's deadline, a lost claim): the grant, or a
// refresh token Heroku rotates, may already be spent, and thrown away the
// answer could never be had again.
func TestTokenCallsOutliveTheCaller(t *testing.T) {
	tests := []struct {
		name    string
		shape   []func(a *addon.Addon)
		arrange func(f *fixture, hook func(context.Context))
		run     func(ctx context.Context, f *fixture, id addon.ID) error
		access  string
	}{
		{
			name: "grant exchange",
			arrange: func(f *fixture, hook func(context.Context)) {
				f.platform.ExchangeGrantFn = func(ctx context.Context, code string) (addon.Tokens, error) {
					hook(ctx)
					return addon.Tokens{Access: "access-1", Refresh: "refresh-1", ExpiresAt: t0.Add(8 * time.Hour)}, nil
				}
			},
			run:    func(ctx context.Context, f *fixture, id addon.ID) error { return f.svc.GrantJob(ctx, id) },
			access: "access-1",
		},
		{
			name:  "token refresh",
			shape: []func(a *addon.Addon){exchanged, func(a *addon.Addon) { a.Tokens.ExpiresAt = a.CreatedAt.Add(time.Minute) }},
			arrange: func(f *fixture, hook func(context.Context)) {
				f.platform.RefreshTokensFn = func(ctx context.Context, refresh string) (addon.Tokens, error) {
					hook(ctx)
					return addon.Tokens{Access: "access-2", Refresh: "refresh-2", ExpiresAt: t0.Add(8 * time.Hour)}, nil
				}
			},
			run:    func(ctx context.Context, f *fixture, id addon.ID) error { return f.svc.ProvisionJob(ctx, id) },
			access: "access-2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			id := f.add(t, tt.shape...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tt.arrange(f, cancelsCaller(t, cancel, tt.name))
			_ = tt.run(ctx, f, id)
			if a := f.get(t, id); a.Tokens == nil || a.Tokens.Access != tt.access {
				t.Errorf("tokens %+v, want the answer's (%s) saved", a.Tokens, tt.access)
			}
		})
	}
}

// TestNoExchangeForAGoneCaller: a grant job whose context has already
// ended (its claim lost, its deadline passed) does not start an exchange
// it could no longer see through to the end of; the grant stays unspent
// for the retry, and the "exchange started" mark its claim set comes off
// again, so a refusal on the retry is not reported as a lost grant.
func TestNoExchangeForAGoneCaller(t *testing.T) {
	f := newFixture(t)
	id := f.add(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := f.svc.GrantJob(ctx, id)
	if err == nil || !addon.Transient(err) {
		t.Errorf("GrantJob = %v, want a transient error (retried)", err)
	}
	f.mu.Lock()
	calls := f.calls
	f.mu.Unlock()
	for _, c := range calls {
		if strings.HasPrefix(c, "ExchangeGrant") {
			t.Errorf("the grant was exchanged for a caller already gone: %q", c)
		}
	}
	if a := f.get(t, id); !a.ExchangeStartedAt.IsZero() {
		t.Errorf("exchange started at %v, though none was", a.ExchangeStartedAt)
	}
}
