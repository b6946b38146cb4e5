package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/drivers/account"
	herokuapi "github.com/kiln-dev/kiln/internal/heroku"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/jobs"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/postgres/pgtest"
	"github.com/kiln-dev/kiln/internal/web"
)

// The operator test server's admin password and the media type it speaks.
const (
	opPassword = "operator-password-0123456789abcdef"
	opAccept   = "application/vnd.kiln+json; version=1"
	opPrefix   = "KILN"
	// opWait bounds every poll: a failure rather than a hang, never a
	// measure of speed.
	opWait = 30 * time.Second
)

// opEnv is a Kiln web handler wired as cmd/web wires it, with the Heroku
// simulator as Platform API, on a fresh database and a leased Redis.
type opEnv struct {
	e      *echo.Echo
	db     *postgres.DB
	svc    *addon.Service
	sim    *herokusim.Sim
	redis  asynq.RedisConnOpt
	spec   *opSpec
	logs   *syncBuffer
	log    *slog.Logger
	worker bool
}

// opConfig tunes newOpEnv.
type opConfig struct {
	limit   web.RateLimit // zero: the defaults
	buckets web.Buckets   // nil: per process
	worker  bool          // run the real asynq worker in-process
}

func newOpEnv(tb testing.TB, cfg opConfig) *opEnv {
	tb.Helper()
	db, _ := pgtest.Store(tb)
	redisOpt, err := asynq.ParseRedisURI(kilntest.Redis(tb))
	if err != nil {
		tb.Fatal(err)
	}
	queue := jobs.NewQueue(redisOpt)
	tb.Cleanup(func() { queue.Close() })
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sim, srv := herokusim.NewServer(tb, herokusim.Options{ClientSecret: "sim-secret", Log: log.With("component", "herokusim")})
	svc := addon.NewService(addon.Deps{
		Store: db,
		Queue: queue,
		Platform: herokuapi.New(herokuapi.Options{
			APIURL: srv.URL, IDURL: srv.URL, ClientSecret: "sim-secret", Log: log,
		}),
		Driver: account.New(db.Gorm(), "http://kiln.test"),
	}, addon.Options{
		Prefix:   opPrefix,
		Deadline: time.Hour,
		Log:      log,
	})
	env := &opEnv{
		e: web.New(web.Options{
			Service:           svc,
			AddonID:           "kiln-test",
			Passwords:         []string{"partner-password"},
			AdminPassword:     opPassword,
			Log:               log,
			OperatorRateLimit: cfg.limit,
			RateBuckets:       cfg.buckets,
		}),
		db: db, svc: svc, sim: sim, redis: redisOpt, spec: loadOpSpec(tb), logs: logs, log: log, worker: cfg.worker,
	}
	if cfg.worker {
		env.runWorker(tb)
	}
	return env
}

// runWorker runs the real job server (grant, provision, deprovision jobs)
// until the test ends.
func (e *opEnv) runWorker(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := jobs.NewServer(e.redis, e.svc, jobs.ServerOptions{
		Concurrency: 2, GrantConcurrency: 1, Log: e.log, ShutdownTimeout: 2 * time.Second,
		BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond,
	})
	go func() { done <- srv.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				tb.Errorf("worker: %v", err)
			}
		case <-time.After(opWait):
			tb.Error("the worker did not stop")
		}
	})
}

// opReq is one operator API call. Unless told otherwise it carries the
// versioned Accept header and the admin password as a Bearer token; a
// header set to "" is removed.
type opReq struct {
	method, path, body string
	header             map[string]string
	basic              []string // user, password: Basic instead of Bearer
	remote             string   // RemoteAddr; default 192.0.2.1:1234
	// invalid marks a request that breaks the schema on purpose (no
	// version, wrong credentials, unknown filters): only its answer is
	// checked against the schema.
	invalid bool
}

// opAns is an answer; v is its decoded JSON body (nil when none).
type opAns struct {
	status int
	header http.Header
	body   []byte
	v      any
}

// str returns a top-level string field of an object answer.
func (a opAns) str(k string) string { return opString(opMap(a.v)[k]) }

// list returns the answer as an array of objects.
func (a opAns) list() []map[string]any {
	var out []map[string]any
	for _, x := range opSlice(a.v) {
		out = append(out, opMap(x))
	}
	return out
}

// do sends r to the handler and checks request and answer against the
// schema.
func (e *opEnv) do(tb testing.TB, r opReq) opAns {
	tb.Helper()
	return opServe(tb, e.e, e.spec, r)
}

func opServe(tb testing.TB, h http.Handler, spec *opSpec, r opReq) opAns {
	tb.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body io.Reader = http.NoBody
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	req.RemoteAddr = "192.0.2.1:1234"
	if r.remote != "" {
		req.RemoteAddr = r.remote
	}
	req.Header.Set("Accept", opAccept)
	if r.basic != nil {
		req.SetBasicAuth(r.basic[0], r.basic[1])
	} else {
		req.Header.Set("Authorization", "Bearer "+opPassword)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	o, pathValues := spec.find(req.Method, req.URL.Path)
	if o != nil && !r.invalid {
		spec.checkRequest(tb, o, pathValues, req, r.body)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	a := opAns{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	spec.checkResponse(tb, o, req.Method, req.URL.String(), a.status, a.header, a.body)
	if len(a.body) > 0 {
		if err := json.Unmarshal(a.body, &a.v); err != nil {
			tb.Fatalf("%s %s: answer is not JSON: %v: %q", r.method, r.path, err, a.body)
		}
	}
	return a
}

// want fails the test unless the answer has the status (and, for errors,
// the id).
func (a opAns) want(tb testing.TB, status int, id ...string) opAns {
	tb.Helper()
	if a.status != status {
		tb.Fatalf("status = %d, want %d; body %s", a.status, status, a.body)
	}
	if len(id) > 0 && a.str("id") != id[0] {
		tb.Fatalf("error id = %q, want %q; body %s", a.str("id"), id[0], a.body)
	}
	return a
}

// seed records an add-on straight in the store, in the given state, so
// listing tests need no pipeline.
func (e *opEnv) seed(tb testing.TB, name, plan string, state addon.State) *addon.Addon {
	tb.Helper()
	now := time.Now().UTC()
	a := &addon.Addon{
		ID: addon.ID(uuid.NewString()), Name: name, Plan: plan, Region: "amazon-web-services::us-east-1",
		CallbackURL: "https://api.heroku.com/addons/x", State: state,
		Deadline: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now,
		Options: map[string]string{"flag": "true"},
		// A grant, as Heroku sends with nearly every add-on: a failed one
		// can then be retried.
		Grant: &addon.Grant{Code: "seed-" + uuid.NewString(), ExpiresAt: now.Add(5 * time.Minute)},
	}
	a.Note(now, "state", "seeded by the test")
	stored, created, err := e.db.Create(context.Background(), a)
	if err != nil || !created {
		tb.Fatalf("seed: created=%v err=%v", created, err)
	}
	return stored
}

// provisioned takes an add-on through the real pipeline use cases, in
// process (what the worker's jobs call): provision request with a
// simulator grant, grant exchange, resource, config push, provisioned.
func (e *opEnv) provisioned(tb testing.TB, name string) *addon.Addon {
	tb.Helper()
	ctx := context.Background()
	id := addon.ID(uuid.NewString())
	grant := e.sim.NewAddon(string(id))
	if _, _, err := e.svc.Provision(ctx, addon.ProvisionRequest{
		ID: id, Name: name, Plan: "test", Region: "amazon-web-services::us-east-1",
		CallbackURL: "https://api.heroku.com/addons/" + string(id), Grant: &grant,
		LogInputURL: "https://token:t.secret-log-input@1.us.logplex.io/logs", LogDrainToken: "d.secret-drain-token",
	}); err != nil {
		tb.Fatalf("Provision: %v", err)
	}
	if e.worker {
		return e.waitState(tb, id, addon.StateProvisioned)
	}
	if err := e.svc.GrantJob(ctx, id); err != nil {
		tb.Fatalf("ExchangeGrant: %v", err)
	}
	if err := e.svc.ProvisionJob(ctx, id); err != nil {
		tb.Fatalf("ProvisionJob: %v", err)
	}
	a := e.get(tb, id)
	if a.State != addon.StateProvisioned {
		tb.Fatalf("add-on is %s after the pipeline, want provisioned", a.State)
	}
	return a
}

func (e *opEnv) get(tb testing.TB, id addon.ID) *addon.Addon {
	tb.Helper()
	a, err := e.db.Get(context.Background(), id)
	if err != nil {
		tb.Fatalf("get %s: %v", id, err)
	}
	return a
}

// waitState polls the store until the add-on is in state.
func (e *opEnv) waitState(tb testing.TB, id addon.ID, state addon.State) *addon.Addon {
	tb.Helper()
	deadline := time.Now().Add(opWait)
	for {
		a := e.get(tb, id)
		if a.State == state {
			return a
		}
		if time.Now().After(deadline) {
			tb.Fatalf("add-on %s is %s (%s), gave up waiting for %s", id, a.State, a.Reason, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// opCalls returns the simulator's calls for an add-on as "kind status".
func (e *opEnv) opCalls(id addon.ID, kinds ...string) []string {
	var out []string
	for _, c := range e.sim.Calls() {
		if c.AddonID != string(id) {
			continue
		}
		for _, k := range kinds {
			if c.Kind == k {
				out = append(out, c.Kind+" "+http.StatusText(c.Status))
			}
		}
	}
	return out
}

// failingBuckets are shared buckets whose store is down.
type failingBuckets struct {
	mu    sync.Mutex
	calls int
}

func (f *failingBuckets) Take(context.Context, string, int, float64) (int, time.Duration, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return 0, 0, false, errors.New("redis: connection refused")
}

// compact reports whether b is minified JSON.
func compact(b []byte) bool {
	var buf bytes.Buffer
	return json.Compact(&buf, b) == nil && bytes.Equal(buf.Bytes(), b)
}
