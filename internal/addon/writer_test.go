package addon_test

// Forced-ordering tests of "one writer per add-on" (issue 11): each race
// the issue names is driven step by step through hooks in a fake driver,
// the store (a wrapper around the real Postgres store) and the Heroku
// simulator, never by sleeping and hoping.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/heroku"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/postgres/pgtest"
)

// wait bounds every blocking step so a broken ordering fails instead of
// hanging; it never measures speed.
const wait = 30 * time.Second

// driver is a resource driver whose resources live in memory, with a hook
// per method so a test can stop a call midway. A resource's URL carries its
// live key and plan, so "the stored/pushed credentials work" is a string
// comparison with what the driver holds.
type driver struct {
	mu   sync.Mutex
	live map[addon.ID]*res
	n    int

	onCreate, onChange, onRotate func(id addon.ID) // called mid-call, driver state already read
	beforeChange                 func(id addon.ID) // called first, before changeErr is looked at
	changeErr                    atomic.Pointer[error]
	destroys                     atomic.Int32
}

type res struct{ key, plan string }

func newDriver() *driver { return &driver{live: map[addon.ID]*res{}} }

func (d *driver) Name() string { return "fake" }
func (d *driver) Catalog() addon.Catalog {
	return addon.Catalog{"test": {Slug: "test"}, "basic": {Slug: "basic"}, "pro": {Slug: "pro"}}
}

func vars(r res) addon.Vars {
	return addon.Vars{"URL": fmt.Sprintf("fake://resource?key=%s&plan=%s", r.key, r.plan)}
}

func (d *driver) Create(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	d.mu.Lock()
	cur, ok := d.live[addon.ID(r.ID)]
	if !ok {
		d.n++
		cur = &res{key: fmt.Sprintf("k%d", d.n), plan: r.Plan.Slug}
		d.live[addon.ID(r.ID)] = cur
	}
	v := vars(*cur)
	d.mu.Unlock()
	if d.onCreate != nil {
		d.onCreate(addon.ID(r.ID))
	}
	return v, nil
}

func (d *driver) ChangePlan(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
	if d.beforeChange != nil {
		d.beforeChange(addon.ID(r.ID))
	}
	if p := d.changeErr.Swap(nil); p != nil {
		return nil, *p
	}
	d.mu.Lock()
	cur := d.live[addon.ID(r.ID)]
	key := cur.key // the driver reads the credentials, then works
	d.mu.Unlock()
	if d.onChange != nil {
		d.onChange(addon.ID(r.ID))
	}
	d.mu.Lock()
	cur.plan = to.Slug
	d.mu.Unlock()
	return vars(res{key: key, plan: to.Slug}), nil
}

func (d *driver) RotateCredentials(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	d.mu.Lock()
	cur := d.live[addon.ID(r.ID)]
	d.n++
	cur.key = fmt.Sprintf("k%d", d.n)
	v := vars(*cur)
	d.mu.Unlock()
	if d.onRotate != nil {
		d.onRotate(addon.ID(r.ID))
	}
	if err := ctx.Err(); err != nil {
		return nil, err // rotated, but the answer is lost with the call
	}
	return v, nil
}

// The fake rotates outright: no roll, no panel.
func (d *driver) Abilities() addon.Abilities { return addon.Abilities{Rotate: true} }

func (d *driver) Roll(context.Context, addon.Resource) (addon.Vars, error) {
	return nil, addon.Unsupported(d.Name(), "roll credentials")
}

func (d *driver) Revoke(context.Context, addon.Resource, addon.Vars) error {
	return addon.Unsupported(d.Name(), "roll credentials")
}

func (d *driver) Panel(context.Context, addon.Resource) ([]addon.PanelField, error) {
	return nil, addon.Unsupported(d.Name(), "describe resources")
}

func (d *driver) Destroy(ctx context.Context, r addon.Resource) error {
	d.destroys.Add(1)
	d.mu.Lock()
	delete(d.live, addon.ID(r.ID))
	d.mu.Unlock()
	return nil
}

// url is the URL that works for the resource now ("" when none exists).
func (d *driver) url(id addon.ID) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.live[id]; ok {
		return vars(*r)["URL"]
	}
	return ""
}

// store wraps the real store with hooks.
type store struct {
	*postgres.DB
	busy       chan addon.ID // a refused claim, by add-on id (non-blocking send)
	failRecord atomic.Int32
	failUpdate atomic.Int32
	failRenew  atomic.Bool
}

func (s *store) Acquire(ctx context.Context, id addon.ID, owner string, ttl time.Duration) (*addon.Addon, addon.Lease, error) {
	a, l, err := s.DB.Acquire(ctx, id, owner, ttl)
	if addon.IsBusy(err) {
		select {
		case s.busy <- id:
		default:
		}
	}
	return a, l, err
}

func (s *store) AcquireExchange(ctx context.Context, id addon.ID, owner string, ttl time.Duration) (*addon.Addon, addon.Lease, bool, error) {
	a, l, started, err := s.DB.AcquireExchange(ctx, id, owner, ttl)
	if addon.IsBusy(err) {
		select {
		case s.busy <- id:
		default:
		}
	}
	return a, l, started, err
}

var errDropped = addon.Wrap(addon.EUNAVAILABLE, errors.New("connection dropped"), "The database is unavailable; try again later.")

func (s *store) Record(ctx context.Context, l addon.Lease, seen *addon.Addon, release bool, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	if s.failRecord.Add(-1) >= 0 {
		return nil, errDropped
	}
	return s.DB.Record(ctx, l, seen, release, fn)
}

func (s *store) Update(ctx context.Context, id addon.ID, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	if s.failUpdate.Add(-1) >= 0 {
		return nil, errDropped
	}
	return s.DB.Update(ctx, id, fn)
}

func (s *store) Renew(ctx context.Context, l addon.Lease, ttl time.Duration) (addon.Lease, error) {
	if s.failRenew.Load() {
		return l, errDropped
	}
	return s.DB.Renew(ctx, l, ttl)
}

// queue records enqueued jobs; err, when set, makes Enqueue fail.
type queue struct {
	mu   sync.Mutex
	jobs []string
	err  error
}

func (q *queue) Enqueue(ctx context.Context, kind addon.JobKind, id addon.ID) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.jobs = append(q.jobs, string(kind)+" "+string(id))
	return nil
}

type world struct {
	svc  *addon.Service
	deps addon.Deps
	opts addon.Options
	st   *store
	drv  *driver
	q    *queue
	sim  *herokusim.Sim
	srv  *httptest.Server
	lost atomic.Int32
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	db, _ := pgtest.Store(tb)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("KILN_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	sim, srv := herokusim.NewServer(tb, herokusim.Options{ClientSecret: "sim-secret", NoRateLimit: true})
	w := &world{st: &store{DB: db, busy: make(chan addon.ID, 16)}, drv: newDriver(), q: &queue{}, sim: sim, srv: srv}
	w.deps = addon.Deps{
		Store: w.st,
		Queue: w.q,
		Platform: heroku.New(heroku.Options{
			APIURL: srv.URL, IDURL: srv.URL, ClientSecret: "sim-secret", Log: log,
		}),
		Driver: w.drv,
	}
	w.opts = addon.Options{
		Prefix:    "KILN",
		Deadline:  time.Hour,
		Log:       log,
		GrantLost: func(addon.ID) { w.lost.Add(1) },
	}
	w.svc = addon.NewService(w.deps, w.opts)
	return w
}

// rebuild replaces the service with one whose collaborators or options
// change has changed (a Platform with a hook, a short lease).
func (w *world) rebuild(change func(d *addon.Deps, o *addon.Options)) {
	change(&w.deps, &w.opts)
	w.svc = addon.NewService(w.deps, w.opts)
}

// provisioned runs the pipeline for a new add-on up to provisioned.
func (w *world) provisioned(tb testing.TB, plan string) addon.ID {
	tb.Helper()
	ctx := context.Background()
	id := addon.ID(uuid.NewString())
	g := w.sim.NewAddon(string(id))
	if _, _, err := w.svc.Provision(ctx, addon.ProvisionRequest{ID: id, Name: "acme", Plan: plan, Grant: &g}); err != nil {
		tb.Fatal(err)
	}
	if err := w.svc.GrantJob(ctx, id); err != nil {
		tb.Fatal(err)
	}
	if err := w.svc.ProvisionJob(ctx, id); err != nil {
		tb.Fatal(err)
	}
	if a := w.get(tb, id); a.State != addon.StateProvisioned {
		tb.Fatalf("state %s, want provisioned", a.State)
	}
	return id
}

func (w *world) get(tb testing.TB, id addon.ID) *addon.Addon {
	tb.Helper()
	a, err := w.st.DB.Get(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// consistent checks the credentials that work, the ones Kiln stores and the
// ones Heroku has are the same.
func (w *world) consistent(tb testing.TB, id addon.ID) {
	tb.Helper()
	a := w.get(tb, id)
	live := w.drv.url(id)
	h, _ := w.sim.Addon(string(id))
	if a.Vars["URL"] != live || h.Config["KILN_URL"] != live {
		tb.Errorf("credentials diverged: driver %q, stored %q, on Heroku %q", live, a.Vars["URL"], h.Config["KILN_URL"])
	}
}

// gate is a hook that blocks its caller until opened, and says when it is
// entered.
type gate struct {
	entered chan addon.ID
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan addon.ID, 8), open: make(chan struct{})} }
func (g *gate) hook(id addon.ID) {
	g.entered <- id
	<-g.open
}
func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func recv[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		tb.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func TestRotationDuringPlanChangeJob(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	id := w.provisioned(t, "test")
	if _, err := w.st.DB.Update(ctx, id, func(_ context.Context, a *addon.Addon) error { a.PendingPlan = "basic"; return nil }); err != nil {
		t.Fatal(err)
	}
	g := newGate()
	w.drv.onChange = g.hook
	job := async(func() error { return w.svc.PlanChangeJob(ctx, id) })
	recv(t, g.entered, "the plan change in the driver")

	rotated := make(chan error, 1)
	go func() { _, err := w.svc.RotateCredentials(ctx, id); rotated <- err }()
	recv(t, w.st.busy, "the rotation to find the add-on busy")
	g.release()
	if err := recv(t, job, "the plan change job"); err != nil {
		t.Fatalf("plan change job: %v", err)
	}
	if err := recv(t, rotated, "the rotation"); err != nil && !addon.IsBusy(err) {
		t.Fatalf("rotation: %v", err)
	}
	if a := w.get(t, id); a.Plan != "basic" {
		t.Errorf("plan %s, want basic", a.Plan)
	}
	w.consistent(t, id)
}

func TestTwoRotationsAtOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	id := w.provisioned(t, "test")
	g := newGate()
	w.drv.onRotate = g.hook
	first := async(func() error { _, err := w.svc.RotateCredentials(ctx, id); return err })
	recv(t, g.entered, "the first rotation in the driver")
	second := async(func() error { _, err := w.svc.RotateCredentials(ctx, id); return err })
	recv(t, w.st.busy, "the second rotation to find the add-on busy")
	w.drv.onRotate = nil
	g.release()
	if err := recv(t, first, "the first rotation"); err != nil {
		t.Fatalf("first rotation: %v", err)
	}
	if err := recv(t, second, "the second rotation"); err != nil && !addon.IsBusy(err) {
		t.Fatalf("second rotation: %v", err)
	}
	w.consistent(t, id)
}

func TestPlanChangeRequestDuringAsyncChange(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	id := w.provisioned(t, "test")
	// The driver is slow the first time: the change continues in a job.
	slow := addon.Errorf(addon.EUNAVAILABLE, "slow")
	var e error = slow
	w.drv.changeErr.Store(&e)
	pc, err := w.svc.ChangePlan(ctx, id, "basic")
	if err != nil || !pc.Async {
		t.Fatalf("ChangePlan(basic) = %+v, %v; want async", pc, err)
	}
	g := newGate()
	w.drv.onChange = g.hook
	job := async(func() error { return w.svc.PlanChangeJob(ctx, id) })
	recv(t, g.entered, "the job's change to basic in the driver")

	// Heroku's customer changes their mind while the job works.
	pc, err = w.svc.ChangePlan(ctx, id, "pro")
	if err != nil || !pc.Async {
		t.Fatalf("ChangePlan(pro) during the job = %+v, %v; want async (recorded for the job)", pc, err)
	}
	w.drv.onChange = nil
	g.release()
	if err := recv(t, job, "the plan change job"); err != nil {
		t.Fatalf("plan change job: %v", err)
	}
	a := w.get(t, id)
	if a.Plan != "pro" || a.PendingPlan != "" {
		t.Errorf("Kiln has plan %q (pending %q), want pro: the plan Heroku asked for last", a.Plan, a.PendingPlan)
	}
	w.drv.mu.Lock()
	got := w.drv.live[id].plan
	w.drv.mu.Unlock()
	if got != "pro" {
		t.Errorf("the resource is on %s, want pro", got)
	}
	w.consistent(t, id)
}

// TestPlanChangeRequestDuringSyncChange: Heroku's plan change call
// arrives while an earlier one's change is still in the driver, inside
// Heroku's request. The later call finds the add-on busy and is recorded
// for a job (202); the earlier one must not erase it when it records its
// own plan, even when it names the plan that was pending when the earlier
// one began (which that one replaced), and a later call back to the plan
// the add-on had must not be answered "already on it" while the earlier
// change is under way: Kiln would end on a plan Heroku did not ask for
// last.
func TestPlanChangeRequestDuringSyncChange(t *testing.T) {
	tests := []struct {
		name, later string
		pending     string // halted before the first call
	}{
		{"another plan", "basic", ""},
		{"the plan it had", "test", ""},
		{"the plan that was pending before", "basic", "basic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			id := w.provisioned(t, "test")
			if tt.pending != "" {
				if _, err := w.st.DB.Update(ctx, id, func(_ context.Context, a *addon.Addon) error {
					a.PendingPlan, a.PendingPlanAt = tt.pending, time.Now()
					a.Halted, a.HaltReason = addon.JobPlanChange, "refused"
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			g := newGate()
			w.drv.onChange = g.hook
			first := make(chan *addon.PlanChange, 1)
			firstErr := async(func() error {
				pc, err := w.svc.ChangePlan(ctx, id, "pro")
				first <- pc
				return err
			})
			recv(t, g.entered, "the change to pro in the driver")

			pc, err := w.svc.ChangePlan(ctx, id, tt.later)
			if err != nil || !pc.Async {
				t.Fatalf("ChangePlan(%s) during the change to pro = %+v, %v; want async (recorded for a job)", tt.later, pc, err)
			}
			w.drv.onChange = nil
			g.release()
			if err := recv(t, firstErr, "the change to pro"); err != nil {
				t.Fatalf("ChangePlan(pro): %v", err)
			}
			if pc := <-first; pc.Async {
				t.Fatalf("ChangePlan(pro) = %+v; want it done in the request", pc)
			}
			if a := w.get(t, id); a.PendingPlan != tt.later {
				t.Fatalf("after the change to pro: pending %q, want %s (the later call's)", a.PendingPlan, tt.later)
			}
			if !slices.Contains(w.q.jobs, string(addon.JobPlanChange)+" "+string(id)) {
				t.Fatalf("jobs %v; want a plan change job", w.q.jobs)
			}
			if err := w.svc.PlanChangeJob(ctx, id); err != nil {
				t.Fatalf("PlanChangeJob: %v", err)
			}
			if a := w.get(t, id); a.Plan != tt.later || a.PendingPlan != "" {
				t.Errorf("Kiln has plan %q (pending %q), want %s: the plan Heroku asked for last", a.Plan, a.PendingPlan, tt.later)
			}
			w.drv.mu.Lock()
			got := w.drv.live[id].plan
			w.drv.mu.Unlock()
			if got != tt.later {
				t.Errorf("the resource is on %s, want %s", got, tt.later)
			}
			w.consistent(t, id)
		})
	}
}

func TestDeprovisionDuringCreateThenFailedSave(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	id := addon.ID(uuid.NewString())
	g0 := w.sim.NewAddon(string(id))
	if _, _, err := w.svc.Provision(ctx, addon.ProvisionRequest{ID: id, Plan: "test", Grant: &g0}); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.GrantJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	g := newGate()
	w.drv.onCreate = g.hook
	job := async(func() error { return w.svc.ProvisionJob(ctx, id) })
	recv(t, g.entered, "Driver.Create")

	if err := w.svc.Deprovision(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The deprovision job cannot destroy while Create runs.
	if err := w.svc.DeprovisionJob(ctx, id); !addon.IsBusy(err) {
		t.Fatalf("DeprovisionJob during Create = %v, want busy", err)
	}
	if n := w.drv.destroys.Load(); n != 0 {
		t.Fatalf("Destroy called %d times while Create ran", n)
	}
	w.st.failRecord.Store(1) // saving Create's result fails
	g.release()
	if err := recv(t, job, "the provision job"); err == nil || !addon.Transient(err) {
		t.Fatalf("provision job = %v, want a transient failure", err)
	}
	if err := w.svc.DeprovisionJob(ctx, id); err != nil {
		t.Fatalf("DeprovisionJob: %v", err)
	}
	if u := w.drv.url(id); u != "" {
		t.Errorf("resource left behind: %s", u)
	}
	if a := w.get(t, id); a.State != addon.StateDeprovisioned || a.Tokens != nil {
		t.Errorf("state %s tokens %v, want deprovisioned without tokens", a.State, a.Tokens)
	}
	// The provision job's retry finds nothing to do.
	if err := w.svc.ProvisionJob(ctx, id); err != nil {
		t.Errorf("ProvisionJob after deprovision: %v", err)
	}
}

func TestRefreshAfterLeaseLapsedAndDeprovision(t *testing.T) {
	w := newWorld(t)
	w.rebuild(func(_ *addon.Deps, o *addon.Options) { o.LeaseTTL = 3 * time.Second })
	ctx := context.Background()
	id := w.provisioned(t, "test")
	// Force a refresh on the next push, and hold the refresh at Heroku.
	if _, err := w.st.DB.Update(ctx, id, func(_ context.Context, a *addon.Addon) error {
		a.Tokens.ExpiresAt = time.Now().Add(-time.Minute)
		a.ConfigPushedAt = time.Time{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	defer close(hold)
	w.sim.Inject(herokusim.Fault{Kind: herokusim.KindRefresh, Hold: hold, Times: 1})
	w.st.failRenew.Store(true) // the pusher's lease will lapse
	push := async(func() error { return w.svc.PushConfigJob(ctx, id) })
	if err := w.sim.Wait(ctx, func() bool { return w.sim.Holding(herokusim.KindRefresh) == 1 }); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Deprovision(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Once the pusher's lease lapses, the deprovision job claims the add-on
	// and drops its tokens.
	deadline := time.Now().Add(wait)
	for {
		err := w.svc.DeprovisionJob(ctx, id)
		if err == nil {
			break
		}
		if !addon.IsBusy(err) || time.Now().After(deadline) {
			t.Fatalf("DeprovisionJob: %v", err)
		}
		<-time.After(addon.RetryAfter(err))
	}
	w.sim.ClearFaults() // the refresh answers now
	err := recv(t, push, "the push job")
	if err == nil {
		t.Fatal("the push job whose lease lapsed succeeded")
	}
	a := w.get(t, id)
	if a.State != addon.StateDeprovisioned || a.Tokens != nil || a.Vars != nil {
		t.Errorf("the stale writer changed a deprovisioned add-on: %+v", a)
	}
}

// lossy is a Platform whose grant exchange reaches Heroku but whose answer
// is lost, as when the connection drops after Heroku answered.
type lossy struct {
	addon.Platform
	lose atomic.Bool
}

func (l *lossy) ExchangeGrant(ctx context.Context, code string) (addon.Tokens, error) {
	tok, err := l.Platform.ExchangeGrant(ctx, code)
	if err == nil && l.lose.Swap(false) {
		return addon.Tokens{}, errors.New("read tcp: connection reset by peer")
	}
	return tok, err
}

func TestGrantRefusedAfterLostAnswer(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	p := &lossy{Platform: w.deps.Platform}
	w.rebuild(func(d *addon.Deps, _ *addon.Options) { d.Platform = p })
	id := addon.ID(uuid.NewString())
	g := w.sim.NewAddon(string(id))
	if _, _, err := w.svc.Provision(ctx, addon.ProvisionRequest{ID: id, Plan: "test", Grant: &g}); err != nil {
		t.Fatal(err)
	}
	p.lose.Store(true)
	if err := w.svc.GrantJob(ctx, id); err == nil || !addon.Transient(err) {
		t.Fatalf("first exchange = %v, want a transient failure", err)
	}
	if a := w.get(t, id); a.ExchangeStartedAt.IsZero() {
		t.Fatal("exchange start not recorded before the call")
	}
	if err := w.svc.GrantJob(ctx, id); addon.ErrorCode(err) != addon.EINVALID {
		t.Fatalf("second exchange = %v, want a refusal", err)
	}
	a := w.get(t, id)
	if a.State != addon.StateFailed || a.Reason != addon.GrantLostReason {
		t.Errorf("state %s reason %q, want failed with the lost-grant reason", a.State, a.Reason)
	}
	if w.lost.Load() != 1 {
		t.Errorf("GrantLost called %d times, want 1", w.lost.Load())
	}
	if n, err := w.st.DB.CountLostGrants(ctx); err != nil || n != 1 {
		t.Errorf("CountLostGrants = %d, %v; want 1", n, err)
	}

	// An ordinary invalid grant is reported as such.
	id2 := addon.ID(uuid.NewString())
	bad := addon.Grant{Code: "not-a-code", ExpiresAt: time.Now().Add(time.Minute)}
	if _, _, err := w.svc.Provision(ctx, addon.ProvisionRequest{ID: id2, Plan: "test", Grant: &bad}); err != nil {
		t.Fatal(err)
	}
	_ = w.svc.GrantJob(ctx, id2)
	if a := w.get(t, id2); a.State != addon.StateFailed || a.Reason == addon.GrantLostReason || w.lost.Load() != 1 {
		t.Errorf("invalid grant: state %s reason %q lost=%d", a.State, a.Reason, w.lost.Load())
	}
}

// failAfter arms a store failure once Heroku has answered an exchange.
type failAfter struct {
	addon.Platform
	arm func()
}

func (f *failAfter) ExchangeGrant(ctx context.Context, code string) (addon.Tokens, error) {
	tok, err := f.Platform.ExchangeGrant(ctx, code)
	f.arm()
	return tok, err
}

func TestTokensSavedDespiteFailingSaves(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	id := addon.ID(uuid.NewString())
	g := w.sim.NewAddon(string(id))
	if _, _, err := w.svc.Provision(ctx, addon.ProvisionRequest{ID: id, Plan: "test", Grant: &g}); err != nil {
		t.Fatal(err)
	}
	// The database drops the first saves after Heroku answers.
	w.rebuild(func(d *addon.Deps, _ *addon.Options) {
		d.Platform = &failAfter{Platform: d.Platform, arm: func() { w.st.failRecord.Store(3) }}
	})
	jobCtx, cancel := context.WithCancel(ctx)
	if err := w.svc.GrantJob(jobCtx, id); err != nil {
		t.Fatalf("ExchangeGrant: %v", err)
	}
	cancel()
	a := w.get(t, id)
	if a.Tokens == nil || a.GrantExchangedAt.IsZero() || a.Grant != nil {
		t.Fatalf("tokens not saved: %+v", a)
	}
	var grants []int
	for _, c := range w.sim.Calls() {
		if c.Kind == herokusim.KindGrant {
			grants = append(grants, c.Status)
		}
	}
	if !slices.Equal(grants, []int{200}) {
		t.Errorf("grant exchanges %v, want exactly one", grants)
	}
	if !slices.Contains(w.q.jobs, string(addon.JobProvision)+" "+string(id)) {
		t.Errorf("provision not enqueued: %v", w.q.jobs)
	}
	if n := w.st.failRecord.Load(); n >= 0 {
		t.Errorf("the save did not meet the injected failures (%d left)", n)
	}
	if a.LeaseUntil != (time.Time{}) {
		t.Errorf("the claim was not freed with the tokens' save: lease until %v", a.LeaseUntil)
	}
}

func TestPermanentPushFailureHaltsUntilRetried(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	id := w.provisioned(t, "test")
	if _, err := w.st.DB.Update(ctx, id, func(_ context.Context, a *addon.Addon) error { a.ConfigPushedAt = time.Time{}; return nil }); err != nil {
		t.Fatal(err)
	}
	w.sim.Inject(herokusim.Fault{Kind: herokusim.KindConfig, Status: 422, Times: 1})
	if err := w.svc.PushConfigJob(ctx, id); err == nil || addon.Transient(err) {
		t.Fatalf("push = %v, want a permanent failure", err)
	}
	a := w.get(t, id)
	if a.Halted != addon.JobPushConfig || a.HaltReason == "" {
		t.Fatalf("halted %q (%q), want the push halted with a reason", a.Halted, a.HaltReason)
	}
	stale, err := w.st.DB.Stale(ctx, time.Now().Add(time.Hour), addon.StaleFrom{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stale {
		if s.ID == id {
			t.Fatal("the reconciler would revive a halted push")
		}
	}
	// A job that runs anyway does nothing.
	if err := w.svc.PushConfigJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Retry(ctx, id); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	if !slices.Contains(w.q.jobs, string(addon.JobPushConfig)+" "+string(id)) {
		t.Fatalf("retry enqueued %v", w.q.jobs)
	}
	if err := w.svc.PushConfigJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	if a := w.get(t, id); a.Halted != "" || a.ConfigPushedAt.IsZero() {
		t.Errorf("after retry: halted %q pushed %v", a.Halted, a.ConfigPushedAt)
	}
}

func TestEnqueueFailureIsFlaggedForTheOutbox(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.q.err = addon.Errorf(addon.EUNAVAILABLE, "redis down")
	id := addon.ID(uuid.NewString())
	g := w.sim.NewAddon(string(id))
	if _, _, err := w.svc.Provision(ctx, addon.ProvisionRequest{ID: id, Plan: "test", Grant: &g}); err != nil {
		t.Fatal(err)
	}
	if a := w.get(t, id); !a.Requeue {
		t.Fatal("a provision whose enqueue failed is not flagged")
	}
	got, err := w.st.DB.Requeued(ctx, 0)
	if err != nil || len(got) != 1 || got[0].ID != id {
		t.Fatalf("Requeued = %v, %v", got, err)
	}
	// A job whose follow-up enqueue fails flags it too, and succeeds.
	if _, err := w.st.DB.Update(ctx, id, func(_ context.Context, a *addon.Addon) error { a.Requeue = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.GrantJob(ctx, id); err != nil {
		t.Fatalf("ExchangeGrant with the queue down: %v", err)
	}
	if a := w.get(t, id); !a.Requeue || a.GrantExchangedAt.IsZero() {
		t.Errorf("after the grant: requeue=%v exchanged=%v", a.Requeue, a.GrantExchangedAt)
	}
}
