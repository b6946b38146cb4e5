// Package kiln wires Kiln's adapters together for the commands under cmd/.
// It is the only place that knows every concrete adapter, so web, worker and
// the tools build the same service the same way.
package kiln

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/heroku"
	"github.com/kiln-dev/kiln/internal/jobs"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/redisconn"
	"github.com/kiln-dev/kiln/internal/secret"
)

// Logger returns the process logger: logfmt lines (Heroku's convention) on w,
// each tagged with the dyno name when Heroku sets DYNO, so lines from web.1
// and worker.2 can be told apart in a log drain.
func Logger(w io.Writer, getenv func(string) string, level string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	}
	log := slog.New(requestIDs{slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv})})
	if dyno := getenv("DYNO"); dyno != "" {
		log = log.With("dyno", dyno)
	}
	return log
}

// requestIDs adds the request id (addon.WithRequestID) to every line logged
// with the context of a request being served, whichever package logs it.
type requestIDs struct{ slog.Handler }

func (h requestIDs) Handle(ctx context.Context, r slog.Record) error {
	if id := addon.RequestID(ctx); id != "" {
		has := false
		r.Attrs(func(a slog.Attr) bool {
			has = a.Key == "request_id"
			return !has
		})
		if !has {
			r.AddAttrs(slog.String("request_id", id))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDs{h.Handler.WithAttrs(attrs)}
}

func (h requestIDs) WithGroup(name string) slog.Handler { return requestIDs{h.Handler.WithGroup(name)} }

// Redis reads REDIS_URL: one server, or a Sentinel group (see
// internal/redisconn for the URL forms). Heroku's Redis speaks TLS
// (rediss://) with self-signed certificates, so verification is off for TLS
// unless REDIS_TLS_VERIFY=true.
func Redis(c *config.Config) (*redisconn.Conn, error) {
	conn, err := redisconn.Parse(c.RedisURL, c.RedisTLSVerify)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return conn, nil
}

// Platform builds Kiln's client for id.heroku.com and the Platform API.
func Platform(c *config.Config, log *slog.Logger) *heroku.Client {
	return heroku.New(heroku.Options{
		APIURL:       c.HerokuAPIURL,
		IDURL:        c.HerokuIDURL,
		ClientSecret: c.OAuthClientSecret,
		HTTPClient:   platformClient(),
		Log:          log,
	})
}

// App is Kiln's service assembled from the environment: everything the web
// and worker processes share, built one way so they cannot drift apart.
type App struct {
	Config *config.Config
	Log    *slog.Logger
	DB     *postgres.DB
	Redis  *redisconn.Conn // REDIS_URL: one server or a Sentinel group
	// RedisClient is the process's one Redis pool (REDIS_POOL_SIZE
	// connections), and Conn hands it to asynq, asynqmon and the jobs
	// adapter, so nothing opens a pool of its own.
	RedisClient *redis.Client
	Conn        jobs.SharedRedis
	Queue       *jobs.Queue
	Driver      addon.Driver
	Service     *addon.Service
	// Keeper keeps the add-ons in step with Heroku (sync, webhooks, log
	// stream, asynchronous deprovisioning, credential rolls).
	Keeper  *addon.Keeper
	closers []func() error
}

// Open connects to Postgres, Redis and the resource driver and builds the
// add-on service. Close releases what it opened.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*App, error) {
	a := &App{Config: cfg, Log: log}
	keys, err := secret.New(cfg.EncryptionKeys)
	if err != nil {
		return nil, err
	}
	if a.DB, err = postgres.Open(ctx, cfg.DatabaseURL, keys); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	a.closers = append(a.closers, a.DB.Close)
	if a.Redis, err = Redis(cfg); err != nil {
		a.Close()
		return nil, err
	}
	redisconn.Logger(log)
	log.Info("redis", "conn", a.Redis.String())
	a.DB.SetPoolSize(cfg.DatabasePool)
	// Over Sentinel this is go-redis's failover client: asynq (through
	// Conn), rate limits and health all follow the primary.
	a.RedisClient = a.Redis.Pooled(cfg.RedisPool)
	a.closers = append(a.closers, func() error {
		if err := a.RedisClient.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			return err
		}
		return nil
	})
	a.Conn = jobs.SharedRedis{Client: a.RedisClient}
	a.Queue = jobs.NewQueue(a.Conn)
	a.closers = append(a.closers, a.Queue.Close)
	var tenants addon.Tenants
	if a.Driver, tenants, err = Driver(ctx, cfg, a.DB, log); err != nil {
		a.Close()
		return nil, err
	}
	if c, ok := a.Driver.(io.Closer); ok {
		a.closers = append(a.closers, c.Close)
	}
	platform := Platform(cfg, log)
	a.Keeper = Keeper(cfg, a.DB, platform)
	a.Service = addon.NewService(addon.Deps{
		// The keeper hears of recorded milestones through the store.
		Store:    a.Keeper.Observe(a.DB),
		Queue:    a.Queue,
		Platform: platform,
		Driver:   a.Driver,
		Tenants:  tenants,
		Watcher:  platform,
	}, addon.Options{
		Prefix:   cfg.ConfigPrefix,
		Deadline: cfg.ProvisionDeadline,
		Log:      log,
		Owner:    os.Getenv("DYNO"),
		LeaseTTL: cfg.LeaseTTL,
		// Only the worker runs grant jobs: the web never uses it.
		InlineProvisions: cfg.InlineProvisions,
	})
	a.Keeper.Service = a.Service
	return a, nil
}

// LogBudget says at start how many connections this process may open, so
// an operator can add up a deployment against its plans' limits
// (docs/deploy.md). subscriptions is the number of asynq servers (each holds
// one Redis subscription beyond the pool); extraRedis counts the
// connections of any Redis client the process makes beside the shared pool
// (the worker's admin guard when WORKER_DEBUG_ADDR is set), so redis_max is
// every Redis connection the process can open.
func (a *App) LogBudget(subscriptions, extraRedis int, attrs ...any) {
	args := budget(a.DB.PoolSize(), a.Config.RedisPool, subscriptions, extraRedis)
	a.Log.Info("connection budget", append(args, attrs...)...)
}

// budget is LogBudget's figures.
func budget(postgresPool, redisPool, subscriptions, extraRedis int) []any {
	return []any{
		"postgres_max", postgresPool,
		"redis_max", redisPool + subscriptions + extraRedis,
		"redis_pool", redisPool,
		"redis_subscriptions", subscriptions,
		"redis_extra", extraRedis,
		"gomaxprocs", runtime.GOMAXPROCS(0),
	}
}

// Close releases the connections Open made, newest first.
func (a *App) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	return errors.Join(errs...)
}
