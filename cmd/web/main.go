// Command web is Kiln's web process: it answers Heroku's Partner API calls,
// single sign-on and the operators' pages on $PORT.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kiln-dev/kiln/cmd/internal/kiln"
	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/jobs"
	"github.com/kiln-dev/kiln/internal/ratelimit"
	"github.com/kiln-dev/kiln/internal/web"
)

func main() { kiln.Main(config.Web, run) }

// shutdownGrace is how long in-flight requests may finish after SIGTERM;
// Heroku kills the dyno 30 s after it.
const shutdownGrace = 20 * time.Second

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, log, err := kiln.Configure(getenv, stdout, config.Web)
	if err != nil {
		return err
	}
	app, err := kiln.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()
	// One Redis pool for everything in this process (REDIS_POOL_SIZE); over
	// Sentinel it follows the primary through a failover.
	rdb := app.RedisClient
	svc, db := app.Service, app.DB
	// The operators' queue dashboard and the queues' metrics read the same
	// Redis as the queue, through the same pool. asynqmon closes the client
	// it is given: it is closed last, when the process has stopped serving.
	queues := asynqmon.New(asynqmon.Options{RootPath: web.QueuesPath, RedisConnOpt: app.Conn})
	defer queues.Close()
	queueMetrics := jobs.NewQueueMetrics(app.Conn, log)
	defer queueMetrics.Close()
	app.LogBudget(0, 0)
	handler := web.New(web.Options{
		Service:       svc,
		AddonID:       cfg.AddonID,
		Passwords:     cfg.AddonPasswords,
		AdminPassword: cfg.AdminPassword,
		SSOSalt:       cfg.SSOSalt,
		SessionKeys:   cfg.EncryptionKeys,
		Nonces:        db,
		Queues:        queues,
		Collectors:    []prometheus.Collector{queueMetrics},
		Keeper:        app.Keeper,
		RateBuckets:   ratelimit.New(rdb), // the operator API's limit and the guessing limits (admin, Partner API) hold across dynos
		Log:           log,
		Health: []web.Check{
			{Name: "postgres", Check: db.Ping},
			{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		},
	})

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return err
	}
	log.Info("listening", "port", cfg.Port, "driver", svc.DriverName())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
