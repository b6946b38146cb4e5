// Package addon is Kiln's domain: the add-on a Heroku customer buys, its plan
// and state machine, the errors the rest of Kiln speaks, and the interfaces of
// everything the domain needs from the outside world (store, queue, Heroku's
// Platform API, resource drivers). It imports no infrastructure: adapters in
// sibling packages implement these interfaces and only cmd/* wires them.
package addon

import (
	"context"
	"maps"
	"regexp"
	"strings"
	"time"
)

// State is where an add-on is in its life. Heroku sees provisioning,
// provisioned, deprovisioning and deprovisioned; failed is Kiln's own word
// for an add-on it gave up on deliberately, with a reason.
type State string

// The states of an add-on.
const (
	StateProvisioning   State = "provisioning"
	StateProvisioned    State = "provisioned"
	StateFailed         State = "failed"
	StateDeprovisioning State = "deprovisioning"
	StateDeprovisioned  State = "deprovisioned"
)

var transitions = map[State][]State{
	StateProvisioning:   {StateProvisioned, StateFailed, StateDeprovisioning},
	StateProvisioned:    {StateDeprovisioning},
	StateFailed:         {StateProvisioning, StateDeprovisioning},
	StateDeprovisioning: {StateDeprovisioned},
	StateDeprovisioned:  nil,
}

// CanBecome reports whether the state machine allows moving from s to to.
// Keeping the table here means no adapter can invent a transition.
func (s State) CanBecome(to State) bool {
	for _, t := range transitions[s] {
		if t == to {
			return true
		}
	}
	return false
}

// Grant is the OAuth authorization code Heroku sends with a provision
// request. It can be exchanged once, and dies minutes after the request.
type Grant struct {
	Code      string
	ExpiresAt time.Time
}

// Tokens are the per-add-on OAuth tokens Kiln holds for the Platform API.
// They are secrets: the store encrypts them at rest.
type Tokens struct {
	Access    string
	Refresh   string
	ExpiresAt time.Time
	UserID    string
}

// Leftover reports whether a failed add-on may still hold what
// provisioning made: a resource the driver reported, Heroku's tokens, or,
// for one Heroku sent without a grant, a resource whose clean-up after the
// failed request may itself have failed. Heroku removes an add-on not
// provisioned within HerokuLimit of its request, and then all of it is
// owed to no one (Service.RemoveLeftover). One whose grant was refused or
// lost before anything was made holds none of it and stays failed, as
// operators' alerts on its reason expect.
func (a *Addon) Leftover() bool {
	return a.State == StateFailed && (!a.ResourceCreatedAt.IsZero() || a.Tokens != nil || a.Synchronous())
}

// forgetResource drops what a's destroyed resource left behind (its vars,
// its creation and the push of its vars), so the next provision makes it
// anew instead of pushing dead credentials to the app.
func (a *Addon) forgetResource() {
	a.Vars, a.ResourceCreatedAt, a.ConfigPushedAt = nil, time.Time{}, time.Time{}
}

// StaleFrom is where a listing of stale add-ons starts: after the add-on
// with this UpdatedAt and ID, in Store.Stale's order. The reconciler
// carries it from one sweep to the next, so add-ons it cannot move on
// (a resource service that keeps refusing, for one) do not fill every
// sweep's page and hide newer ones for good; the zero value starts from
// the oldest.
type StaleFrom struct {
	UpdatedAt time.Time
	ID        ID
}

// Precedes reports whether a listing from f includes a: a comes after f
// in Store.Stale's order (UpdatedAt, then ID). The zero StaleFrom
// precedes every add-on.
func (f StaleFrom) Precedes(a *Addon) bool {
	if f.UpdatedAt.IsZero() {
		return true
	}
	if c := a.UpdatedAt.Compare(f.UpdatedAt); c != 0 {
		return c > 0
	}
	return a.ID > f.ID
}

// Vars are config vars as a driver produces them: names without the add-on's
// prefix ("URL", "API_KEY"). The service adds the prefix, because Heroku
// renames the prefix per attachment and drivers should not care.
type Vars map[string]string

// Event is one line of an add-on's audit trail, so an operator can answer
// "what happened to this add-on?".
type Event struct {
	ID      int64
	AddonID ID
	Kind    string // "state", "step", "plan", "sso", ...
	State   State  // the state after the event
	Message string
	At      time.Time
}

// Addon is one customer's add-on as Kiln records it. The step timestamps
// (zero when not done) make each pipeline step resumable: a retry or a crash
// picks up at the first step without one and never repeats a finished one.
type Addon struct {
	ID          ID // Heroku's add-on uuid; the primary key
	Name        string
	Plan        string
	PendingPlan string // a plan change Heroku asked for that is still to be applied
	// PendingPlanAt is when Heroku asked for PendingPlan: a plan change
	// made inside Heroku's call tells by it a change asked for while it
	// worked from the one it replaces, even when both name the same plan.
	PendingPlanAt time.Time
	Region        string
	CallbackURL   string
	Options       map[string]string
	LogInputURL   string
	LogDrainToken string

	State  State
	Reason string // why the add-on failed, or other operator-facing context

	Grant  *Grant  // nil when Heroku sent none, and once exchanged
	Tokens *Tokens // nil until the grant is exchanged
	Vars   Vars    // the driver's config vars; secret

	GrantExchangedAt  time.Time
	ResourceCreatedAt time.Time
	ConfigPushedAt    time.Time
	ProvisionedAt     time.Time
	DeprovisionedAt   time.Time

	Deadline time.Time // give up provisioning after this

	// ExchangeStartedAt is when a grant exchange was first attempted. Set
	// before the call to id.heroku.com, so when the answer is lost (a crash,
	// a dropped database connection) and a later attempt is refused, Kiln
	// can tell "the grant was probably spent by us" from an invalid grant.
	ExchangeStartedAt time.Time
	// Requeue marks accepted work whose enqueue failed (Redis was down); the
	// worker's outbox sweep enqueues it within seconds of Redis returning.
	Requeue bool
	// Halted names a job (plan change, config push) that failed for good;
	// the reconciler leaves it alone until an operator retries it.
	Halted     JobKind
	HaltReason string

	// The add-on's writer lease, as last read (see Lease); only the store
	// moves these, through Claim, Renew and Release.
	LeaseOwner string
	LeaseUntil time.Time
	Fence      int64

	CreatedAt time.Time
	UpdatedAt time.Time

	events []Event
}

// Synchronous reports whether Heroku sent this add-on without an OAuth
// grant. Kiln then has no Platform API access for it: it is provisioned
// inside Heroku's request and its config travels in the answer.
func (a *Addon) Synchronous() bool {
	return a.Grant == nil && a.GrantExchangedAt.IsZero() && a.Tokens == nil
}

// Transition moves the add-on to another state, recording the reason in the
// audit trail. It refuses moves the state machine does not allow.
func (a *Addon) Transition(now time.Time, to State, reason string) error {
	if a.State == to {
		return nil
	}
	if !a.State.CanBecome(to) {
		return Errorf(ECONFLICT, "Add-on %s is %s and cannot become %s.", a.ID, a.State, to)
	}
	a.State = to
	if to == StateFailed || reason != "" {
		a.Reason = reason
	}
	a.events = append(a.events, Event{AddonID: a.ID, Kind: "state", State: to, Message: reason, At: now})
	return nil
}

// Note records a non-state event (a finished step, a sign-in) in the audit
// trail; the store saves it atomically with the add-on.
func (a *Addon) Note(now time.Time, kind, message string) {
	a.events = append(a.events, Event{AddonID: a.ID, Kind: kind, State: a.State, Message: message, At: now})
}

// TakeEvents returns the events recorded since the last call and forgets
// them. Stores call it when saving.
func (a *Addon) TakeEvents() []Event {
	ev := a.events
	a.events = nil
	return ev
}

// Clone is a copy of a that shares nothing a caller can change (maps,
// grant, tokens) and carries none of a's unsaved events: what a store
// hands back after a write, so the caller's add-on stays its own.
func (a *Addon) Clone() *Addon {
	c := *a
	c.events = nil
	c.Options = maps.Clone(a.Options)
	c.Vars = maps.Clone(a.Vars)
	if a.Grant != nil {
		g := *a.Grant
		c.Grant = &g
	}
	if a.Tokens != nil {
		t := *a.Tokens
		c.Tokens = &t
	}
	return &c
}

// ID is an add-on's id: the uuid Heroku gives it, lower-cased (Postgres's
// spelling, and the one every job's dedup key and log line uses). Values
// come from ParseID at the edge (an HTTP request, a job's payload) or from
// the store; the domain never checks or lower-cases one again. (The
// Postgres store keeps one guard of its own: a string converted to ID
// without ParseID must be "not found", not a failed uuid cast.)
type ID string

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ValidID reports whether id looks like the uuid Heroku uses for add-ons.
// Adapters that build names from an id (a database role, a URL) check
// with it; everything else takes an ID from ParseID.
func ValidID(id string) bool { return uuidPattern.MatchString(id) }

// ParseID reads an add-on id as a caller sent it: a uuid in any case,
// returned lower-cased. Anything else is EINVALID, with a message Heroku
// can show the customer.
func ParseID(s string) (ID, error) {
	if !ValidID(s) {
		return "", Errorf(EINVALID, "The uuid %q is not a valid UUID.", Clip(s, MaxEchoLen))
	}
	return ID(strings.ToLower(s)), nil
}

// ParseExistingID is ParseID for a value that names an add-on that should
// exist (a URL's path, a sign-in form): one that is not a uuid names none,
// so it is ENOTFOUND, as an unknown add-on is.
func ParseExistingID(s string) (ID, error) {
	id, err := ParseID(s)
	if err != nil {
		return "", NotFound(Clip(s, MaxEchoLen))
	}
	return id, nil
}

var varSuffix = regexp.MustCompile(`^[0-9A-Z_]+$`)
var varName = regexp.MustCompile(`^[A-Z][0-9A-Z_]+$`)

// ConfigName returns the full config var name for a driver var, refusing
// names Heroku would reject (^[A-Z][0-9A-Z_]+$, starting with PREFIX_).
func ConfigName(prefix, suffix string) (string, error) {
	name := prefix + "_" + suffix
	if !varSuffix.MatchString(suffix) || !varName.MatchString(name) {
		return "", Errorf(EINTERNAL, "Config var name %q is not valid for Heroku.", name)
	}
	return name, nil
}

// ValidPrefix reports whether prefix can start Heroku config var names.
func ValidPrefix(prefix string) bool { return varName.MatchString(prefix + "_X") }

// DefaultPrefix is Heroku's config var prefix for an add-on id when the
// manifest names none: the id upper-cased with "-" as "_". Kiln's
// configuration and the tools that write manifests must agree on it.
func DefaultPrefix(id string) string { return strings.ToUpper(strings.ReplaceAll(id, "-", "_")) }

// Store keeps add-ons and their audit trail. Implementations map their
// driver's errors to domain errors (ENOTFOUND, EUNAVAILABLE, ...).
type Store interface {
	// Create records a new add-on. When one with the same ID exists, it
	// returns that one and created=false: the unique constraint decides, so
	// concurrent duplicates cannot both create.
	Create(ctx context.Context, a *Addon) (stored *Addon, created bool, err error)
	// Get returns the add-on or an ENOTFOUND error.
	Get(ctx context.Context, id ID) (*Addon, error)
	// Update loads the add-on under a row lock, calls fn, and saves the
	// add-on and the events fn recorded in one transaction. If fn returns an
	// error, nothing is saved and that error is returned. Concurrent updates
	// of one add-on are serialised.
	Update(ctx context.Context, id ID, fn func(ctx context.Context, a *Addon) error) (*Addon, error)
	// Stale lists add-ons with work left (a non-final state, or a
	// provisioned add-on with a pending plan change or config vars not yet
	// pushed to Heroku) that were last updated before the given time, oldest
	// first (by UpdatedAt, then ID), from after from (from the oldest when
	// from is zero), for the reconciler. Like Requeued and Leftovers, it
	// leaves out stored add-ons it cannot read and returns the rest with
	// an *UnreadableError naming them.
	Stale(ctx context.Context, before time.Time, from StaleFrom, limit int) ([]*Addon, error)
	// Events returns an add-on's audit trail, oldest first.
	Events(ctx context.Context, id ID) ([]Event, error)

	// Acquire takes the add-on's writer lease for ttl if it is free or
	// lapsed, bumping its fence, and returns the add-on with the lease;
	// Busy when another writer holds it (see Service.Exclusive).
	Acquire(ctx context.Context, id ID, owner string, ttl time.Duration) (*Addon, Lease, error)
	// AcquireExchange is Acquire for the grant job: in the same write,
	// when the add-on owes a grant exchange (provisioning, a Grant held,
	// GrantExchangedAt zero), it records that one starts
	// (ExchangeStartedAt, kept when an earlier attempt set it), and
	// started reports whether this claim set it: a claim and a mark in one
	// write instead of two, on every provision. Like every write of an
	// add-on's data, the mark moves UpdatedAt; a claim that marks nothing
	// leaves it.
	AcquireExchange(ctx context.Context, id ID, owner string, ttl time.Duration) (a *Addon, l Lease, started bool, err error)
	// Renew extends a held lease; LeaseLost if it was taken over.
	Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// Release frees a held lease; one already taken over is left alone.
	Release(ctx context.Context, l Lease) error
	// Record is Update for a lease holder: it saves nothing and returns
	// LeaseLost unless the add-on's fence is still the lease's, and with
	// release frees the lease in the same transaction. seen, when not
	// nil, is the add-on as the writer last claimed or recorded it: while
	// the stored add-on is still seen (same UpdatedAt, same fence) the
	// store may run fn on a copy of seen and save without re-reading (one
	// statement instead of a locked read and a write); when it is not, fn
	// runs again on the add-on as stored. So fn may run twice: it must
	// change only its add-on and set anything it reports afresh each run.
	Record(ctx context.Context, l Lease, seen *Addon, release bool, fn func(ctx context.Context, a *Addon) error) (*Addon, error)
	// Requeued lists add-ons flagged Requeue (their enqueue failed), for
	// the outbox sweep.
	Requeued(ctx context.Context, limit int) ([]*Addon, error)
	// Leftovers lists failed add-ons that Heroku asked for before the
	// given time and that still hold what provisioning made (Addon.Leftover),
	// oldest first (by CreatedAt, then ID), for the reconciler: past
	// HerokuLimit Heroku has removed them, so that is owed to no one.
	Leftovers(ctx context.Context, before time.Time, limit int) ([]*Addon, error)

	// RecordSignIn adds a sign-in to the add-on's audit trail without
	// saving the add-on itself. A sign-in changes nothing about the add-on:
	// saving it through Update would move updated_at (which the reconciler
	// reads as recent work) and make the dashboard's "updated" lie. It
	// refuses (EFORBIDDEN) an add-on being or already deprovisioned.
	RecordSignIn(ctx context.Context, id ID, at time.Time, message string) error

	// List returns one page of the add-ons matching f, in r's order, and
	// the Range of the next page, nil when this page is the last. Invalid
	// ranges are EINVALID. Operators list; the pipeline never does.
	List(ctx context.Context, f Filter, r Range) (page []*Addon, next *Range, err error)
	// FindByName returns the add-on with this name. Heroku reuses names
	// once an add-on is gone, so a live add-on wins over deprovisioned ones
	// (the newest of those when no live one exists); two live add-ons with
	// one name are ECONFLICT, and none at all ENOTFOUND.
	FindByName(ctx context.Context, name string) (*Addon, error)

	// CountByState counts add-ons by state cheaply (one grouped query), so
	// operators can watch provisions pile up or fail in /metrics without a
	// scan per scrape. States with no add-on may be absent.
	CountByState(ctx context.Context) (map[State]int64, error)
	// CountLostGrants counts the add-ons that failed because Heroku refused
	// their grant after an earlier exchange attempt had started
	// (GrantLostReason): each is a customer's add-on lost to an answer that
	// never arrived, which operators alert on (kiln_grants_lost).
	CountLostGrants(ctx context.Context) (int64, error)
}

// JobKind names a unit of background work on one add-on.
type JobKind string

// The jobs the pipeline uses.
const (
	JobGrant       JobKind = "addon:grant"       // exchange the OAuth grant: urgent, it dies in minutes
	JobProvision   JobKind = "addon:provision"   // create the resource, push config, mark provisioned
	JobPlanChange  JobKind = "addon:plan"        // apply a plan change, push new config
	JobDeprovision JobKind = "addon:deprovision" // destroy the resource
	JobPushConfig  JobKind = "addon:config"      // push config vars that have not reached Heroku
)

// Queue runs jobs in the background. Enqueueing a job that is already queued
// for the same add-on is not an error: it is deduplicated.
type Queue interface {
	Enqueue(ctx context.Context, kind JobKind, id ID) error
}

// Platform is Heroku as Kiln's worker sees it: id.heroku.com for OAuth and the
// Platform API for Partners. Failures come back as domain errors: EUNAVAILABLE
// or ERATELIMIT (with RetryAfter) for transient ones, EUNAUTHORIZED for a
// refused token, EINVALID for other refusals.
type Platform interface {
	ExchangeGrant(ctx context.Context, code string) (Tokens, error)
	RefreshTokens(ctx context.Context, refreshToken string) (Tokens, error)
	// SetConfig sets (or, for a nil value, unsets) config vars by full name.
	SetConfig(ctx context.Context, accessToken string, id ID, vars map[string]*string) error
	MarkProvisioned(ctx context.Context, accessToken string, id ID) error
	// MarkDeprovisioned finishes an asynchronous deprovision Heroku asked
	// for (POST /addons/{id}/actions/deprovision).
	MarkDeprovisioned(ctx context.Context, accessToken string, id ID) error
}

// Resource is what a driver is told about the add-on it works on. Vars holds
// what the driver returned before (empty on a first create), so a driver can
// find what an earlier, interrupted attempt made. ID is the add-on's id
// as a plain string: drivers build names and URLs from it and check it
// themselves (ValidID), since they answer to other systems too.
type Resource struct {
	ID      string
	Name    string
	Plan    Plan
	Region  string
	Options map[string]string
	Vars    Vars
}

// Driver creates, changes and destroys customers' resources, and does what
// else a resource can have done to it (rotate credentials, describe itself
// on the dashboard). Every driver implements every method, so no caller has
// to discover abilities by type assertion; what a driver cannot do it says
// twice: in advance, in Abilities (so the dashboard and the operator API
// offer only what works), and when asked anyway, with an EUNSUPPORTED error
// (see Unsupported).
//
// Every method must be idempotent: a retry after a crash must find and
// finish what an earlier attempt started, and destroying something already
// gone succeeds. Return EINVALID for refusals the customer should see (a plan
// the resource does not fit), and any other error for transient failures.
type Driver interface {
	// Name is the value of RESOURCE_DRIVER that selects this driver.
	Name() string
	// Catalog is the plans this driver offers.
	Catalog() Catalog
	// Abilities says which of the optional actions below this driver's
	// resources support. It must be cheap and constant.
	Abilities() Abilities
	// Create makes the resource and returns its config vars.
	Create(ctx context.Context, r Resource) (Vars, error)
	// ChangePlan moves the resource to another plan and returns its config
	// vars afterwards (the same as before when nothing changed).
	ChangePlan(ctx context.Context, r Resource, to Plan) (Vars, error)
	// Destroy removes the resource and everything it holds.
	Destroy(ctx context.Context, r Resource) error

	// RotateCredentials replaces the resource's credentials (an API key, a
	// database password) and returns its config vars with the new ones;
	// the old ones stop working at once (Abilities.Rotate).
	RotateCredentials(ctx context.Context, r Resource) (Vars, error)
	// Roll makes new credentials while the ones in r.Vars keep working, so
	// a rotation does not break a running app, and Revoke ends old ones
	// (never those in r.Vars, the current ones) once their grace is over
	// (Abilities.Roll). Both are idempotent: a repeated Roll before its
	// result was recorded makes the new set again without touching
	// r.Vars's; a repeated Revoke is a no-op.
	Roll(ctx context.Context, r Resource) (Vars, error)
	Revoke(ctx context.Context, r Resource, old Vars) error
	// Panel describes the resource to the customer (usage, limits, last
	// use) on the dashboard (Abilities.Panel). It must be cheap (the
	// dashboard calls it on every page view) and reveal no credentials.
	Panel(ctx context.Context, r Resource) ([]PanelField, error)
}

// Abilities are the optional actions a driver's resources support, known
// before any is tried: the dashboard offers a rotate button and a panel,
// and a rotation rolls with a grace period, only where the driver can.
type Abilities struct {
	// Rotate: the resource has credentials RotateCredentials can replace.
	Rotate bool
	// Roll: the resource can hold two sets of credentials at once (Roll,
	// Revoke), so rotated-out ones keep working for a grace period.
	Roll bool
	// Panel: Panel has something to tell the customer.
	Panel bool
}

// Rotates reports whether credentials can be rotated at all, with or
// without overlap.
func (ab Abilities) Rotates() bool { return ab.Rotate || ab.Roll }
