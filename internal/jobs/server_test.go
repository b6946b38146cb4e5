package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/drivers/account"
	"github.com/kiln-dev/kiln/internal/heroku"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/jobs"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/postgres/pgtest"
)

// wait bounds every poll: long enough for a loaded CI machine, and a
// failure rather than a hang when something is broken. It never measures
// speed.
const wait = 30 * time.Second

// env is one test's world: a fresh database, a leased Redis database, the
// Heroku simulator behind httptest, and an inspector on the queues.
type env struct {
	db    *postgres.DB
	url   string // db's database
	sim   *herokusim.Sim
	srv   *httptest.Server
	redis asynq.RedisConnOpt
	queue *jobs.Queue
	in    *asynq.Inspector
	log   *slog.Logger
}

func setup(tb testing.TB) *env {
	tb.Helper()
	log := testLogger(tb)
	db, url := pgtest.Store(tb)
	sim, srv := herokusim.NewServer(tb, herokusim.Options{ClientSecret: "sim-secret", Log: log.With("component", "herokusim")})
	r := redisOpt(tb)
	return &env{db: db, url: url, sim: sim, srv: srv, redis: r, queue: newQueue(tb, r), in: newInspector(tb, r), log: log}
}

// service builds the use cases over the real adapters, enqueueing on q.
func (e *env) service(q addon.Queue, deadline time.Duration) *addon.Service {
	return e.serviceWith(q, addon.Options{Deadline: deadline})
}

// serviceWith is service with options of the test's own (a clock, say);
// the prefix and the log are the env's.
func (e *env) serviceWith(q addon.Queue, o addon.Options) *addon.Service {
	o.Prefix, o.Log = "KILN", e.log
	platform := heroku.New(heroku.Options{
		APIURL:       e.srv.URL,
		IDURL:        e.srv.URL,
		ClientSecret: "sim-secret",
		Log:          e.log,
	})
	return addon.NewService(addon.Deps{
		Store:    e.db,
		Queue:    q,
		Platform: platform,
		Driver:   account.New(e.db.Gorm(), "http://kiln.test"),
		Watcher:  platform,
	}, o)
}

// downQueue is a queue whose Redis never answers, as when Heroku calls
// while Redis is down.
func downQueue(tb testing.TB) *jobs.Queue {
	q := jobs.NewQueue(asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	tb.Cleanup(func() { q.Close() })
	return q
}

// acceptedWhileDown provisions an add-on through a service whose queue is
// down and checks the add-on is flagged for the outbox sweep. It returns
// that service, its dead queue and the add-on's id.
func (e *env) acceptedWhileDown(tb testing.TB) (*addon.Service, *jobs.Queue, addon.ID) {
	tb.Helper()
	down := downQueue(tb)
	svc := e.service(down, time.Hour)
	id := addon.ID(uuid.NewString())
	provision(tb, svc, id, e.sim.NewAddon(string(id)))
	if a := e.state(tb, id); !a.Requeue {
		tb.Fatal("the provision whose enqueue failed is not flagged")
	}
	return svc, down, id
}

// fast are server options that keep retries and polling short in tests.
func (e *env) fast() jobs.ServerOptions {
	return jobs.ServerOptions{
		Concurrency:      4,
		GrantConcurrency: 2,
		Log:              e.log,
		ShutdownTimeout:  2 * time.Second,
		BaseDelay:        20 * time.Millisecond,
		MaxDelay:         200 * time.Millisecond,
		PollInterval:     50 * time.Millisecond,
	}
}

// run starts a worker and stops it (waiting for Run to return) when the
// test ends.
func (e *env) run(tb testing.TB, svc *addon.Service, o jobs.ServerOptions) (stop func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- jobs.NewServer(e.redis, svc, o).Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(wait):
				err = errors.New("Server.Run did not return after its context ended")
			}
		})
		return err
	}
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Error(err)
		}
	})
	return stop
}

// provision sends Heroku's provision request to the service.
func provision(tb testing.TB, svc *addon.Service, id addon.ID, grant addon.Grant) {
	tb.Helper()
	_, created, err := svc.Provision(context.Background(), addon.ProvisionRequest{
		ID:          id,
		Name:        "acme-primary",
		Plan:        "test",
		Region:      "amazon-web-services::us-east-1",
		CallbackURL: "https://api.heroku.com/addons/" + string(id),
		Grant:       &grant,
	})
	if err != nil || !created {
		tb.Fatalf("Provision: created=%v err=%v", created, err)
	}
}

// accept sends Heroku's provision request for n new add-ons to svc, one
// after the other, and returns their ids in that order.
func (e *env) accept(tb testing.TB, svc *addon.Service, n int) []addon.ID {
	tb.Helper()
	ids := make([]addon.ID, n)
	for i := range ids {
		ids[i] = addon.ID(uuid.NewString())
		provision(tb, svc, ids[i], e.sim.NewAddon(string(ids[i])))
	}
	return ids
}

// eventually polls cond until it holds, failing the test after wait.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) state(tb testing.TB, id addon.ID) *addon.Addon {
	tb.Helper()
	a, err := e.db.Get(context.Background(), id)
	if err != nil {
		tb.Fatalf("get add-on: %v", err)
	}
	return a
}

func (e *env) waitState(tb testing.TB, id addon.ID, want addon.State) *addon.Addon {
	tb.Helper()
	var a *addon.Addon
	eventually(tb, "add-on "+string(id)+" "+string(want), func() bool {
		a = e.state(tb, id)
		return a.State == want
	})
	return a
}

// calls returns the add-on's Platform calls as "kind status" strings.
func (e *env) calls(id addon.ID, kinds ...string) []string {
	var out []string
	for _, c := range e.sim.Calls() {
		if c.AddonID == string(id) && (len(kinds) == 0 || slices.Contains(kinds, c.Kind)) {
			out = append(out, c.Kind+" "+strconv.Itoa(c.Status))
		}
	}
	return out
}

func TestServerProvisions(t *testing.T) {
	e := setup(t)
	svc := e.service(e.queue, time.Hour)
	e.run(t, svc, e.fast())

	id := addon.ID(uuid.NewString())
	provision(t, svc, id, e.sim.NewAddon(string(id)))
	a := e.waitState(t, id, addon.StateProvisioned)

	want := []string{"grant 200", "config 200", "provision 200"}
	if got := e.calls(id, "grant", "config", "provision", "deprovision"); !slices.Equal(got, want) {
		t.Errorf("calls to Heroku = %v, want %v (in that order, once each)", got, want)
	}
	h, ok := e.sim.Addon(string(id))
	if !ok || h.State != "provisioned" {
		t.Errorf("Heroku sees the add-on as %+v, want provisioned", h)
	}
	if h.Config["KILN_URL"] == "" || h.Config["KILN_URL"] != a.Vars["URL"] {
		t.Errorf("Heroku config KILN_URL = %q, want the driver's URL %q", h.Config["KILN_URL"], a.Vars["URL"])
	}
	if a.GrantExchangedAt.IsZero() || a.ConfigPushedAt.IsZero() || a.ProvisionedAt.IsZero() {
		t.Errorf("steps not all recorded: %+v", a)
	}
}

func TestServerRetriesTransientFailure(t *testing.T) {
	e := setup(t)
	svc := e.service(e.queue, time.Hour)
	e.run(t, svc, e.fast())

	id := addon.ID(uuid.NewString())
	grant := e.sim.NewAddon(string(id))
	e.sim.Inject(herokusim.Fault{Kind: "config", AddonID: string(id), Times: 1, Status: 503})
	provision(t, svc, id, grant)
	e.waitState(t, id, addon.StateProvisioned)

	want := []string{"grant 200", "config 503", "config 200", "provision 200"}
	if got := e.calls(id, "grant", "config", "provision"); !slices.Equal(got, want) {
		t.Errorf("calls to Heroku = %v, want %v", got, want)
	}
}

func TestServerPermanentFailureIsNotRetried(t *testing.T) {
	e := setup(t)
	svc := e.service(e.queue, time.Hour)
	e.run(t, svc, e.fast())

	id := addon.ID(uuid.NewString())
	e.sim.NewAddon(string(id))
	// A grant Heroku never issued: id.heroku.com refuses it, for good.
	provision(t, svc, id, addon.Grant{Code: uuid.NewString(), ExpiresAt: time.Now().Add(5 * time.Minute)})

	a := e.waitState(t, id, addon.StateFailed)
	if a.Reason == "" {
		t.Error("a failed add-on must say why")
	}
	var info *asynq.TaskInfo
	eventually(t, "the grant task archived", func() bool {
		var err error
		info, err = e.in.GetTaskInfo(jobs.QueueGrant, string(addon.JobGrant)+":"+string(id))
		return err == nil && info.State == asynq.TaskStateArchived
	})
	if info.Retried != 0 {
		t.Errorf("the grant task was retried %d times; a permanent failure must not be", info.Retried)
	}
	if got := e.calls(id, "config", "provision"); len(got) != 0 {
		t.Errorf("calls to Heroku after a refused grant = %v, want none", got)
	}
}

// TestGrantNotBlockedByBusyWorkers: with every default slot taken by a
// slow resource job, another add-on's grant is still exchanged.
func TestGrantNotBlockedByBusyWorkers(t *testing.T) {
	e := setup(t)
	svc := e.service(e.queue, time.Hour)
	o := e.fast()
	o.Concurrency = 1
	e.run(t, svc, o)

	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	slow := addon.ID(uuid.NewString())
	e.sim.Inject(herokusim.Fault{Kind: "config", AddonID: string(slow), Hold: hold})
	provision(t, svc, slow, e.sim.NewAddon(string(slow)))
	eventually(t, "the slow add-on's config push held by Heroku", func() bool { return e.sim.Holding("config") == 1 })

	id := addon.ID(uuid.NewString())
	provision(t, svc, id, e.sim.NewAddon(string(id)))
	eventually(t, "the grant exchanged while the only default worker is busy", func() bool {
		if e.sim.Holding("config") != 1 {
			t.Fatal("the slow job let go of its worker first: the grant waited for it")
		}
		return !e.state(t, id).GrantExchangedAt.IsZero()
	})
}

// TestShutdownHandsBackRunningJobs: a job still running when the worker
// stops goes back to its queue for another worker, and Run returns.
func TestShutdownHandsBackRunningJobs(t *testing.T) {
	e := setup(t)
	svc := e.service(e.queue, time.Hour)
	o := e.fast()
	o.ShutdownTimeout = 200 * time.Millisecond
	stop := e.run(t, svc, o)

	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	id := addon.ID(uuid.NewString())
	e.sim.Inject(herokusim.Fault{Kind: "config", AddonID: string(id), Hold: hold})
	provision(t, svc, id, e.sim.NewAddon(string(id)))
	eventually(t, "the config push held by Heroku", func() bool { return e.sim.Holding("config") == 1 })

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	info, err := e.in.GetTaskInfo(jobs.QueueDefault, string(addon.JobProvision)+":"+string(id))
	if err != nil {
		t.Fatalf("the running job is gone from the queue: %v", err)
	}
	if info.State != asynq.TaskStatePending {
		t.Errorf("the running job is %v after shutdown, want pending (handed back)", info.State)
	}
}

func TestReconcilerEnqueuesLostWork(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	down := downQueue(t)

	// Heroku called while Redis was down: recorded, answered, not queued.
	id := addon.ID(uuid.NewString())
	provision(t, e.service(down, time.Hour), id, e.sim.NewAddon(string(id)))
	if n := len(pendingOrNone(t, e.in, jobs.QueueGrant)); n != 0 {
		t.Fatalf("%d grant tasks queued through a dead Redis", n)
	}

	svc := e.service(e.queue, time.Hour)
	e.run(t, svc, e.fast())
	rec := jobs.NewReconciler(svc, e.queue, jobs.ReconcilerOptions{StaleAfter: time.Nanosecond, Log: e.log})
	eventually(t, "a sweep acting on the add-on", func() bool {
		n, err := rec.Sweep(ctx)
		if err != nil {
			t.Fatalf("Sweep: %v", err)
		}
		return n == 1
	})
	e.waitState(t, id, addon.StateProvisioned)
	want := []string{"grant 200", "config 200", "provision 200"}
	if got := e.calls(id, "grant", "config", "provision"); !slices.Equal(got, want) {
		t.Errorf("calls to Heroku = %v, want %v", got, want)
	}
}

func TestReconcilerGivesUpPastDeadline(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	down := downQueue(t)

	id := addon.ID(uuid.NewString())
	svc := e.service(down, time.Millisecond)
	provision(t, svc, id, e.sim.NewAddon(string(id)))

	rec := jobs.NewReconciler(svc, e.queue, jobs.ReconcilerOptions{StaleAfter: time.Nanosecond, Log: e.log})
	eventually(t, "the add-on past its deadline", func() bool {
		return time.Now().After(e.state(t, id).Deadline)
	})
	n, err := rec.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1, nil", n, err)
	}
	a := e.state(t, id)
	if a.State != addon.StateFailed || !strings.Contains(a.Reason, "deadline") {
		t.Errorf("add-on is %s (%q), want failed for the deadline", a.State, a.Reason)
	}
	if n := len(pendingOrNone(t, e.in, jobs.QueueGrant)); n != 0 {
		t.Errorf("%d grant tasks queued for an add-on given up", n)
	}
	if n, err := rec.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("second Sweep = %d, %v; want 0, nil (a failed add-on is final)", n, err)
	}
}

// aheadClock is a clock that runs ahead of time.Now by what was set, so a
// test can move past a deadline or Heroku's 12-hour limit without waiting.
type aheadClock struct{ by atomic.Int64 }

func (c *aheadClock) now() time.Time      { return time.Now().Add(time.Duration(c.by.Load())) }
func (c *aheadClock) set(d time.Duration) { c.by.Store(int64(d)) }

// ahead is the env's service with an 11-hour provisioning deadline, on a
// clock the test moves ahead, and a worker running it (stop ends it; the
// test's end does too).
func (e *env) ahead(tb testing.TB) (*addon.Service, *aheadClock, func() error) {
	tb.Helper()
	clock := &aheadClock{}
	svc := e.serviceWith(e.queue, addon.Options{Deadline: 11 * time.Hour, Now: clock.now})
	return svc, clock, e.run(tb, svc, e.fast())
}

// accountDeleted reports whether the account driver destroyed the add-on's
// account.
func (e *env) accountDeleted(tb testing.TB, id addon.ID) bool {
	tb.Helper()
	var n int64
	if err := e.db.Gorm().Raw("SELECT count(*) FROM accounts WHERE id = ? AND deleted_at IS NOT NULL", string(id)).Row().Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n == 1
}

// TestReconcilerGivesUpOnlyWhatHerokuDoesNotHave: a worker stops while
// its call marking the add-on provisioned is with Heroku, which then
// carries it out: Heroku has the add-on provisioned, Kiln has no record
// of it. Past the deadline the reconciler's give-up asks Heroku first and
// records the add-on provisioned, its resource kept: the customer has it,
// with these credentials.
func TestReconcilerGivesUpOnlyWhatHerokuDoesNotHave(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	svc, clock, stop := e.ahead(t)
	id := addon.ID(uuid.NewString())
	hold := make(chan struct{})
	e.sim.Inject(herokusim.Fault{Kind: herokusim.KindProvision, AddonID: string(id), Times: 1, Hold: hold})
	provision(t, svc, id, e.sim.NewAddon(string(id)))
	eventually(t, "the call marking it provisioned held by Heroku", func() bool { return e.sim.Holding(herokusim.KindProvision) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	close(hold)
	eventually(t, "Heroku to have it provisioned", func() bool {
		h, _ := e.sim.Addon(string(id))
		return h.State == "provisioned"
	})
	if a := e.state(t, id); a.State != addon.StateProvisioning || a.ResourceCreatedAt.IsZero() {
		t.Fatalf("Kiln has it %s, resource %v; want provisioning with its resource recorded", a.State, a.ResourceCreatedAt)
	}

	clock.set(11*time.Hour + time.Minute)
	rec := jobs.NewReconciler(svc, e.queue, jobs.ReconcilerOptions{StaleAfter: time.Nanosecond, Log: e.log, Now: clock.now})
	eventually(t, "the give-up to act (the stopped job's claim let go)", func() bool {
		n, err := rec.Sweep(ctx)
		return err == nil && n == 1
	})
	a := e.state(t, id)
	if a.State != addon.StateProvisioned || a.Vars["URL"] == "" {
		t.Fatalf("after the give-up: %s (%q), vars %v; want provisioned with its credentials", a.State, a.Reason, a.Vars)
	}
	if e.accountDeleted(t, id) {
		t.Error("the live add-on's account was destroyed")
	}
	if got := e.calls(id, herokusim.KindGet); len(got) != 1 {
		t.Errorf("GET /addons calls = %v, want the one asking before the give-up", got)
	}
}

// TestReconcilerGiveUpsStopAtHerokusRateLimit: a give-up asks Heroku
// whether it has the add-on; once Heroku answers with its rate limit, the
// pass asks it about no other add-on (each answer would be the same, and
// each call keeps the limit reached), and those wait for the next sweep.
func TestReconcilerGiveUpsStopAtHerokusRateLimit(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	svc, clock, stop := e.ahead(t)
	// Heroku never takes "provisioned": both stay provisioning, with their
	// resource made and their tokens held.
	e.sim.Inject(herokusim.Fault{Kind: herokusim.KindProvision, Status: http.StatusServiceUnavailable})
	ids := e.accept(t, svc, 2)
	for _, id := range ids {
		eventually(t, "the resource made and Heroku asked to mark it", func() bool {
			return len(e.calls(id, herokusim.KindProvision)) > 0
		})
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.sim.Inject(herokusim.Fault{Kind: herokusim.KindGet, Status: http.StatusTooManyRequests})
	clock.set(11*time.Hour + time.Minute)
	rec := jobs.NewReconciler(svc, e.queue, jobs.ReconcilerOptions{StaleAfter: time.Nanosecond, Log: e.log, Now: clock.now})
	var err error
	eventually(t, "a give-up to reach Heroku (the stopped jobs' claims let go)", func() bool {
		_, err = rec.Sweep(ctx)
		return len(e.calls(ids[0], herokusim.KindGet))+len(e.calls(ids[1], herokusim.KindGet)) > 0
	})
	if addon.ErrorCode(err) != addon.ERATELIMIT {
		t.Errorf("Sweep = %v, want Heroku's rate limit in it", err)
	}
	if got := len(e.calls(ids[0], herokusim.KindGet)) + len(e.calls(ids[1], herokusim.KindGet)); got != 1 {
		t.Errorf("Heroku asked %d times, want once: the pass stops asking at the rate limit", got)
	}
	for _, id := range ids {
		if a := e.state(t, id); a.State != addon.StateProvisioning || e.accountDeleted(t, id) {
			t.Errorf("%s: %s, account deleted %v; want it left for the next sweep", id, a.State, e.accountDeleted(t, id))
		}
	}
}

// TestReconcilerRemovesLeftovers: Heroku refuses an add-on's config for
// good after its resource was made, so the add-on fails holding the
// resource and tokens (an operator may still retry it before its
// deadline). Once Heroku's 12-hour limit has passed Heroku has removed it:
// the reconciler asks Heroku (which still has it provisioning), then
// deprovisions it, the resource is destroyed and no secret is kept.
func TestReconcilerRemovesLeftovers(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	svc, clock, _ := e.ahead(t)
	// Two such add-ons, the first requested first.
	var ids []addon.ID
	for range 2 {
		id := addon.ID(uuid.NewString())
		e.sim.Inject(herokusim.Fault{Kind: herokusim.KindConfig, AddonID: string(id), Status: http.StatusUnprocessableEntity, Message: "Config var names are invalid."})
		provision(t, svc, id, e.sim.NewAddon(string(id)))
		failed := e.waitState(t, id, addon.StateFailed)
		if failed.ResourceCreatedAt.IsZero() || failed.Tokens == nil {
			t.Fatalf("failed with resource %v, tokens %v; want both held", failed.ResourceCreatedAt, failed.Tokens != nil)
		}
		ids = append(ids, id)
	}
	first, second := ids[0], ids[1]

	rec := jobs.NewReconciler(svc, e.queue, jobs.ReconcilerOptions{StaleAfter: time.Nanosecond, Log: e.log})
	if n, err := rec.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep inside Heroku's limit = %d, %v; want nothing done", n, err)
	}
	if a := e.state(t, first); a.State != addon.StateFailed || e.accountDeleted(t, first) {
		t.Fatalf("inside Heroku's limit: %s, account deleted %v; want failed, kept for a retry", a.State, e.accountDeleted(t, first))
	}

	// Past the limit, with Heroku unable to answer about the first: the
	// second goes all the same, the first waits for a sweep that can ask.
	clock.set(addon.HerokuLimit + time.Minute)
	e.sim.Inject(herokusim.Fault{Kind: herokusim.KindGet, AddonID: string(first), Status: http.StatusServiceUnavailable})
	if n, err := rec.Sweep(ctx); err == nil || n != 1 {
		t.Fatalf("Sweep past Heroku's limit, Heroku down for the first = %d, %v; want the second moved and the first's error", n, err)
	}
	e.waitState(t, second, addon.StateDeprovisioned)
	if a := e.state(t, first); a.State != addon.StateFailed || e.accountDeleted(t, first) {
		t.Fatalf("the first, Heroku unable to answer: %s, account deleted %v; want it kept", a.State, e.accountDeleted(t, first))
	}
	e.sim.ClearFaults()
	if n, err := rec.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep with Heroku back = %d, %v; want the first deprovisioned", n, err)
	}
	e.waitState(t, first, addon.StateDeprovisioned)
	for _, id := range ids {
		a := e.state(t, id)
		if !e.accountDeleted(t, id) {
			t.Errorf("%s: the add-on's account was not destroyed", id)
		}
		if a.Tokens != nil || a.Vars != nil {
			t.Errorf("%s: deprovisioned with tokens %v, vars %v; want none kept", id, a.Tokens != nil, a.Vars)
		}
	}
	if got := e.calls(second, herokusim.KindGet); len(got) != 1 {
		t.Errorf("GET /addons calls = %v, want the one asking before anything was destroyed", got)
	}
	if n, err := rec.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("last Sweep = %d, %v; want nothing left", n, err)
	}
}

// TestReconcilerPagesPastStuckAddons: add-ons the reconciler cannot move
// on (here: deprovisions whose job never runs) fill its page of Limit;
// the next sweep must go on from after them, so a newer add-on whose
// task was lost is still enqueued, and round to the oldest again in the
// room its short page leaves: every sweep acts on a full page.
func TestReconcilerPagesPastStuckAddons(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	svc := e.service(downQueue(t), time.Hour) // nothing reaches Redis
	stuck := e.accept(t, svc, 2)
	for _, id := range stuck {
		if err := svc.Deprovision(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	lost := e.accept(t, svc, 1)[0] // the newest: last in the order

	rec := jobs.NewReconciler(e.service(e.queue, time.Hour), e.queue, jobs.ReconcilerOptions{StaleAfter: time.Nanosecond, Limit: 2, Log: e.log})
	granted := func() bool {
		for _, task := range pendingOrNone(t, e.in, jobs.QueueGrant) {
			if strings.Contains(string(task.Payload), string(lost)) {
				return true
			}
		}
		return false
	}
	for sweep := 1; sweep <= 3; sweep++ {
		n, err := rec.Sweep(ctx)
		if err != nil {
			t.Fatalf("sweep %d: %v", sweep, err)
		}
		if n != 2 {
			t.Errorf("sweep %d acted on %d add-ons, want a full page of 2", sweep, n)
		}
		if got, want := granted(), sweep >= 2; got != want {
			t.Fatalf("after sweep %d the lost add-on's grant job is queued: %v, want %v (the first page is %v)", sweep, got, want, stuck)
		}
	}
}

// TestReconcilerResumesACutSweep: a sweep starts no new action once its
// interval has passed (its clock here moves 40 s a reading, the interval
// is a minute), and the next one goes on after the last add-on it
// finished with.
func TestReconcilerResumesACutSweep(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	svc := e.service(downQueue(t), time.Hour) // nothing reaches Redis
	ids := e.accept(t, svc, 3)
	var mu sync.Mutex
	clock := time.Now()
	rec := jobs.NewReconciler(e.service(e.queue, time.Hour), e.queue, jobs.ReconcilerOptions{
		Interval: time.Minute, StaleAfter: time.Nanosecond, Log: e.log,
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(40 * time.Second)
			return clock
		},
	})
	granted := func() int {
		n := 0
		for _, task := range pendingOrNone(t, e.in, jobs.QueueGrant) {
			for _, id := range ids {
				if strings.Contains(string(task.Payload), string(id)) {
					n++
				}
			}
		}
		return n
	}
	for sweep, want := range []int{2, 3} {
		if n, err := rec.Sweep(ctx); err != nil || n != 2 {
			t.Fatalf("sweep %d = %d, %v; want 2 (cut at its interval)", sweep+1, n, err)
		}
		if got := granted(); got != want {
			t.Fatalf("after sweep %d, %d of the 3 add-ons have their grant job queued, want %d", sweep+1, got, want)
		}
	}
}

// pendingOrNone lists pending tasks, treating a queue asynq never saw as empty.
func pendingOrNone(tb testing.TB, in *asynq.Inspector, queue string) []*asynq.TaskInfo {
	tb.Helper()
	tasks, err := in.ListPendingTasks(queue)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	if err != nil {
		tb.Fatalf("list pending tasks of %s: %v", queue, err)
	}
	return tasks
}

// testLogger writes logfmt lines to the test log, and drops lines that
// arrive after the test ended (a handler still winding down).
func testLogger(tb testing.TB) *slog.Logger {
	w := &testWriter{tb: tb}
	tb.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu     sync.Mutex
	tb     testing.TB
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

var _ io.Writer = (*testWriter)(nil)

// TestReconcilerFinishesProvisionedWork: a provisioned add-on can still owe
// Heroku something — a plan change recorded while it provisioned, or rotated
// credentials whose push failed. When that job is lost, a sweep enqueues it
// on the right kind, and the worker delivers it.
func TestReconcilerFinishesProvisionedWork(t *testing.T) {
	tests := []struct {
		name  string
		set   func(a *addon.Addon)
		kind  string
		check func(t *testing.T, e *env, a *addon.Addon)
	}{
		{
			name: "pending plan",
			set:  func(a *addon.Addon) { a.PendingPlan = "basic" },
			kind: "config",
			check: func(t *testing.T, e *env, a *addon.Addon) {
				if a.Plan != "basic" || a.PendingPlan != "" {
					t.Errorf("plan %q pending %q, want basic applied", a.Plan, a.PendingPlan)
				}
			},
		},
		{
			name: "unpushed config",
			set:  func(a *addon.Addon) { a.Vars["URL"] = "https://rotated:key@kiln.test"; a.ConfigPushedAt = time.Time{} },
			kind: "config",
			check: func(t *testing.T, e *env, a *addon.Addon) {
				if a.ConfigPushedAt.IsZero() {
					t.Error("the push was not recorded")
				}
				if h, _ := e.sim.Addon(string(a.ID)); h.Config["KILN_URL"] != "https://rotated:key@kiln.test" {
					t.Errorf("Heroku has KILN_URL %q, want the rotated one", h.Config["KILN_URL"])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			ctx := context.Background()
			svc := e.service(e.queue, time.Hour)
			e.run(t, svc, e.fast())
			id := addon.ID(uuid.NewString())
			provision(t, svc, id, e.sim.NewAddon(string(id)))
			e.waitState(t, id, addon.StateProvisioned)
			before := len(e.calls(id, tt.kind))
			// The work is recorded, but its job is lost (as if Redis lost it).
			if _, err := e.db.Update(ctx, id, func(ctx context.Context, a *addon.Addon) error {
				tt.set(a)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			rec := jobs.NewReconciler(svc, e.queue, jobs.ReconcilerOptions{StaleAfter: time.Nanosecond, Log: e.log})
			if n, err := rec.Sweep(ctx); err != nil || n != 1 {
				t.Fatalf("Sweep = %d, %v; want 1 job enqueued", n, err)
			}
			eventually(t, "the owed work is done", func() bool {
				a := e.state(t, id)
				return a.PendingPlan == "" && !a.ConfigPushedAt.IsZero() && len(e.calls(id, tt.kind)) > before
			})
			tt.check(t, e, e.state(t, id))
			if n, err := rec.Sweep(ctx); err != nil || n != 0 {
				t.Errorf("second Sweep = %d, %v; want nothing left to do", n, err)
			}
		})
	}
}

// TestOutboxSweep: a provision accepted while Redis was down is flagged, and
// the outbox sweep enqueues it as soon as the queue answers (no waiting for
// RECONCILE_AFTER) and clears the flag; a sweep while the queue is still
// down keeps the flag.
func TestOutboxSweep(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	svc, down, id := e.acceptedWhileDown(t)
	rec := jobs.NewReconciler(svc, down, jobs.ReconcilerOptions{Log: e.log})
	if n, err := rec.SweepOutbox(ctx); err == nil || n != 0 {
		t.Fatalf("SweepOutbox with the queue down = %d, %v; want an error", n, err)
	}
	if a := e.state(t, id); !a.Requeue {
		t.Fatal("a failed outbox sweep cleared the flag")
	}
	rec = jobs.NewReconciler(svc, e.queue, jobs.ReconcilerOptions{Log: e.log})
	if n, err := rec.SweepOutbox(ctx); err != nil || n != 1 {
		t.Fatalf("SweepOutbox = %d, %v; want 1", n, err)
	}
	if a := e.state(t, id); a.Requeue {
		t.Error("the flag is still set after the enqueue")
	}
	if got := pending(t, e.in, jobs.QueueGrant); len(got) != 1 || got[0].ID != "addon:grant:"+string(id) {
		t.Errorf("pending grant tasks %v, want the add-on's grant job", got)
	}
}

// TestOutboxWhileASweepRuns: the outbox sweep keeps its pace while a
// reconciler sweep is still running (giving up add-ons against a slow
// resource service can take minutes): work accepted while Redis was down
// is enqueued all the same. The sweep is held in its first step.
func TestOutboxWhileASweepRuns(t *testing.T) {
	e := setup(t)
	svc, _, id := e.acceptedWhileDown(t)
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	rec := jobs.NewReconciler(svc, e.queue, jobs.ReconcilerOptions{
		Interval: time.Hour, OutboxInterval: 20 * time.Millisecond, Log: e.log,
		Now: func() time.Time {
			once.Do(func() { close(held); <-release })
			return time.Now()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	defer func() {
		close(release)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	<-held
	eventually(t, "the flagged add-on enqueued while the sweep is held", func() bool {
		return !e.state(t, id).Requeue
	})
	if got := pending(t, e.in, jobs.QueueGrant); len(got) != 1 || got[0].ID != "addon:grant:"+string(id) {
		t.Errorf("pending grant tasks %v, want the add-on's grant job", got)
	}
}
