package addon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Service is the add-on use cases, written against the domain interfaces
// only: the web adapter calls it when Heroku calls Kiln, the jobs adapter
// calls it when a job runs. Everything that must hold whatever adapter is
// plugged in (idempotency, step order, deadlines) lives here.
type Service struct {
	Store    Store
	Queue    Queue
	Platform Platform
	Driver   Driver
	// Prefix is the config var prefix (ADDON_CONFIG_PREFIX).
	Prefix string
	// Deadline bounds provisioning (PROVISION_DEADLINE); Heroku gives up at 12 h.
	Deadline time.Duration
	Log      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// tokenSlack is how long before expiry an access token is refreshed.
const tokenSlack = 5 * time.Minute

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// ProvisionRequest is Heroku's provision call, already decoded.
type ProvisionRequest struct {
	ID            string
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
	if !ValidID(req.ID) {
		return Plan{}, Errorf(EINVALID, "The uuid %q is not a valid UUID.", req.ID)
	}
	if req.Plan == "" {
		return Plan{}, Errorf(EINVALID, "The plan field is required.")
	}
	return s.Driver.Catalog().Lookup(req.Plan)
}

// Provision records Heroku's provision request and starts the pipeline. It
// answers at once; the work happens in jobs. A repeat for a known uuid
// returns the add-on as recorded and starts nothing (created=false). A repeat
// for a deprovisioned uuid is EGONE.
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
		Deadline:      now.Add(s.Deadline),
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	a.Note(now, "state", fmt.Sprintf("provision requested on plan %s", req.Plan))
	stored, created, err := s.Store.Create(ctx, a)
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
		}
		return stored, false, nil
	}
	if stored.Synchronous() {
		a, err := s.provisionNow(ctx, stored)
		return a, true, err
	}
	s.enqueue(ctx, JobGrant, stored.ID)
	return stored, true, nil
}

// enqueue starts a job on behalf of a call Heroku is waiting on. The change
// that needs the job is already recorded, so when Redis is down or slow the
// call still succeeds, quickly, and the reconciler enqueues the job later:
// nothing accepted is lost.
func (s *Service) enqueue(ctx context.Context, kind JobKind, id string) {
	ctx, cancel := context.WithTimeout(ctx, enqueueBudget)
	defer cancel()
	if err := s.Queue.Enqueue(ctx, kind, id); err != nil {
		s.log().WarnContext(ctx, "enqueue failed; the reconciler will retry", "addon", id, "job", kind, "err", err)
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
	made, err := s.createResource(cctx, a)
	if err == nil && made.State == StateProvisioning {
		if err = s.markProvisioned(ctx, a.ID, false); err == nil {
			return s.Store.Get(ctx, a.ID)
		}
	}
	reason := "the resource could not be created within Heroku's request time"
	if ErrorCode(err) == EINVALID {
		reason = ErrorMessage(err)
	}
	s.log().WarnContext(ctx, "synchronous provision failed", "addon", a.ID, "err", err)
	cleanup := context.WithoutCancel(ctx)
	if derr := s.Driver.Destroy(cleanup, s.resource(a)); derr != nil {
		s.log().ErrorContext(ctx, "clean up after a failed synchronous provision", "addon", a.ID, "err", derr)
	}
	if ferr := s.Fail(cleanup, a.ID, reason); ferr != nil {
		return nil, ferr
	}
	return nil, Errorf(EINVALID, "Provisioning failed: %s.", reason)
}

// ExchangeGrant trades the add-on's OAuth grant for tokens, once. It runs
// under the add-on's row lock, so concurrent attempts cannot both spend the
// single-use grant; a finished exchange is never repeated.
func (s *Service) ExchangeGrant(ctx context.Context, id string) error {
	a, err := s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if !a.GrantExchangedAt.IsZero() || a.State != StateProvisioning {
			return nil
		}
		if a.Grant == nil {
			return Errorf(EINVALID, "Heroku sent no OAuth grant for add-on %s.", a.ID)
		}
		tok, err := s.Platform.ExchangeGrant(ctx, a.Grant.Code)
		if err != nil {
			return fmt.Errorf("exchange grant: %w", err)
		}
		now := s.now()
		a.Tokens = &tok
		a.Grant = nil // spent: keep no copy of it
		a.GrantExchangedAt = now
		a.Note(now, "step", "OAuth grant exchanged")
		return nil
	})
	if err != nil {
		return s.failIfPermanent(ctx, id, err)
	}
	if a.State != StateProvisioning {
		return nil
	}
	return s.Queue.Enqueue(ctx, JobProvision, id)
}

// Advance runs the provisioning steps that are not done yet, in order:
// create the resource, push config vars, mark the add-on provisioned on
// Heroku, record it. Each finished step is recorded before the next starts.
func (s *Service) Advance(ctx context.Context, id string) error {
	a, err := s.Store.Get(ctx, id)
	if err != nil {
		return err
	}
	if a.State != StateProvisioning {
		return nil
	}
	if s.now().After(a.Deadline) {
		return s.GiveUp(ctx, id, "provisioning did not finish before the deadline")
	}
	if a.Synchronous() {
		// Only reached by the reconciler: the web process died inside a
		// synchronous provision, so Heroku never got the config.
		return s.GiveUp(ctx, id, "the synchronous provision was interrupted")
	}
	if a.Grant != nil && a.GrantExchangedAt.IsZero() {
		// The grant comes first, always: hand the add-on to the urgent queue.
		return s.Queue.Enqueue(ctx, JobGrant, id)
	}
	if err := s.advance(ctx, a); err != nil {
		return s.failIfPermanent(ctx, id, err)
	}
	return nil
}

func (s *Service) advance(ctx context.Context, a *Addon) error {
	var err error
	if a.ResourceCreatedAt.IsZero() {
		if a, err = s.createResource(ctx, a); err != nil || a.State != StateProvisioning {
			return err
		}
	}
	if a.Tokens == nil {
		// Heroku sent no grant: there is no Platform API access for this
		// add-on, so there is nothing to push or mark.
		return s.markProvisioned(ctx, a.ID, false)
	}
	if a.ConfigPushedAt.IsZero() {
		vars, err := s.configVars(a.Vars)
		if err != nil {
			return err
		}
		err = s.withToken(ctx, a, func(token string) error {
			return s.Platform.SetConfig(ctx, token, a.ID, vars)
		})
		if err != nil {
			return fmt.Errorf("push config: %w", err)
		}
		if a, err = s.step(ctx, a.ID, func(a *Addon, now time.Time) { a.ConfigPushedAt = now }, "config vars pushed"); err != nil || a.State != StateProvisioning {
			return err
		}
	}
	if a.ProvisionedAt.IsZero() {
		err = s.withToken(ctx, a, func(token string) error {
			return s.Platform.MarkProvisioned(ctx, token, a.ID)
		})
		if err != nil {
			return fmt.Errorf("mark provisioned: %w", err)
		}
	}
	return s.markProvisioned(ctx, a.ID, true)
}

func (s *Service) createResource(ctx context.Context, a *Addon) (*Addon, error) {
	plan, err := s.Driver.Catalog().Lookup(a.Plan)
	if err != nil {
		return nil, err
	}
	vars, err := s.Driver.Create(ctx, resourceOf(a, plan))
	if err != nil {
		return nil, fmt.Errorf("create resource: %w", err)
	}
	if _, err := s.configVars(vars); err != nil {
		return nil, err
	}
	if _, ok := vars["URL"]; !ok {
		return nil, Errorf(EINTERNAL, "Driver %s returned no URL config var.", s.Driver.Name())
	}
	a, err = s.step(ctx, a.ID, func(a *Addon, now time.Time) {
		a.Vars = vars
		a.ResourceCreatedAt = now
	}, "resource created by driver "+s.Driver.Name())
	if err != nil {
		return nil, err
	}
	if a.State != StateProvisioning {
		// A deprovision arrived while the driver worked: the deprovision job
		// may already have destroyed the (then half-made) resource, so this
		// side destroys what it just made. Destroy is idempotent.
		if err := s.Driver.Destroy(ctx, resourceOf(a, plan)); err != nil {
			return nil, fmt.Errorf("destroy a resource made after deprovision: %w", err)
		}
	}
	return a, nil
}

// step records a finished pipeline step, unless the add-on left the
// provisioning state meanwhile (a deprovision arrived).
func (s *Service) step(ctx context.Context, id string, set func(a *Addon, now time.Time), note string) (*Addon, error) {
	return s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if a.State != StateProvisioning {
			return nil
		}
		now := s.now()
		set(a, now)
		a.Note(now, "step", note)
		return nil
	})
}

func (s *Service) markProvisioned(ctx context.Context, id string, onHeroku bool) error {
	a, err := s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if a.State != StateProvisioning {
			return nil
		}
		now := s.now()
		if onHeroku && a.ProvisionedAt.IsZero() {
			a.ProvisionedAt = now
		}
		return a.Transition(now, StateProvisioned, "")
	})
	if err != nil {
		return err
	}
	if a.State == StateProvisioned && a.PendingPlan != "" && a.PendingPlan != a.Plan {
		return s.Queue.Enqueue(ctx, JobPlanChange, id)
	}
	return nil
}

// configVars prefixes driver vars into the names Heroku expects.
func (s *Service) configVars(vars Vars) (map[string]*string, error) {
	out := make(map[string]*string, len(vars))
	for k, v := range vars {
		name, err := ConfigName(s.Prefix, k)
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
		out[s.Prefix+"_"+k] = v
	}
	return out
}

// withToken calls fn with a fresh access token for the add-on, refreshing
// shortly before expiry and once more if the Platform API refuses the token.
// The caller's copy of the add-on supplies the token when it is fresh, so the
// common case costs no read; refreshes run under the add-on's row lock, so
// they are serialised.
func (s *Service) withToken(ctx context.Context, a *Addon, fn func(token string) error) error {
	token, err := s.accessToken(ctx, a, false)
	if err != nil {
		return err
	}
	err = fn(token)
	if ErrorCode(err) != EUNAUTHORIZED {
		return err
	}
	if token, err = s.accessToken(ctx, a, true); err != nil {
		return err
	}
	return fn(token)
}

func (s *Service) accessToken(ctx context.Context, a *Addon, force bool) (string, error) {
	id := a.ID
	if a.Tokens == nil {
		return "", Errorf(EINVALID, "Add-on %s has no OAuth tokens.", id)
	}
	if !force && s.now().Add(tokenSlack).Before(a.Tokens.ExpiresAt) {
		return a.Tokens.Access, nil
	}
	stale := a.Tokens.Access
	saved, err := s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if a.Tokens.Access != stale {
			return nil // another worker refreshed while we waited for the lock
		}
		tok, err := s.Platform.RefreshTokens(ctx, a.Tokens.Refresh)
		if err != nil {
			return fmt.Errorf("refresh token: %w", err)
		}
		if tok.Refresh == "" {
			tok.Refresh = a.Tokens.Refresh
		}
		if tok.UserID == "" {
			tok.UserID = a.Tokens.UserID
		}
		a.Tokens = &tok
		a.Note(s.now(), "step", "access token refreshed")
		return nil
	})
	if err != nil {
		return "", err
	}
	a.Tokens = saved.Tokens // the caller's next call uses the new token
	return a.Tokens.Access, nil
}

// failIfPermanent marks the add-on failed when err is not worth retrying,
// and returns err either way so the job adapter can stop or retry.
func (s *Service) failIfPermanent(ctx context.Context, id string, err error) error {
	if err == nil || Transient(err) {
		return err
	}
	if ErrorCode(err) == ENOTFOUND && errors.Is(err, errNoAddon) {
		return err
	}
	if ferr := s.Fail(ctx, id, ErrorMessage(err)); ferr != nil {
		return errors.Join(err, ferr)
	}
	return err
}

var errNoAddon = errors.New("no such add-on")

// NotFound builds the ENOTFOUND error stores return for an unknown add-on.
func NotFound(id string) error {
	return &Error{Code: ENOTFOUND, Message: fmt.Sprintf("Add-on %s not found.", id), Err: errNoAddon}
}

// Fail marks a provisioning add-on failed with a reason operators can read.
func (s *Service) Fail(ctx context.Context, id, reason string) error {
	_, err := s.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if a.State != StateProvisioning {
			return nil
		}
		return a.Transition(s.now(), StateFailed, reason)
	})
	if err == nil {
		s.log().WarnContext(ctx, "add-on failed", "addon", id, "reason", reason)
	}
	return err
}

// GiveUp abandons a provision past its deadline: the resource is destroyed
// (so nothing is left behind for a customer Heroku will not charge) and the
// add-on is marked failed with the reason.
func (s *Service) GiveUp(ctx context.Context, id, reason string) error {
	a, err := s.Store.Get(ctx, id)
	if err != nil {
		return err
	}
	if a.State != StateProvisioning {
		return nil
	}
	if err := s.Driver.Destroy(ctx, s.resource(a)); err != nil {
		return fmt.Errorf("clean up after deadline: %w", err)
	}
	return s.Fail(ctx, id, reason)
}

// resource describes the add-on to the driver as it is now: on its current
// plan (a plan change passes the target separately, so the driver can tell
// an upgrade from a downgrade).
func (s *Service) resource(a *Addon) Resource {
	plan, _ := s.Driver.Catalog().Lookup(a.Plan)
	return resourceOf(a, plan)
}

func resourceOf(a *Addon, plan Plan) Resource {
	return Resource{ID: a.ID, Name: a.Name, Plan: plan, Region: a.Region, Options: a.Options, Vars: a.Vars}
}
