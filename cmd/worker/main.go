// Command worker is Kiln's worker process: it runs the provisioning pipeline
// jobs from Redis and the reconciler that re-enqueues accepted work that has
// no live job.
package main

import (
	"context"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/kiln-dev/kiln/cmd/internal/kiln"
	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/jobs"
	"github.com/kiln-dev/kiln/internal/ratelimit"
	"github.com/kiln-dev/kiln/internal/web"
)

func main() { kiln.Main(config.Worker, run) }

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, log, err := kiln.Configure(getenv, stdout, config.Worker)
	if err != nil {
		return err
	}
	app, err := kiln.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()
	conn := app.Conn
	svc, queue := app.Service, app.Queue
	keeper := app.Keeper
	server := jobs.NewServer(conn, svc, jobs.ServerOptions{Concurrency: cfg.Concurrency, GrantConcurrency: cfg.GrantConcurrency,
		KeeperConcurrency: cfg.KeeperConcurrency, Log: log, Handlers: kiln.KeeperJobs(keeper)})
	reconciler := jobs.NewReconciler(svc, queue, jobs.ReconcilerOptions{
		Interval:       cfg.ReconcileEvery,
		StaleAfter:     cfg.ReconcileAfter,
		OutboxInterval: cfg.OutboxInterval,
		Redis:          conn, // one sweep per interval across all worker dynos
		Log:            log,
	})

	var debug *debugServer
	guardPool := adminGuardPool(cfg.WorkerDebugAddr)
	if guardPool > 0 {
		// The guessing limit is shared with the web dynos' admin pages
		// through Redis; a client of its own, outside the shared pool.
		// (Over Sentinel it follows the primary, as every client does.)
		rdb := app.Redis.Pooled(guardPool)
		defer rdb.Close()
		guard := web.NewAdminGuard(ratelimit.New(rdb), web.RateLimit{}, log)
		if debug, err = listenDebug(cfg.WorkerDebugAddr, cfg.AdminPassword, guard, log); err != nil {
			return err
		}
	}

	log.Info("starting", "driver", svc.DriverName(), "concurrency", cfg.Concurrency, "grant_concurrency", cfg.GrantConcurrency,
		"keeper_concurrency", cfg.KeeperConcurrency, "inline_provisions", cfg.InlineProvisions)
	app.LogBudget(jobs.AsynqServers, guardPool, "concurrency", cfg.Concurrency, "grant_concurrency", cfg.GrantConcurrency)
	g, ctx := errgroup.WithContext(ctx)
	if debug != nil {
		g.Go(func() error { return debug.serve(ctx) })
	}
	g.Go(func() error { return server.Run(ctx) })
	g.Go(func() error { return reconciler.Run(ctx) })
	g.Go(func() error {
		return jobs.RunSweep(ctx, keeper.SweepInterval(), keeper.Sweep, log.With("component", "keeper"))
	})
	err = g.Wait()
	log.Info("stopped")
	return err
}

// adminGuardPool is how many Redis connections the debug listener's admin
// guard opens (none without WORKER_DEBUG_ADDR): two are enough for its
// guessing limit, and they count in the worker's budget.
func adminGuardPool(debugAddr string) int {
	if debugAddr == "" {
		return 0
	}
	return 2
}
