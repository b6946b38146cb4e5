package addon_test

// The unit tests of the Service (service_*_test.go) and the Keeper
// (keeper_*_test.go) run them over the mock package: the in-memory store
// and links, and function-field fakes of the driver, Heroku and the queue.
// No Postgres, Redis or simulator: each branch is driven by what a fake
// answers, and checked by the add-on as stored, its audit trail, and the
// calls the service made. The tests that run the same code over real
// Postgres and the simulator (writer_test.go and its siblings) stay.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/addon/mock"
)

// t0 is the fixture clock's start: a fixed instant, so deadlines and token
// expiries are exact.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture is a Service over mocks whose defaults succeed, with a log of
// every call the service made to the driver, Heroku, the queue and the
// tenants (not the store: the store is checked by what it holds).
type fixture struct {
	store    *mock.Store
	driver   *mock.Driver
	platform *mock.Platform
	queue    *mock.Queue
	tenants  *mock.Tenants
	svc      *addon.Service
	opt      addon.Options // the service's

	// The keeper's collaborators, for keeper (keeper_*_test.go).
	links   *mock.Links
	watcher *mock.Watcher
	logs    *mock.LogWriter

	mu    sync.Mutex
	clock time.Time
	calls []string
	lost  []addon.ID // GrantLost's calls
	n     int        // add-ons made, for their ids
}

// newFixture builds the fixture; opt, when given, adjusts the options
// before the service is built.
func newFixture(tb testing.TB, opt ...func(o *addon.Options)) *fixture {
	tb.Helper()
	f := &fixture{clock: t0}
	f.store = &mock.Store{Now: f.now}
	f.driver = &mock.Driver{
		NameFn:      func() string { return "fake" },
		CatalogFn:   func() addon.Catalog { return catalog() },
		AbilitiesFn: func() addon.Abilities { return addon.Abilities{Rotate: true, Panel: true} },
		CreateFn: func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
			f.called("Create %s %s", short(addon.ID(r.ID)), r.Plan.Slug)
			return addon.Vars{"URL": "fake://" + r.Plan.Slug}, nil
		},
		ChangePlanFn: func(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
			f.called("ChangePlan %s %s->%s", short(addon.ID(r.ID)), r.Plan.Slug, to.Slug)
			return addon.Vars{"URL": "fake://" + to.Slug}, nil
		},
		DestroyFn: func(ctx context.Context, r addon.Resource) error {
			f.called("Destroy %s %s", short(addon.ID(r.ID)), r.Plan.Slug)
			return nil
		},
		RotateCredentialsFn: func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
			f.called("RotateCredentials %s", short(addon.ID(r.ID)))
			return addon.Vars{"URL": "fake://" + r.Plan.Slug + "?rotated"}, nil
		},
		PanelFn: func(ctx context.Context, r addon.Resource) ([]addon.PanelField, error) {
			f.called("Panel %s %s", short(addon.ID(r.ID)), r.Plan.Slug)
			return []addon.PanelField{{Label: "Plan", Value: r.Plan.Name}}, nil
		},
	}
	f.platform = &mock.Platform{
		ExchangeGrantFn: func(ctx context.Context, code string) (addon.Tokens, error) {
			f.called("ExchangeGrant %s", code)
			return addon.Tokens{Access: "access-1", Refresh: "refresh-1", ExpiresAt: f.now().Add(8 * time.Hour), UserID: "user-1"}, nil
		},
		RefreshTokensFn: func(ctx context.Context, refresh string) (addon.Tokens, error) {
			f.called("RefreshTokens %s", refresh)
			return addon.Tokens{Access: "access-2", Refresh: "refresh-2", ExpiresAt: f.now().Add(8 * time.Hour)}, nil
		},
		SetConfigFn: func(ctx context.Context, token string, id addon.ID, vars map[string]*string) error {
			f.called("SetConfig %s %s %s", short(id), token, config(vars))
			return nil
		},
		MarkProvisionedFn: func(ctx context.Context, token string, id addon.ID) error {
			f.called("MarkProvisioned %s %s", short(id), token)
			return nil
		},
	}
	f.queue = &mock.Queue{EnqueueFn: func(ctx context.Context, kind addon.JobKind, id addon.ID) error {
		f.called("Enqueue %s %s", kind, short(id))
		return nil
	}}
	f.tenants = &mock.Tenants{}
	o := addon.Options{
		Prefix:    "KILN",
		Deadline:  time.Hour,
		Now:       f.now,
		Owner:     "test.1",
		GrantLost: func(id addon.ID) { f.mu.Lock(); f.lost = append(f.lost, id); f.mu.Unlock() },
	}
	for _, fn := range opt {
		fn(&o)
	}
	f.opt = o
	f.svc = addon.NewService(f.deps(), o)
	return f
}

// deps are the service's dependencies: the fixture's mocks.
func (f *fixture) deps() addon.Deps {
	return addon.Deps{Store: f.store, Queue: f.queue, Platform: f.platform, Driver: f.driver, Tenants: f.tenants}
}

// rebuild builds the service again over the fixture's mocks and options,
// with change made to its dependencies (a store that misbehaves, a
// Watcher).
func (f *fixture) rebuild(change func(d *addon.Deps)) {
	d := f.deps()
	change(&d)
	f.svc = addon.NewService(d, f.opt)
}

// asking rebuilds the service over the same mocks and options so that it
// asks w for Heroku's record of an add-on (Deps.Watcher).
func (f *fixture) asking(w addon.Watcher) {
	f.rebuild(func(d *addon.Deps) { d.Watcher = w })
}

func catalog() addon.Catalog {
	return addon.Catalog{
		"test":  {Slug: "test", Name: "Test"},
		"basic": {Slug: "basic", Name: "Basic", Limits: map[string]int64{"requests_per_second": 5}},
		"pro":   {Slug: "pro", Name: "Pro", Limits: map[string]int64{"requests_per_second": 50}},
	}
}

func (f *fixture) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

// advance moves the fixture's clock (the service's and the store's).
func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.clock = f.clock.Add(d)
	f.mu.Unlock()
}

func (f *fixture) called(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// wantCalls checks the calls made since the last check, in order, and
// forgets them.
func (f *fixture) wantCalls(tb testing.TB, want ...string) {
	tb.Helper()
	f.mu.Lock()
	got := f.calls
	f.calls = nil
	f.mu.Unlock()
	if !slices.Equal(got, want) {
		tb.Errorf("calls:\n got  %q\n want %q", got, want)
	}
}

// short names a fixture add-on by its number: ids are
// 00000000-0000-4000-8000-<number>.
func short(id addon.ID) string {
	return "#" + strings.TrimLeft(string(id)[24:], "0")
}

// config renders config vars as Heroku gets them, sorted.
func config(vars map[string]*string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		v := "<unset>"
		if vars[k] != nil {
			v = *vars[k]
		}
		out = append(out, k+"="+v)
	}
	return strings.Join(out, ",")
}

// nextID is a new add-on id; its number is the count of ids made.
func (f *fixture) nextID() addon.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return addon.ID(fmt.Sprintf("00000000-0000-4000-8000-%012d", f.n))
}

// add stores an add-on as a finished provision request with a grant left
// it (provisioning, plan basic, deadline in an hour), changed by mods, and
// returns its id. It records no event, so a test's events are the
// service's.
func (f *fixture) add(tb testing.TB, mods ...func(a *addon.Addon)) addon.ID {
	tb.Helper()
	now := f.now()
	a := &addon.Addon{
		ID:        f.nextID(),
		Name:      "acme",
		Plan:      "basic",
		Region:    "us",
		State:     addon.StateProvisioning,
		Grant:     &addon.Grant{Code: "grant-1", ExpiresAt: now.Add(5 * time.Minute)},
		Deadline:  now.Add(time.Hour),
		CreatedAt: now,
	}
	for _, m := range mods {
		m(a)
	}
	if _, _, err := f.store.Create(context.Background(), a); err != nil {
		tb.Fatal(err)
	}
	return a.ID
}

// Add-on shapes for add.

// exchanged: the grant was traded for tokens valid for hours.
func exchanged(a *addon.Addon) {
	a.Grant = nil
	a.ExchangeStartedAt, a.GrantExchangedAt = a.CreatedAt, a.CreatedAt
	a.Tokens = &addon.Tokens{Access: "access-1", Refresh: "refresh-1", ExpiresAt: a.CreatedAt.Add(8 * time.Hour), UserID: "user-1"}
}

// provisioned: every step done, config on Heroku.
func provisioned(a *addon.Addon) {
	exchanged(a)
	a.State = addon.StateProvisioned
	a.Vars = addon.Vars{"URL": "fake://" + a.Plan}
	a.ResourceCreatedAt, a.ConfigPushedAt, a.ProvisionedAt = a.CreatedAt, a.CreatedAt, a.CreatedAt
}

// withResource: the driver made the resource and it was recorded.
func withResource(a *addon.Addon) {
	a.Vars, a.ResourceCreatedAt = addon.Vars{"URL": "fake://" + a.Plan}, a.CreatedAt
}

// herokuSays is a Watcher's GetAddonFn: Heroku reports the add-on in
// state, or answers err.
func herokuSays(state string, err error) func(ctx context.Context, token string, id addon.ID) (addon.HerokuAddon, error) {
	return func(ctx context.Context, token string, id addon.ID) (addon.HerokuAddon, error) {
		return addon.HerokuAddon{ID: string(id), State: state}, err
	}
}

// unpushed: the config vars have not reached Heroku.
func unpushed(a *addon.Addon) { a.ConfigPushedAt = time.Time{} }

// tokenless: provisioned without a grant, so without Platform API tokens.
func tokenless(a *addon.Addon) {
	a.Tokens, a.ExchangeStartedAt, a.GrantExchangedAt = nil, time.Time{}, time.Time{}
}

// synchronous: Heroku sent no grant.
func synchronous(a *addon.Addon) { a.Grant = nil }

// inState sets the state and its reason.
func inState(s addon.State, reason string) func(a *addon.Addon) {
	return func(a *addon.Addon) { a.State, a.Reason = s, reason }
}

func (f *fixture) get(tb testing.TB, id addon.ID) *addon.Addon {
	tb.Helper()
	a, err := f.store.Get(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// wantEvents checks the add-on's audit trail, each event as "kind:
// message", state events as "state <state>: message".
func (f *fixture) wantEvents(tb testing.TB, id addon.ID, want ...string) {
	tb.Helper()
	ev, err := f.store.Events(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	var got []string
	for _, e := range ev {
		if e.Kind == "state" {
			got = append(got, fmt.Sprintf("state %s: %s", e.State, e.Message))
		} else {
			got = append(got, e.Kind+": "+e.Message)
		}
	}
	if !slices.Equal(got, want) {
		tb.Errorf("events:\n got  %q\n want %q", got, want)
	}
}

// wantState checks the stored add-on's state and reason.
func (f *fixture) wantState(tb testing.TB, id addon.ID, state addon.State, reason string) *addon.Addon {
	tb.Helper()
	a := f.get(tb, id)
	if a.State != state || a.Reason != reason {
		tb.Errorf("state %s (%q), want %s (%q)", a.State, a.Reason, state, reason)
	}
	return a
}

// wantFree checks no writer holds the add-on's lease any more.
func (f *fixture) wantFree(tb testing.TB, id addon.ID) {
	tb.Helper()
	if a := f.get(tb, id); a.LeaseOwner != "" || !a.LeaseUntil.IsZero() {
		tb.Errorf("lease still held by %q until %v", a.LeaseOwner, a.LeaseUntil)
	}
}

// holdLease makes another writer hold the add-on's lease for a minute.
func (f *fixture) holdLease(tb testing.TB, id addon.ID) addon.Lease {
	tb.Helper()
	_, l, err := f.store.Acquire(context.Background(), id, "other-writer", time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// takeOver lets the service's lease lapse and another writer claim the
// add-on, as a long pause would: the service's next Record is refused.
func (f *fixture) takeOver(tb testing.TB, id addon.ID) {
	tb.Helper()
	f.advance(addon.DefaultLeaseTTL + time.Second)
	f.holdLease(tb, id)
}

// lostLease waits for a claim's work context to end, cancelled by the
// claim's renewal, and wants LeaseLost as the cause.
func lostLease(tb testing.TB, ctx context.Context) {
	tb.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		tb.Fatal("the work's context was not cancelled")
	}
	if !errors.Is(context.Cause(ctx), addon.ErrLeaseLost) {
		tb.Errorf("cause %v, want lease lost", context.Cause(ctx))
	}
}

// update changes the stored add-on as another writer would.
func (f *fixture) update(tb testing.TB, id addon.ID, fn func(a *addon.Addon)) {
	tb.Helper()
	if _, err := f.store.Update(context.Background(), id, func(_ context.Context, a *addon.Addon) error {
		fn(a)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

// failing makes the store's op fail for the next n calls (every call when
// n < 0) with a transient database error.
func (f *fixture) failing(op string, n int) {
	f.store.Before = func(o string, id addon.ID) error {
		if o != op || n == 0 {
			return nil
		}
		n--
		return errDown
	}
}

// refusing makes the store's op (only that one) fail for good, with a
// permanent refusal, from now on.
func (f *fixture) refusing(op string) {
	f.store.Before = func(o string, id addon.ID) error {
		if o == op {
			return errRefused
		}
		return nil
	}
}

var errDown = addon.Errorf(addon.EUNAVAILABLE, "The database is unavailable; try again later.")

// errRefused is a permanent refusal by Heroku or a driver.
var errRefused = addon.Errorf(addon.EINVALID, "Refused for good.")

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if addon.ErrorCode(err) != code {
		tb.Fatalf("error %v, want code %q", err, code)
	}
}

// webhookURL is where the keeper asks Heroku to deliver webhooks.
const webhookURL = "https://kiln.example/heroku/webhooks"

// keeper builds a Keeper over the fixture's service, with a sync every
// hour, webhooks, a log stream, synchronous deprovisioning and an hour of
// grace for rolled credentials, changed by mods. Its collaborators log
// their calls as the service's do; the driver rolls and revokes.
func (f *fixture) keeper(mods ...func(k *addon.Keeper)) *addon.Keeper {
	f.links = &mock.Links{Store: f.store}
	f.watcher = &mock.Watcher{
		GetAddonFn: func(ctx context.Context, token string, id addon.ID) (addon.HerokuAddon, error) {
			f.called("GetAddon %s %s", short(id), token)
			return addon.HerokuAddon{ID: string(id), Name: "acme", AppID: "app-1", AppName: "my-app", State: "provisioned"}, nil
		},
		CreateWebhookFn: func(ctx context.Context, token string, id addon.ID, sub addon.WebhookSubscription) (string, error) {
			f.called("CreateWebhook %s %s", short(id), token)
			return "hook-1", nil
		},
	}
	f.logs = &mock.LogWriter{WriteLogFn: func(ctx context.Context, url string, lines []addon.LogLine) error {
		var msgs []string
		for _, l := range lines {
			msgs = append(msgs, l.Message)
		}
		f.called("WriteLog %s %s", url, strings.Join(msgs, " | "))
		return nil
	}}
	f.driver.RollFn = func(ctx context.Context, r addon.Resource) (addon.Vars, error) {
		f.called("Roll %s", short(addon.ID(r.ID)))
		return addon.Vars{"URL": "fake://" + r.Plan.Slug + "?rolled"}, nil
	}
	f.driver.RevokeFn = func(ctx context.Context, r addon.Resource, old addon.Vars) error {
		f.called("Revoke %s %s", short(addon.ID(r.ID)), old["URL"])
		return nil
	}
	f.platform.MarkDeprovisionedFn = func(ctx context.Context, token string, id addon.ID) error {
		f.called("MarkDeprovisioned %s %s", short(id), token)
		return nil
	}
	k := &addon.Keeper{
		Service:      f.svc,
		Links:        f.links,
		Watcher:      f.watcher,
		Logs:         f.logs,
		SyncInterval: time.Hour,
		WebhookURL:   webhookURL,
		Grace:        time.Hour,
	}
	for _, m := range mods {
		m(k)
	}
	return k
}

// link returns the add-on's Link as stored.
func (f *fixture) link(tb testing.TB, id addon.ID) *addon.Link {
	tb.Helper()
	l, err := f.links.Link(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// setLink changes the add-on's Link as another writer would.
func (f *fixture) setLink(tb testing.TB, id addon.ID, fn func(l *addon.Link)) {
	tb.Helper()
	if _, err := f.links.UpdateLink(context.Background(), id, func(l *addon.Link) error { fn(l); return nil }); err != nil {
		tb.Fatal(err)
	}
}

// arrange builds a fixture (its service's options changed by opts)
// holding one add-on of shape and runs setup, when given, on it: the
// start every job's table case shares.
func arrange(t *testing.T, shape []func(a *addon.Addon), setup func(f *fixture, t *testing.T, id addon.ID), opts ...func(o *addon.Options)) (*fixture, addon.ID) {
	t.Helper()
	f := newFixture(t, opts...)
	id := f.add(t, shape...)
	if setup != nil {
		setup(f, t, id)
	}
	return f, id
}

// arrangeKeeper is arrange for the keeper's jobs: the keeper, changed by
// mods, is built before the add-on so setup can reach its Link.
func arrangeKeeper(t *testing.T, shape []func(a *addon.Addon), setup func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID), mods ...func(k *addon.Keeper)) (*fixture, *addon.Keeper, addon.ID) {
	t.Helper()
	f := newFixture(t)
	k := f.keeper(mods...)
	id := f.add(t, shape...)
	if setup != nil {
		setup(f, t, k, id)
	}
	return f, k, id
}

// jobCase is a table case of a job whose outcome is all in the store and
// the calls: the error's code, the state and reason left, the calls made,
// the events recorded, the lease let go (unless held: another writer
// holds it afterwards), and check's own look at the stored add-on. opts
// change the service's options.
type jobCase struct {
	name   string
	opts   []func(o *addon.Options)
	shape  []func(a *addon.Addon)
	setup  func(f *fixture, t *testing.T, id addon.ID)
	held   bool
	code   string
	state  addon.State
	reason string
	calls  []string
	events []string
	check  func(t *testing.T, a *addon.Addon)
}

// runJobCases runs each case as a subtest of job on a fresh fixture. The
// store's injected failures stop before the outcome is read.
func runJobCases(t *testing.T, cases []jobCase, job func(s *addon.Service, ctx context.Context, id addon.ID) error) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			f, id := arrange(t, tt.shape, tt.setup, tt.opts...)
			wantCode(t, job(f.svc, context.Background(), id), tt.code)
			f.store.Before = nil
			a := f.wantState(t, id, tt.state, tt.reason)
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
			if !tt.held {
				f.wantFree(t, id)
			}
			if tt.check != nil {
				tt.check(t, a)
			}
		})
	}
}
