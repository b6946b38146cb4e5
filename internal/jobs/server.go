package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/kiln-dev/kiln/internal/addon"
)

// ServerOptions tunes the worker. Zero values take the defaults.
type ServerOptions struct {
	// Concurrency is how many default/cleanup jobs run at once. Jobs wait
	// on Heroku and the driver almost all the time and hold no Postgres or
	// Redis connection while they wait (connections are pooled per process,
	// see docs/deploy.md), so this is a budget of goroutines, not of
	// connections. Default DefaultConcurrency.
	Concurrency int
	// GrantConcurrency is how many grant exchanges run at once, on their own
	// server, so they never wait for a free resource-work slot. Default
	// DefaultGrantConcurrency.
	GrantConcurrency int
	// KeeperConcurrency is how many keeper jobs (syncs, webhook
	// subscriptions, log lines) run at once, on their own server, so they
	// never take provisioning's slots. Default DefaultKeeperConcurrency.
	KeeperConcurrency int
	// Log receives the worker's logfmt lines. Default: discarded.
	Log *slog.Logger
	// ShutdownTimeout is how long running jobs may finish after Run's
	// context ends before asynq hands them back to the queue. Default 20 s,
	// so the process exits within 25 s of SIGTERM (Heroku kills at 30 s).
	ShutdownTimeout time.Duration
	// BaseDelay and MaxDelay shape the retry backoff: BaseDelay·2^n, with
	// jitter, capped at MaxDelay. Defaults 1 s and 5 min: short enough for a
	// grant to get several attempts within its five minutes, long enough not
	// to hammer a Heroku that is down.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// PollInterval is how often due retries and held tasks are moved to
	// their queue. Default 1 s (asynq's own default for retries is 5 s,
	// which would swamp a 1 s backoff).
	PollInterval time.Duration
	// IdlePoll is how long, on average, a server whose queues were all
	// empty waits before it looks again (asynq polls, sleeping between
	// half and one and a half of it; it does not block on Redis).
	// Every hop of the pipeline (grant, provision) can wait that long when
	// the worker is idle, so it is short: default 200 ms, or PollInterval
	// when that is shorter. A burst never waits on it (the queues are not
	// empty). kiln-bench's steady phase: from request to provisioned, p50
	// 680 ms and p99 2.7 s with asynq's 1 s, 150 ms and 330 ms with 200 ms,
	// for 2–5% more CPU per add-on; an idle worker's three servers
	// make about 20 dequeue calls a second instead of 4 (one per queue).
	IdlePoll time.Duration
	// Handlers adds job kinds beyond the pipeline's, or replaces a
	// pipeline handler (the keeper's asynchronous deprovisioning wraps
	// the deprovision job).
	Handlers map[addon.JobKind]func(ctx context.Context, id addon.ID) error
}

// Default worker concurrency: with Heroku answering in 100–300 ms, a
// provision spends about half a second waiting on the network, so 100 slots
// carry a couple of hundred add-ons a second. A grant job is one such call
// and a few short writes, so a slot exchanges three to five grants a
// second: 100 grant slots take a burst at 300–400 a second, well inside the
// grants' five minutes (50 slots measured 275/s at 150 ms, kiln-bench's
// latency phase; docs/performance.md).
const (
	DefaultConcurrency      = 100
	DefaultGrantConcurrency = 100
	// DefaultIdlePoll is ServerOptions.IdlePoll's default.
	DefaultIdlePoll = 200 * time.Millisecond
	// DefaultKeeperConcurrency bounds the keeper's best-effort jobs: a log
	// drain that hangs for its whole timeout holds at most this many slots.
	DefaultKeeperConcurrency = 10
)

// AsynqServers is how many asynq servers a worker runs; each holds one Redis
// connection of its own for task cancellations, outside the shared pool.
const AsynqServers = 3

func (o ServerOptions) withDefaults() ServerOptions {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.GrantConcurrency <= 0 {
		o.GrantConcurrency = DefaultGrantConcurrency
	}
	if o.KeeperConcurrency <= 0 {
		o.KeeperConcurrency = DefaultKeeperConcurrency
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 20 * time.Second
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Minute
	}
	if o.MaxDelay < o.BaseDelay {
		o.MaxDelay = o.BaseDelay
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.IdlePoll <= 0 {
		o.IdlePoll = min(DefaultIdlePoll, o.PollInterval)
	}
	return o
}

// Server is the worker process's job runner. It runs three asynq servers on
// one Redis: one only for the grant queue, one for default and cleanup, and
// a small one for the keeper's best-effort jobs. A grant exchange is the one
// job with a hard clock (the code dies five minutes after Heroku's request)
// and must not queue behind resource work when every default slot is busy;
// and a slow log drain or sync must never hold a slot provisioning needs.
type Server struct {
	opt     ServerOptions
	log     *slog.Logger
	mux     *asynq.ServeMux
	grant   *asynq.Server
	main    *asynq.Server
	keeper  *asynq.Server
	health  func(error)
	redis   asynq.RedisConnOpt
	baseCtx context.Context
	cancel  context.CancelFunc
}

// NewServer builds the worker's job runner over the add-on use cases.
// Nothing connects until Run.
func NewServer(r asynq.RedisConnOpt, svc *addon.Service, o ServerOptions) *Server {
	o = o.withDefaults()
	s := &Server{opt: o, log: o.Log.With("component", "jobs"), redis: r}
	asynqLog := o.Log.With("component", "asynq")
	// Handlers get a context of their own, cancelled only after all asynq
	// servers have shut down (and handed unfinished tasks back): cancelling
	// it at SIGTERM would turn every running job into a failed attempt with
	// a backoff, where a hand-back retries it at once on another dyno.
	s.baseCtx, s.cancel = context.WithCancel(context.Background())

	// One handler per job kind (asynq's HandleXTask) behind one policy,
	// which reads each task's payload once and hands the handler its add-on.
	s.mux = asynq.NewServeMux()
	s.mux.Use(s.policy)
	// One line per addon.JobKind; a kind without a line here is not lost:
	// asynq's "handler not found" is transient to the policy, so its tasks
	// wait in the retry set until a release registers the kind.
	handlers := map[addon.JobKind]func(context.Context, addon.ID) error{
		addon.JobGrant:       svc.GrantJob,
		addon.JobProvision:   svc.ProvisionJob,
		addon.JobPlanChange:  svc.PlanChangeJob,
		addon.JobDeprovision: svc.DeprovisionJob,
		addon.JobPushConfig:  svc.PushConfigJob,
	}
	maps.Copy(handlers, o.Handlers)
	for kind, fn := range handlers {
		s.mux.Handle(string(kind), handleTask(fn))
	}

	s.health = healthLogger(s.log)
	cfg := func(name string, concurrency int, queues map[string]int) asynq.Config {
		return s.config(asynqLog.With("server", name), concurrency, queues)
	}
	newServer := asynq.NewServer
	if sr, ok := r.(SharedRedis); ok {
		newServer = func(_ asynq.RedisConnOpt, c asynq.Config) *asynq.Server {
			return asynq.NewServerFromRedisClient(sr.Client, c)
		}
	}
	s.grant = newServer(r, cfg("grant", o.GrantConcurrency, map[string]int{QueueGrant: 1}))
	// Cleanup gets a small share: deprovisioning stops billing at Heroku's
	// request, so it is never urgent, but weighted (not strict) priority
	// keeps it from starving.
	s.main = newServer(r, cfg("default", o.Concurrency, map[string]int{QueueDefault: 3, QueueCleanup: 1}))
	s.keeper = newServer(r, cfg("keeper", o.KeeperConcurrency, map[string]int{QueueKeeper: 1}))
	return s
}

// config is one asynq server's configuration under the options: its
// slots and queues, how it retries, and how often it polls (IdlePoll when
// its queues were empty, PollInterval for due retries and held tasks).
func (s *Server) config(log *slog.Logger, concurrency int, queues map[string]int) asynq.Config {
	o := s.opt
	return asynq.Config{
		Concurrency: concurrency,
		BaseContext: func() context.Context { return s.baseCtx },
		Queues:      queues,
		RetryDelayFunc: func(n int, err error, _ *asynq.Task) time.Duration {
			return retryDelay(n, err, o.BaseDelay, o.MaxDelay, jitter)
		},
		ShutdownTimeout:          o.ShutdownTimeout,
		TaskCheckInterval:        o.IdlePoll,
		DelayedTaskCheckInterval: o.PollInterval,
		Logger:                   asynqLogger{log},
		LogLevel:                 asynq.InfoLevel,
		HealthCheckFunc:          s.health,
		// Waiting for another writer of the add-on is not a failure:
		// it neither counts against the retry budget nor backs off.
		IsFailure: func(err error) bool { return !addon.IsBusy(err) },
	}
}

// handleTask is the asynq handler of one job kind (asynq's HandleXTask):
// it runs the use case on the add-on the policy decoded from the task's
// payload, so the payload is read once, at the edge.
func handleTask(fn func(ctx context.Context, id addon.ID) error) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, ok := ctx.Value(addonKey{}).(addon.ID)
		if !ok {
			// Only a mux without the policy gets here: a bug, not a retry.
			return fmt.Errorf("job %s has no decoded add-on (no policy middleware): %w", t.Type(), asynq.SkipRetry)
		}
		return fn(ctx, id)
	})
}

// addonKey is the context key under which the policy hands a task's
// decoded add-on id to its handler.
type addonKey struct{}

// policy is the edge and the error policy around every job. It decodes the
// task's payload, once: a malformed one is refused without retrying, a
// valid add-on id goes to the handler in the context (handleTask). Then
// success is done; a permanent error (the service has already marked the
// add-on failed) is archived without retrying; anything transient is
// retried with backoff. It is also the single place jobs are logged.
func (s *Server) policy(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		retried, _ := asynq.GetRetryCount(ctx)
		log := s.log.With("job", t.Type(), "attempt", retried+1)
		id, err := decode(t.Payload())
		if err != nil {
			log.Error("job refused: malformed payload", "err", err)
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		log = log.With("addon", id)
		log.Debug("job started")
		err = next.ProcessTask(context.WithValue(ctx, addonKey{}, id), t)
		switch {
		case err == nil:
			log.Info("job done")
			return nil
		case addon.IsBusy(err):
			log.Debug("add-on busy with another writer; will retry shortly", "retry_after", addon.RetryAfter(err))
			return err
		case errors.Is(err, asynq.ErrHandlerNotFound):
			log.Warn("no handler registered for this job kind yet; will retry", "err", err)
			return err
		case !addon.Transient(err):
			log.Error("job failed permanently; not retrying", "code", addon.ErrorCode(err), "err", err)
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		default:
			log.Warn("job failed; will retry", "code", addon.ErrorCode(err), "retry_after", addon.RetryAfter(err), "err", err)
			return err
		}
	})
}

// Run starts the asynq servers, blocks until ctx ends, then shuts them all
// down at once: running jobs get ShutdownTimeout to finish and are then
// handed back to their queue. An unreachable Redis at start is logged, not
// fatal: asynq keeps reconnecting, the reconciler catches up afterwards, and
// a worker that exits would only crash-loop. A Redis user refused asynq's
// cancellation channel is fatal (checkCancelChannel): waiting would not
// help, and asynq's retries would leak connections.
func (s *Server) Run(ctx context.Context) error {
	defer s.cancel()
	if err := checkCancelChannel(ctx, s.redis); err != nil {
		return err
	}
	if err := s.grant.Start(s.mux); err != nil {
		return fmt.Errorf("jobs: start grant server: %w", err)
	}
	if err := s.main.Start(s.mux); err != nil {
		s.grant.Shutdown()
		return fmt.Errorf("jobs: start default server: %w", err)
	}
	if err := s.keeper.Start(s.mux); err != nil {
		s.grant.Shutdown()
		s.main.Shutdown()
		return fmt.Errorf("jobs: start keeper server: %w", err)
	}
	s.log.Info("worker started", "concurrency", s.opt.Concurrency, "grant_concurrency", s.opt.GrantConcurrency)
	// asynq's own health probe first runs after 15 s; say at once whether
	// Redis answers, without delaying the start on a slow dial.
	go func() { s.health(s.main.Ping()) }()
	<-ctx.Done()

	s.log.Info("worker draining", "timeout", s.opt.ShutdownTimeout)
	var wg sync.WaitGroup
	for _, srv := range []*asynq.Server{s.grant, s.main, s.keeper} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.Shutdown()
		}()
	}
	wg.Wait()
	s.log.Info("worker stopped")
	return nil
}

// retryDelay is the backoff after the n-th failed attempt (n from 0):
// base·2^n, capped at max, minus up to a quarter of jitter so a burst of
// failures (Heroku down for everyone) does not retry in lockstep. A
// Retry-After hint carried by the error is honoured when it asks for longer,
// with up to a tenth of jitter on top, but it is capped at max too: a bogus
// hint must not park a job past the add-on's deadline.
func retryDelay(n int, err error, base, max time.Duration, jitter func(time.Duration) time.Duration) time.Duration {
	if addon.IsBusy(err) {
		// Another writer holds the add-on; it tells how long it has left.
		ra := min(addon.RetryAfter(err), max)
		return ra + jitter(ra/4)
	}
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	d -= jitter(d / 4)
	if ra := addon.RetryAfter(err); ra > d {
		d = ra + jitter(ra/10)
	}
	if d > max {
		d = max
	}
	return d
}

// jitter returns a random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// healthLogger logs Redis health changes (not every probe), so an outage
// shows as one error line and one recovery line. Both asynq servers share
// it: they probe the same Redis.
func healthLogger(log *slog.Logger) func(error) {
	var mu sync.Mutex
	healthy := true
	return func(err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil && healthy:
			log.Error("redis unreachable", "err", err)
		case err == nil && !healthy:
			log.Info("redis reachable again")
		}
		healthy = err == nil
	}
}

// asynqLogger routes asynq's own logs into the process's slog logger.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.log.Error(fmt.Sprint(args...)) }

// Fatal honours asynq's Logger contract (log, then exit 1). asynq itself
// never calls it.
func (l asynqLogger) Fatal(args ...any) {
	l.log.Error(fmt.Sprint(args...))
	os.Exit(1)
}
