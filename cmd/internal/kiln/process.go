package kiln

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kiln-dev/kiln/internal/config"
)

// Main is the main function of every Procfile process p. run gets a
// context that ends at SIGTERM (how Heroku stops a dyno) or an interrupt,
// the environment and stdout, so tests can call it with their own; an
// error is printed after the process's name and exits 1, which for the
// release process stops the deploy.
func Main(p config.Process, run func(ctx context.Context, getenv func(string) string, stdout io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", p, err)
		os.Exit(1)
	}
}

// Configure loads the configuration process p needs and makes its logger
// (Logger), every line tagged with the process's name.
func Configure(getenv func(string) string, stdout io.Writer, p config.Process) (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load(getenv, p)
	if err != nil {
		return nil, nil, err
	}
	return cfg, Logger(stdout, getenv, cfg.LogLevel).With("process", p.String()), nil
}
