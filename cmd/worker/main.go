// Command worker is Kiln's worker process: it runs the provisioning pipeline
// jobs from Redis and the reconciler that re-enqueues accepted work that has
// no live job.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/kiln-dev/kiln/cmd/internal/kiln"
	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/jobs"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/secret"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv, config.Worker)
	if err != nil {
		return err
	}
	log := kiln.Logger(stdout, getenv, cfg.LogLevel).With("process", "worker")
	keys, err := secret.New(cfg.EncryptionKeys)
	if err != nil {
		return err
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL, keys)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	ropt, err := kiln.Redis(cfg)
	if err != nil {
		return err
	}
	conn := kiln.AsynqRedis(ropt)
	queue := jobs.NewQueue(conn)
	defer queue.Close()
	driver, err := kiln.Driver(ctx, cfg, db, log)
	if err != nil {
		return err
	}
	if c, ok := driver.(io.Closer); ok {
		defer c.Close()
	}
	svc := &addon.Service{
		Store:    db,
		Queue:    queue,
		Platform: kiln.Platform(cfg, log),
		Driver:   driver,
		Prefix:   cfg.ConfigPrefix,
		Deadline: cfg.ProvisionDeadline,
		Log:      log,
	}
	server := jobs.NewServer(conn, svc, jobs.ServerOptions{Concurrency: cfg.Concurrency, Log: log})
	reconciler := jobs.NewReconciler(db, queue, svc, jobs.ReconcilerOptions{
		Interval:   cfg.ReconcileEvery,
		StaleAfter: cfg.ReconcileAfter,
		Redis:      conn, // one sweep per interval across all worker dynos
		Log:        log,
	})

	log.Info("starting", "driver", driver.Name(), "concurrency", cfg.Concurrency)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return server.Run(ctx) })
	g.Go(func() error { return reconciler.Run(ctx) })
	err = g.Wait()
	log.Info("stopped")
	return err
}
