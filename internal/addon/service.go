package addon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Service is the add-on use cases, written against the domain interfaces
// only: the web adapter calls it when Heroku calls Kiln, the jobs adapter
// calls it when a job runs. Everything that must hold whatever adapter is
// plugged in (idempotency, step order, deadlines) lives here. It is the
// only way into the domain: its collaborators are unexported, so no adapter
// reads the store or calls the driver behind its back. Build it with
// NewService.
type Service struct {
	store    Store
	queue    Queue
	platform Platform
	driver   Driver
	tenants  Tenants
	watcher  Watcher
	opt      Options

	ownerOnce sync.Once
	ownerName string

	// inline holds a token per grant job provisioning inline
	// (Options.InlineProvisions); nil when none may.
	inline chan struct{}
}

// Deps are the Service's collaborators, the adapters cmd wiring builds.
type Deps struct {
	Store    Store
	Queue    Queue
	Platform Platform
	Driver   Driver
	// Tenants authenticates the accounts of a driver that serves them
	// (the account driver); nil for every other driver.
	Tenants Tenants
	// Watcher reads Heroku's record of an add-on. A give-up asks it
	// before destroying a resource, since an earlier attempt may have
	// marked the add-on provisioned and lost only the record of that;
	// nil asks nothing.
	Watcher Watcher
}

// Options tune the Service; every zero value has a sensible default.
type Options struct {
	// Prefix is the config var prefix (ADDON_CONFIG_PREFIX).
	Prefix string
	// Deadline bounds provisioning (PROVISION_DEADLINE); Heroku gives up at 12 h.
	Deadline time.Duration
	// Log receives the service's log lines; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Owner names this process in the add-on leases it takes (the dyno
	// name); empty means the host name.
	Owner string
	// LeaseTTL is how long a writer's claim on an add-on lasts unless
	// renewed (DefaultLeaseTTL when zero): how long an add-on whose writer
	// died waits for the next one.
	LeaseTTL time.Duration
	// InHandBudget bounds how long a save of tokens or rotated credentials
	// that exist only in memory is retried (10 min when zero).
	InHandBudget time.Duration
	// GrantLost, when set, is called when Heroku refuses a grant after an
	// earlier exchange attempt had started: the metrics hook.
	GrantLost func(id ID)
	// InlineProvisions is how many grant jobs at once may go on to
	// provision the add-on whose tokens they just saved, under the same
	// claim, instead of handing it to a provision job: one claim and one
	// job (its enqueue, dequeue and done) fewer per add-on. The other grant
	// slots stay free for exchanges, so a burst's grants never all wait
	// behind resource creation; zero never provisions in a grant job
	// (INLINE_PROVISIONS; see GrantJob).
	InlineProvisions int
	// InlineBudget bounds an inline provision (DefaultInlineBudget when
	// zero). Not a setting: Kiln runs with the default; tests shorten it
	// to reach its end without waiting.
	InlineBudget time.Duration
}

// NewService builds the service over its collaborators. A keeper that
// observes the store (Keeper.Observe) wraps d.Store before this call.
func NewService(d Deps, o Options) *Service {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{store: d.Store, queue: d.Queue, platform: d.Platform, driver: d.Driver, tenants: d.Tenants, watcher: d.Watcher, opt: o}
	if o.InlineProvisions > 0 {
		s.inline = make(chan struct{}, o.InlineProvisions)
	}
	return s
}

// tokenSlack is how long before expiry an access token is refreshed.
const tokenSlack = 5 * time.Minute

func (s *Service) now() time.Time {
	if s.opt.Now != nil {
		return s.opt.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger { return s.opt.Log }

// ProvisionRequest is Heroku's provision call, already decoded (its uuid
// parsed with ParseID; empty when Heroku sent none).
type ProvisionRequest struct {
	ID            ID
	Name          string
	Plan          string
	Region        string
	CallbackURL   string
	Options       map[string]string
	Grant         *Grant
	LogInputURL   string
	LogDrainToken string
}

// Validate checks what the domain needs of a provision request; the errors
// are written for Heroku to show to the customer.
func (s *Service) validate(req ProvisionRequest) (Plan, error) {
	if req.ID == "" {
		return Plan{}, Errorf(EINVALID, "The uuid field is required.")
	}
	if req.Plan == "" {
		return Plan{}, Errorf(EINVALID, "The plan field is required.")
	}
	return s.driver.Catalog().Lookup(req.Plan)
}

// Provision records Heroku's provision request and starts the pipeline. It
// answers at once; the work happens in jobs. A repeat for a known uuid
// returns the add-on as recorded (created=false) and changes nothing; if
// it is still provisioning, its next job is enqueued again, in case the
// first request's enqueue was lost. A repeat for a deprovisioned uuid is
// EGONE.
func (s *Service) Provision(ctx context.Context, req ProvisionRequest) (a *Addon, created bool, err error) {
	if _, err := s.validate(req); err != nil {
		return nil, false, err
	}
	now := s.now()
	a = &Addon{
		ID:            req.ID,
		Name:          req.Name,
		Plan:          req.Plan,
		Region:        req.Region,
		CallbackURL:   req.CallbackURL,
		Options:       req.Options,
		LogInputURL:   req.LogInputURL,
		LogDrainToken: req.LogDrainToken,
		State:         StateProvisioning,
		Grant:         req.Grant,
		Deadline:      now.Add(s.opt.Deadline),
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	a.Note(now, "state", fmt.Sprintf("provision requested on plan %s", req.Plan))
	stored, created, err := s.store.Create(ctx, a)
	if err != nil {
		return nil, false, err
	}
	if !created {
		switch {
		case stored.State == StateDeprovisioned || stored.State == StateDeprovisioning:
			return stored, false, Errorf(EGONE, "Add-on %s was deprovisioned.", stored.ID)
		case stored.Synchronous() && stored.State == StateFailed:
			return stored, false, Errorf(EINVALID, "Provisioning failed: %s.", stored.Reason)
		case stored.Synchronous() && stored.State == StateProvisioning:
			// The first request is still creating the resource inside its
			// own answer; this duplicate has no config to give yet.
			return stored, false, &Error{Code: EUNAVAILABLE, Message: "This add-on is still being provisioned; try again shortly.", RetryAfter: time.Second}
		case stored.State == StateProvisioning:
			// The first request may have died between its record and its
			// enqueue (a web dyno killed, Redis losing the task in a
			// failover): hand on again, or the grant would wait for the
			// reconciler's slow sweep and could die first. Enqueueing
			// deduplicates, so a job already queued or running is not
			// doubled.
			s.handOn(ctx, stored)
		}
		return stored, false, nil
	}
	if stored.Synchronous() {
		a, err := s.provisionNow(ctx, stored)
		return a, true, err
	}
	s.handOn(ctx, stored) // to the grant exchange
	return stored, true, nil
}

// enqueue starts a job on behalf of a call Heroku is waiting on. The change
// that needs the job is already recorded, so when Redis is down or slow the
// call still succeeds, quickly: the add-on is flagged (Requeue) and the
// worker's outbox sweep enqueues the job within seconds of Redis returning
// (the reconciler is the backstop): nothing accepted is lost.
func (s *Service) enqueue(ctx context.Context, kind JobKind, id ID) {
	ctx, cancel := context.WithTimeout(ctx, enqueueBudget)
	defer cancel()
	if err := s.queue.Enqueue(ctx, kind, id); err != nil {
		if ferr := s.requeue(ctx, id); ferr != nil {
			s.log().WarnContext(ctx, "enqueue failed and the add-on could not be flagged; the reconciler will retry", "addon", id, "job", kind, "err", err, "flag_err", ferr)
			return
		}
		s.log().WarnContext(ctx, "enqueue failed; the outbox sweep will enqueue it once the queue is back", "addon", id, "job", kind, "err", err)
	}
}

// handOn enqueues the add-on's next job (NextJob), if it owes one, on
// behalf of a call Heroku or an operator is waiting on: a is the add-on as
// that call recorded it, and enqueue's outbox covers a queue that is down.
func (s *Service) handOn(ctx context.Context, a *Addon) {
	if kind, ok := a.NextJob(); ok {
		s.enqueue(ctx, kind, a.ID)
	}
}

// enqueueBudget bounds how long Heroku's call waits for Redis: when Redis is
// down the add-on is already recorded, and the reconciler enqueues it later.
const enqueueBudget = 500 * time.Millisecond

// SyncBudget is how long a synchronous provision (Heroku sent no OAuth grant)
// may take inside Heroku's request: Heroku's answer budget is about 3 s.
const SyncBudget = 2 * time.Second

// provisionNow provisions an add-on that came without an OAuth grant. With no
// Platform API access, the only way to hand Heroku the config is the answer
// itself, so the resource is created inside the request. When the driver
// cannot finish in time the add-on is failed, what was made is destroyed, and
// Heroku gets a 422 it shows to the customer.
func (s *Service) provisionNow(ctx context.Context, a *Addon) (*Addon, error) {
	cctx, cancel := context.WithTimeout(ctx, SyncBudget)
	defer cancel()
	err := s.Exclusive(cctx, a.ID, 0, func(ctx context.Context, c *Claim) error {
		made, err := s.createResource(ctx, c)
		if err != nil {
			return err
		}
		if made.State != StateProvisioning {
			return Errorf(EINVALID, "the add-on was deprovisioned while it was provisioned")
		}
		return s.markProvisioned(ctx, c, false, false)
	})
	if err == nil {
		return s.store.Get(ctx, a.ID)
	}
	reason := "the resource could not be created within Heroku's request time"
	if ErrorCode(err) == EINVALID {
		reason = ErrorMessage(err)
	}
	cleanup := context.WithoutCancel(ctx)
	// Failed first, and only then destroyed: a record that committed but
	// whose answer was lost (the budget ran out as Postgres replied) has
	// the add-on provisioned, its resource the customer's, and Heroku gets
	// it as if nothing had happened.
	// If even that cannot be written, what is stored is unknown: the
	// resource is kept (the deadline's give-up, or the leftovers sweep,
	// asks again later) and Heroku gets the store's retryable error.
	stored, ferr := s.fail(cleanup, a.ID, reason)
	switch {
	case ferr != nil:
		s.log().ErrorContext(ctx, "synchronous provision failed and could not be recorded; the resource is kept", "addon", a.ID, "err", err, "record_err", ferr)
		return nil, ferr
	case stored.State == StateProvisioned:
		s.log().WarnContext(ctx, "synchronous provision recorded although its writer saw an error", "addon", a.ID, "err", err)
		return stored, nil
	}
	s.log().WarnContext(ctx, "synchronous provision failed", "addon", a.ID, "err", err)
	if derr := s.driver.Destroy(cleanup, s.resource(a)); derr != nil {
		s.log().ErrorContext(ctx, "clean up after a failed synchronous provision", "addon", a.ID, "err", derr)
	}
	return nil, Errorf(EINVALID, "Provisioning failed: %s.", reason)
}

// GrantJob (the JobGrant handler) trades the add-on's OAuth grant for
// tokens, once, as the add-on's one writer. No transaction is open during
// the call to id.heroku.com: "exchange started" is recorded first (by the
// claim itself, Store.AcquireExchange), the call is made, and the tokens
// are saved at once, retrying the save (never the exchange) until it
// succeeds. If a grant is refused after an earlier attempt started (its
// answer lost to a crash), the add-on fails with a reason saying so, an
// error is logged and GrantLost is called, distinct from an invalid grant.
//
// With the tokens saved, the job goes on to provision the add-on under the
// same claim when grants are being exchanged promptly and one of
// Options.InlineProvisions is free (provisionInline), else it hands the
// add-on on to the provision job.
func (s *Service) GrantJob(ctx context.Context, id ID) error {
	var after *Addon // the add-on as this job leaves it, to hand on
	// The claim records "exchange started" in its own write (an add-on
	// that owes no exchange is claimed unmarked).
	err := s.exclusive(ctx, id, 0, true, func(ctx context.Context, c *Claim) error {
		a := c.Addon()
		if a.State != StateProvisioning {
			return nil
		}
		if !a.GrantExchangedAt.IsZero() {
			after = a
			return nil
		}
		if a.Grant == nil {
			return Errorf(EINVALID, "Heroku sent no OAuth grant for add-on %s.", a.ID)
		}
		again := !c.started
		prompt := !s.now().After(a.CreatedAt.Add(InlineWithin)) // see provisionInline
		code := a.Grant.Code
		tok, err := s.tokenCall(ctx, "grant exchange", func(ctx context.Context) (Tokens, error) {
			return s.platform.ExchangeGrant(ctx, code)
		})
		if errors.Is(err, errNotStarted) {
			// Gone before the call (the claim lost, the job's deadline
			// passed): nothing is spent, so the mark this claim set comes
			// off again, and the retry is a first attempt.
			if c.started {
				_, _ = c.Record(context.WithoutCancel(ctx), func(a *Addon, now time.Time) error {
					if a.GrantExchangedAt.IsZero() {
						a.ExchangeStartedAt = time.Time{}
					}
					return nil
				})
			}
			return err
		}
		if err != nil {
			if again && !Transient(err) {
				// The earlier attempt may have had its answer after all and
				// still be saving the tokens in hand (its job timed out
				// meanwhile): fail, under the claim's fence, only if none
				// were saved.
				exchanged := false
				saved, rerr := c.Record(context.WithoutCancel(ctx), func(a *Addon, now time.Time) error {
					exchanged = false
					if !a.GrantExchangedAt.IsZero() {
						exchanged = true
						return nil
					}
					return a.Transition(now, StateFailed, GrantLostReason)
				})
				if rerr != nil {
					return errors.Join(rerr, fmt.Errorf("exchange grant: %w", err)) // the record's error first: it decides whether the job retries
				}
				if exchanged {
					after = saved
					return nil
				}
				s.log().ErrorContext(ctx, "OAuth grant refused after an earlier exchange attempt whose answer was lost", "addon", id, "started", a.ExchangeStartedAt, "err", err)
				if s.opt.GrantLost != nil {
					s.opt.GrantLost(id)
				}
				return failureRecorded{Wrap(EINVALID, err, "%s", GrantLostReason)}
			}
			if !Transient(err) {
				// A definite answer: the attempt is over, so a later retry
				// (by an operator) is a first attempt again.
				_, _ = c.Record(context.WithoutCancel(ctx), func(a *Addon, now time.Time) error {
					a.ExchangeStartedAt = time.Time{}
					return nil
				})
			}
			return fmt.Errorf("exchange grant: %w", err)
		}
		inline := false
		if prompt {
			var free func()
			if free, inline = s.takeInline(); inline {
				defer free()
			}
		}
		// Without a slot to go on, the save frees the claim too.
		saved, err := s.saveTokens(ctx, c, !inline, nil, tok)
		if err != nil {
			return err
		}
		c.keep(saved)
		after = saved
		if inline {
			after, err = s.provisionInline(ctx, c)
		}
		return err
	})
	if err != nil {
		return s.failIfPermanent(ctx, id, err)
	}
	return s.follow(ctx, after)
}

// takeInline takes one of Options.InlineProvisions without waiting: ok is
// false when all are in use (or there are none), and free gives it back.
func (s *Service) takeInline() (free func(), ok bool) {
	select {
	case s.inline <- struct{}{}:
		return func() { <-s.inline }, true
	default:
		return nil, false
	}
}

// InlineWithin is how soon after Heroku's request a grant job must start
// to go on to provision inline. A later start means grants are queueing
// (a burst): then every grant slot exchanges and hands on, so the burst's
// grants are all exchanged as fast as the slots allow, long before they
// die; provisioning waits, as it can (Heroku allows hours).
const InlineWithin = time.Second

// DefaultInlineBudget bounds how long a grant job spends provisioning
// after its exchange (provisionInline, Options.InlineBudget), well inside
// the grant job's own time limit: a resource that takes longer is left to
// the provision job, whose limit is minutes. A driver that is always
// slower than this gains nothing from inline provisions: set
// INLINE_PROVISIONS=0 for it.
const DefaultInlineBudget = 20 * time.Second

// provisionInline runs the provision job's steps (provision) under the
// grant job's claim, right after the tokens were saved, and returns the
// add-on to hand on. GrantJob calls it only when its job started within
// InlineWithin of Heroku's request and one of Options.InlineProvisions was
// free: at a steady pace (grant slots idle) nearly every add-on is
// provisioned by its grant job, with one claim and one job fewer, and in a
// burst the grants come first. Nothing is given up by trying: if the claim
// is no longer held nothing is called, and a step that fails transiently
// (or runs out of InlineBudget) leaves the add-on as recorded for the
// provision job, which retries it with its own backoff and time limit (one
// with a retry hint, inside the budget, retries the grant job after the
// hint instead); a permanent failure fails the add-on, as the provision
// job would.
func (s *Service) provisionInline(ctx context.Context, c *Claim) (*Addon, error) {
	a := c.Addon()
	if !c.held() || ctx.Err() != nil {
		return a, nil
	}
	if kind, _ := a.NextJob(); kind != JobProvision {
		return a, nil
	}
	ictx, cancel := context.WithTimeout(ctx, s.inlineBudget())
	defer cancel()
	after, err := s.provision(ictx, c)
	switch {
	case err == nil:
		return after, nil
	case Transient(err) && (RetryAfter(err) == 0 || ictx.Err() != nil):
		s.log().InfoContext(ctx, "provisioning after the grant exchange did not finish; the provision job takes over", "addon", a.ID, "err", err)
		return c.Addon(), nil
	default:
		// A refusal fails the add-on (GrantJob's failIfPermanent), as the
		// provision job would; an error with a retry hint (a rate limit, a
		// Retry-After from Heroku or the resource service) within the
		// budget retries this job after it (asynq honours RetryAfter), and
		// the retry, finding the grant exchanged, hands on to the
		// provision job then, not at once into the same limit. A budget
		// that ran out hands on whatever hint came with it (above).
		return nil, fmt.Errorf("provision after the grant exchange: %w", err)
	}
}

// inlineBudget is Options.InlineBudget or its default.
func (s *Service) inlineBudget() time.Duration {
	if s.opt.InlineBudget > 0 {
		return s.opt.InlineBudget
	}
	return DefaultInlineBudget
}

// GrantLostReason is the failure reason of an add-on whose grant Heroku
// refused after an earlier exchange attempt had started: that attempt
// probably spent it and its answer was lost.
const GrantLostReason = "Heroku refused the OAuth grant after an earlier exchange attempt whose answer was lost (the grant was probably spent by that attempt); the add-on has no Platform API access"

// tokenCallTimeout bounds a grant exchange or a token refresh, which run
// on a context of their own: once id.heroku.com has the request, the grant
// (or, for a refresh Heroku rotates, the old refresh token) may be spent,
// so the answer must not be thrown away because the job's deadline passed
// or the claim was lost meanwhile. saveTokens keeps it even then.
const tokenCallTimeout = 30 * time.Second

// tokenCall runs call (a grant exchange or a token refresh, named what) on
// its own context bounded by tokenCallTimeout. A caller already gone
// starts none: the error is a transient errNotStarted, and nothing is
// spent.
func (s *Service) tokenCall(ctx context.Context, what string, call func(context.Context) (Tokens, error)) (Tokens, error) {
	if err := ctx.Err(); err != nil {
		return Tokens{}, transient(fmt.Errorf("%s: %w: %w", what, errNotStarted, err))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenCallTimeout)
	defer cancel()
	return call(ctx)
}

// errNotStarted says tokenCall made no call: its caller was gone.
var errNotStarted = errors.New("not started")

// saveTokens saves tokens that exist only in this process (from an exchange
// when old is nil, else from refreshing old), retrying the save, never the
// call to Heroku. The save is recorded under the claim (freeing it too when
// release is set: the exchange is the grant job's last step) and, should the
// claim have been taken over, as a plain row-locked update all the same:
// these tokens are the only live ones (the grant is spent, the old refresh
// token may be rotated), so they are kept unless someone else already saved
// newer ones.
func (s *Service) saveTokens(ctx context.Context, c *Claim, release bool, old *Tokens, tok Tokens) (*Addon, error) {
	id := c.Lease().AddonID
	set := func(a *Addon, now time.Time) error {
		if old == nil {
			if !a.GrantExchangedAt.IsZero() {
				return nil
			}
			a.Grant = nil // spent: keep no copy of it
			a.GrantExchangedAt = now
			if a.State == StateDeprovisioning || a.State == StateDeprovisioned {
				// Heroku's DELETE was recorded, and is answered, as for
				// an add-on without tokens (a synchronous 204, see
				// Keeper.TellsHeroku): kept now, they would make the web
				// answer 202 after its deprovision job had already
				// decided not to tell Heroku, which would then wait for
				// "done" forever. The add-on is going: they are of no use.
				a.Note(now, "step", "OAuth grant exchanged after the deprovision was asked for; the tokens are not kept")
				return nil
			}
			a.Tokens = &tok
			a.Note(now, "step", "OAuth grant exchanged")
			if a.State == StateFailed && a.Reason == GrantLostReason {
				// A retried grant job found the grant spent and failed the
				// add-on while these tokens were still being saved: they
				// are its Platform API access after all.
				return a.Transition(now, StateProvisioning, "OAuth tokens saved after the grant was reported lost; provisioning resumes")
			}
			return nil
		}
		if a.Tokens == nil {
			// Deprovisioned meanwhile: the tokens are of no use.
			return Errorf(EGONE, "Add-on %s has no OAuth tokens any more.", id)
		}
		if a.Tokens.Refresh != old.Refresh {
			return nil // another writer refreshed already: keep its tokens
		}
		// Filling tok from old is the same each run, so set may run
		// twice (Store.Record).
		if tok.Refresh == "" {
			tok.Refresh = old.Refresh
		}
		if tok.UserID == "" {
			tok.UserID = old.UserID
		}
		a.Tokens = &tok
		a.Note(now, "step", "access token refreshed")
		return nil
	}
	var saved *Addon
	lost := false
	err := s.inHand(ctx, "oauth tokens", id, func(ctx context.Context) error {
		if !lost {
			a, err := c.record(ctx, release, set)
			if !errors.Is(err, ErrLeaseLost) {
				saved = a
				return err
			}
			lost = true
			s.log().ErrorContext(ctx, "lease lost while holding new OAuth tokens; saving them anyway", "addon", id)
		}
		a, err := s.store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
			return set(a, s.now())
		})
		saved = a
		return err
	})
	return saved, err
}

// follow is handOn for a job of a running pipeline: it enqueues the next
// job (NextJob) of the add-on as the job left it (nil: the job changed
// nothing, so it hands nothing on). When the queue is down the add-on is
// flagged (Requeue) so the outbox sweep enqueues it as soon as Redis is
// back; only if that flag cannot be saved either does the job fail (and
// retry).
func (s *Service) follow(ctx context.Context, a *Addon) error {
	if a == nil {
		return nil
	}
	kind, ok := a.NextJob()
	if !ok {
		return nil
	}
	err := s.queue.Enqueue(ctx, kind, a.ID)
	if err == nil {
		return nil
	}
	if ferr := s.requeue(ctx, a.ID); ferr != nil {
		return errors.Join(err, ferr)
	}
	s.log().WarnContext(ctx, "enqueue failed; the outbox sweep will enqueue it", "addon", a.ID, "job", kind, "err", err)
	return nil
}

// requeue flags the add-on for the outbox sweep.
func (s *Service) requeue(ctx context.Context, id ID) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := s.store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		a.Requeue = true
		return nil
	})
	return err
}

// Stale lists add-ons with work left that were last updated before the
// given time, oldest first from after from, for the reconciler (see
// Store.Stale).
func (s *Service) Stale(ctx context.Context, before time.Time, from StaleFrom, limit int) ([]*Addon, error) {
	return s.store.Stale(ctx, before, from, limit)
}

// Requeued lists add-ons whose enqueue failed (flagged Requeue), for the
// outbox sweep.
func (s *Service) Requeued(ctx context.Context, limit int) ([]*Addon, error) {
	return s.store.Requeued(ctx, limit)
}

// Unflag clears the Requeue flag of an add-on the outbox sweep listed (a)
// and enqueued a job for, unless the add-on changed after it was listed:
// its flag may then stand for a newer failed enqueue (of another job), and
// the next sweep sees it. It says whether it cleared the flag.
func (s *Service) Unflag(ctx context.Context, listed *Addon) (cleared bool, err error) {
	_, err = s.store.Update(ctx, listed.ID, func(ctx context.Context, a *Addon) error {
		if !a.UpdatedAt.Equal(listed.UpdatedAt) {
			return errChanged
		}
		a.Requeue = false
		return nil
	})
	if errors.Is(err, errChanged) {
		return false, nil
	}
	return err == nil, err
}

// errChanged leaves an add-on's requeue flag alone when the add-on changed
// after the outbox sweep listed it.
var errChanged = errors.New("add-on changed since it was listed")

// ProvisionJob (the JobProvision handler) runs the provisioning steps that
// are not done yet, in order, as the add-on's one writer: create the
// resource, push config vars, mark the add-on provisioned on Heroku, record
// it. Each finished step is recorded (under the claim's fence) before the
// next starts. Then it hands the add-on on to its next job (a plan change
// recorded while it provisioned).
func (s *Service) ProvisionJob(ctx context.Context, id ID) error {
	var after *Addon // the add-on as this job leaves it, to hand on
	err := s.Exclusive(ctx, id, 0, func(ctx context.Context, c *Claim) error {
		var err error
		after, err = s.provision(ctx, c)
		return err
	})
	if err != nil {
		return s.failIfPermanent(ctx, id, err)
	}
	return s.follow(ctx, after)
}

// provision is the provision job's work under a claim (the grant job's,
// when it goes on inline): it returns the add-on to hand on, nil when
// there is nothing to hand on.
func (s *Service) provision(ctx context.Context, c *Claim) (*Addon, error) {
	a := c.Addon()
	if a.State != StateProvisioning {
		return nil, nil
	}
	if s.now().After(a.Deadline) {
		// Handed on as the give-up left it: one Heroku had provisioned
		// after all may have a plan change waiting.
		err := s.giveUp(ctx, c, ReasonDeadline)
		return c.Addon(), err
	}
	if a.Synchronous() {
		// Only reached by the reconciler: the web process died inside a
		// synchronous provision, so Heroku never got the config.
		return nil, s.giveUp(ctx, c, "the synchronous provision was interrupted")
	}
	if kind, _ := a.NextJob(); kind != JobProvision {
		// The grant comes first, always: hand the add-on to the urgent queue.
		return a, nil
	}
	if err := s.advance(ctx, c); err != nil {
		return nil, err
	}
	return c.Addon(), nil
}

func (s *Service) advance(ctx context.Context, c *Claim) error {
	a := c.Addon()
	var err error
	if a.ResourceCreatedAt.IsZero() {
		if a, err = s.createResource(ctx, c); err != nil || a.State != StateProvisioning {
			return err
		}
	}
	if a.Tokens == nil {
		// Heroku sent no grant: there is no Platform API access for this
		// add-on, so there is nothing to push or mark.
		return s.markProvisioned(ctx, c, false, false)
	}
	pushed := false
	if a.ConfigPushedAt.IsZero() {
		vars, err := s.configVars(a.Vars)
		if err != nil {
			return err
		}
		err = s.withToken(ctx, c, func(token string) error {
			return s.platform.SetConfig(ctx, token, a.ID, vars)
		})
		if err != nil {
			return fmt.Errorf("push config: %w", err)
		}
		// Recorded with the next step: were this process to die in between,
		// the retry pushes the same vars again, which Heroku allows while
		// provisioning; one write fewer per add-on.
		pushed = true
	}
	if a.ProvisionedAt.IsZero() {
		err = s.withToken(ctx, c, func(token string) error {
			return s.platform.MarkProvisioned(ctx, token, a.ID)
		})
		if err != nil {
			return fmt.Errorf("mark provisioned: %w", err)
		}
	}
	return s.markProvisioned(ctx, c, true, pushed)
}

// createResource asks the driver for the resource and records its vars.
// They are recorded even when a deprovision arrived meanwhile, so the
// deprovision job (which waits for this writer's lease) destroys what was
// made; if recording fails, the driver's idempotent Destroy finds the
// resource by the add-on's id.
func (s *Service) createResource(ctx context.Context, c *Claim) (*Addon, error) {
	a := c.Addon()
	plan, err := s.driver.Catalog().Lookup(a.Plan)
	if err != nil {
		return nil, err
	}
	vars, err := s.driver.Create(ctx, resourceOf(a, plan))
	if err != nil {
		return nil, fmt.Errorf("create resource: %w", err)
	}
	if _, err := s.configVars(vars); err != nil {
		return nil, err
	}
	if _, ok := vars["URL"]; !ok {
		return nil, Errorf(EINTERNAL, "Driver %s returned no URL config var.", s.driver.Name())
	}
	return c.Record(ctx, func(a *Addon, now time.Time) error {
		if !a.ResourceCreatedAt.IsZero() && a.State != StateProvisioning {
			return nil
		}
		a.Vars = vars
		a.ResourceCreatedAt = now
		a.Note(now, "step", "resource created by driver "+s.driver.Name())
		return nil
	})
}

// markProvisioned records the add-on provisioned and, this being the last
// step, frees the claim in the same transaction.
func (s *Service) markProvisioned(ctx context.Context, c *Claim, onHeroku, pushed bool) error {
	if onHeroku {
		// Heroku was told: the record must not be cut short by the budget
		// of the calls before it (a job's or an inline provision's
		// deadline), or the next attempt tells Heroku again. A lost lease
		// still refuses it. (A synchronous provision tells Heroku with its
		// answer, after this record: that stays within its request's
		// budget.)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), recordBudget)
		defer cancel()
	}
	_, err := c.record(ctx, true, func(a *Addon, now time.Time) error {
		if a.State != StateProvisioning {
			return nil
		}
		if pushed && a.ConfigPushedAt.IsZero() {
			a.ConfigPushedAt = now
			a.Note(now, "step", "config vars pushed")
		}
		if onHeroku && a.ProvisionedAt.IsZero() {
			a.ProvisionedAt = now
		}
		return a.Transition(now, StateProvisioned, "")
	})
	return err
}

// recordBudget bounds a record that must outlive its caller's deadline.
const recordBudget = 5 * time.Second

// configVars prefixes driver vars into the names Heroku expects.
func (s *Service) configVars(vars Vars) (map[string]*string, error) {
	out := make(map[string]*string, len(vars))
	for k, v := range vars {
		name, err := ConfigName(s.opt.Prefix, k)
		if err != nil {
			return nil, err
		}
		out[name] = &v
	}
	return out, nil
}

// Config returns the add-on's config vars with their full names, as Heroku
// shows them to the app.
func (s *Service) Config(a *Addon) map[string]string {
	out := make(map[string]string, len(a.Vars))
	for k, v := range a.Vars {
		out[s.opt.Prefix+"_"+k] = v
	}
	return out
}

// withToken calls fn with a fresh access token for the claimed add-on,
// refreshing shortly before expiry and once more if the Platform API
// refuses the token. Refreshes happen under the claim, so only one writer
// refreshes an add-on's tokens at a time, and outside any transaction.
func (s *Service) withToken(ctx context.Context, c *Claim, fn func(token string) error) error {
	token, err := s.accessToken(ctx, c, false)
	if err != nil {
		return err
	}
	err = fn(token)
	if ErrorCode(err) != EUNAUTHORIZED {
		return err
	}
	if token, err = s.accessToken(ctx, c, true); err != nil {
		return err
	}
	return fn(token)
}

func (s *Service) accessToken(ctx context.Context, c *Claim, force bool) (string, error) {
	a := c.Addon()
	if a.Tokens == nil {
		return "", Errorf(EINVALID, "Add-on %s has no OAuth tokens.", a.ID)
	}
	if !force && s.now().Add(tokenSlack).Before(a.Tokens.ExpiresAt) {
		return a.Tokens.Access, nil
	}
	old := *a.Tokens
	tok, err := s.tokenCall(ctx, "token refresh", func(ctx context.Context) (Tokens, error) {
		return s.platform.RefreshTokens(ctx, old.Refresh)
	})
	if err != nil {
		return "", fmt.Errorf("refresh token: %w", err)
	}
	saved, err := s.saveTokens(ctx, c, false, &old, tok)
	if err != nil {
		return "", err
	}
	c.keep(saved)
	if !c.held() {
		// Saved outside the fence (saveTokens keeps them all the same):
		// another writer has the add-on now, and nothing this claim does
		// next may reach Heroku.
		return "", LeaseLost(a.ID)
	}
	if saved.Tokens == nil {
		return "", Errorf(EGONE, "Add-on %s has no OAuth tokens any more.", a.ID)
	}
	return saved.Tokens.Access, nil
}

// failIfPermanent marks the add-on failed when err is not worth retrying,
// and returns err either way so the job adapter can stop or retry.
func (s *Service) failIfPermanent(ctx context.Context, id ID, err error) error {
	if err == nil || Transient(err) {
		return err
	}
	if ErrorCode(err) == ENOTFOUND && errors.Is(err, errNoAddon) {
		return err
	}
	if errors.As(err, new(failureRecorded)) {
		return err
	}
	if ferr := s.Fail(ctx, id, ErrorMessage(err)); ferr != nil {
		// The record's error first: it decides whether the job retries.
		// Unrecorded, the failure has not happened, so the job must run
		// again rather than be dropped and replayed by a sweep minutes on.
		return errors.Join(ferr, err)
	}
	return err
}

var errNoAddon = errors.New("no such add-on")

// failureRecorded marks a permanent error whose failure its writer has
// recorded already, under its claim's fence: failIfPermanent must not
// record it again, unfenced, once the claim is let go. A writer with
// tokens in hand may have revived the add-on in between (saveTokens after
// a grant reported lost), and failing it again would strand it failed
// with working tokens.
type failureRecorded struct{ error }

func (e failureRecorded) Unwrap() error { return e.error }

// NotFound builds the ENOTFOUND error stores return for an unknown add-on,
// named by its id or (operators) by its name.
func NotFound[K ID | string](key K) error {
	return &Error{Code: ENOTFOUND, Message: fmt.Sprintf("Add-on %s not found.", key), Err: errNoAddon}
}

// Fail marks a provisioning add-on failed with a reason operators can read.
func (s *Service) Fail(ctx context.Context, id ID, reason string) error {
	_, err := s.fail(ctx, id, reason)
	return err
}

// fail is Fail, returning the add-on as stored afterwards.
func (s *Service) fail(ctx context.Context, id ID, reason string) (*Addon, error) {
	failed := false
	a, err := s.store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if failed = a.State == StateProvisioning; !failed {
			return nil
		}
		return a.Transition(s.now(), StateFailed, reason)
	})
	if err == nil && failed {
		s.log().WarnContext(ctx, "add-on failed", "addon", id, "reason", reason)
	}
	return a, err
}

// ReasonDeadline is the failure reason of a provision abandoned at its
// deadline (its resource destroyed). Migration 16 and Retry know add-ons
// by it whose vars a release before giveUp forgot them still hold.
const ReasonDeadline = "provisioning did not finish before the deadline"

// GiveUp abandons a provision past its deadline, as the add-on's one
// writer: the resource is destroyed (so nothing is left behind for a
// customer Heroku will not charge) and the add-on is marked failed with the
// reason, unless Heroku has it provisioned after all (see giveUp). left is
// the state the add-on is in afterwards, so the caller can tell which. A
// busy add-on is left for the next sweep.
func (s *Service) GiveUp(ctx context.Context, id ID, reason string) (left State, err error) {
	err = s.Exclusive(ctx, id, 0, func(ctx context.Context, c *Claim) error {
		defer func() { left = c.Addon().State }()
		if c.Addon().State != StateProvisioning {
			return nil
		}
		return s.giveUp(ctx, c, reason)
	})
	return left, err
}

func (s *Service) giveUp(ctx context.Context, c *Claim, reason string) error {
	live, err := s.liveOnHeroku(ctx, c)
	if err != nil {
		return err
	}
	if live {
		// An earlier attempt marked it provisioned on Heroku and lost the
		// record of that (a crash, a database outage past the deadline):
		// the customer has it, with these credentials, and is billed for
		// it. Recorded provisioned, never destroyed.
		s.log().WarnContext(ctx, "Heroku has the add-on provisioned; recording that instead of giving up", "addon", c.Addon().ID, "reason", reason)
		return s.markProvisioned(ctx, c, true, true)
	}
	if err := s.driver.Destroy(ctx, s.resource(c.Addon())); err != nil {
		return transient(fmt.Errorf("clean up after deadline: %w", err))
	}
	_, err = c.Record(ctx, func(a *Addon, now time.Time) error {
		if a.State != StateProvisioning {
			return nil
		}
		a.forgetResource()
		return a.Transition(now, StateFailed, reason)
	})
	if err == nil {
		s.log().WarnContext(ctx, "add-on failed", "addon", c.Addon().ID, "reason", reason)
	}
	return err
}

// liveOnHeroku reports whether Heroku has the add-on provisioned, for a
// give-up (or a leftover's removal) about to destroy its resource. Only
// an add-on with a recorded resource and tokens can have been marked (the
// resource is recorded before the mark), and only with a Watcher can
// Heroku be asked. A refusal is an answer, not live: a 404, or the
// add-on's token (or its refresh) refused, which is what Heroku does once
// it has removed the add-on and revoked its authorization, and which
// leaves Kiln unable ever to push or mark it. An error worth retrying is
// returned, so the caller waits for Heroku rather than guess.
func (s *Service) liveOnHeroku(ctx context.Context, c *Claim) (bool, error) {
	a := c.Addon()
	if s.watcher == nil || a.Tokens == nil || a.ResourceCreatedAt.IsZero() {
		return false, nil
	}
	var info HerokuAddon
	err := s.withToken(ctx, c, func(token string) error {
		var err error
		info, err = s.watcher.GetAddon(ctx, token, a.ID)
		return err
	})
	switch {
	case err == nil:
		return info.State == string(StateProvisioned), nil
	case Transient(err):
		return false, fmt.Errorf("ask Heroku whether it has the add-on provisioned: %w", err)
	default:
		return false, nil
	}
}

// resource describes the add-on to the driver as it is now: on its current
// plan (a plan change passes the target separately, so the driver can tell
// an upgrade from a downgrade).
func (s *Service) resource(a *Addon) Resource {
	plan, _ := s.driver.Catalog().Lookup(a.Plan)
	return resourceOf(a, plan)
}

func resourceOf(a *Addon, plan Plan) Resource {
	return Resource{ID: string(a.ID), Name: a.Name, Plan: plan, Region: a.Region, Options: a.Options, Vars: a.Vars}
}

// Abilities says which optional actions (rotation, a roll with grace, a
// panel) the driver supports, so the dashboard and the operator API offer
// only what can work.
func (s *Service) Abilities() Abilities { return s.driver.Abilities() }

// DriverName is the RESOURCE_DRIVER value of the driver, for the operator
// API's plan ids and the process's start line.
func (s *Service) DriverName() string { return s.driver.Name() }

// Catalog is the plans the driver sells.
func (s *Service) Catalog() Catalog { return s.driver.Catalog() }

// Plan returns the catalog's plan for slug, or an EINVALID error Heroku
// can show.
func (s *Service) Plan(slug string) (Plan, error) { return s.driver.Catalog().Lookup(slug) }

// Prefix is the config var prefix (ADDON_CONFIG_PREFIX): the dashboard
// names <PREFIX>_URL with it.
func (s *Service) Prefix() string { return s.opt.Prefix }
