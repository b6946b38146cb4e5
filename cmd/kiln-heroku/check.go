package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/kiln-dev/kiln/internal/conformance"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// check runs the conformance checks and prints the table; any failure
// makes the exit code 1, so CI can gate on it.
func (c *cli) check(args []string) error {
	fs, s := c.flags("check", "[--plan test] [--new-plan basic]")
	plan := fs.String("plan", "test", "plan to provision")
	newPlan := fs.String("new-plan", "basic", "plan to change to")
	timeout := fs.Duration("timeout", 60*time.Second, "how long provisioning may take")
	webhooks := fs.Bool("webhooks", true, "check the add-on webhook subscription and receiver (Kiln's HEROKU_WEBHOOKS; its PUBLIC_URL must reach Kiln from the simulator)")
	logStream := fs.Bool("log-stream", true, "send a log_input_url and check the lines Kiln writes to it")
	asyncDeprovision := fs.Bool("async-deprovision", false, "expect Kiln's ASYNC_DEPROVISION=true: DELETE answers 202, then actions/deprovision")
	pos, err := parse(fs, s, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"check takes no arguments"}
	}
	kiln, err := s.kiln()
	if err != nil {
		return err
	}
	salt := s.ssoSalt()
	if salt == "" {
		return errors.New("no SSO salt: pass --sso-salt or --manifest, or set ADDON_SSO_SALT (the SSO checks need it)")
	}
	sim, stop, err := s.sim(c.ctx)
	if err != nil {
		return err
	}
	defer stop()
	var vars []string
	if s.manifest != nil {
		vars = s.manifest.API.ConfigVars
	}
	fmt.Fprintf(c.stderr, "checking Kiln at %s as add-on %q, with the Heroku simulator at %s\n", kiln.URL, kiln.ID, sim.URL)
	report := conformance.Run(c.ctx, conformance.Options{
		Kiln:             kiln,
		Sim:              sim,
		SSOSalt:          salt,
		Prefix:           s.configPrefix(),
		ConfigVars:       vars,
		Plan:             *plan,
		NewPlan:          *newPlan,
		ProvisionTimeout: *timeout,
		Webhooks:         *webhooks,
		LogStream:        *logStream,
		AsyncDeprovision: *asyncDeprovision,
		OnResult:         c.progress,
	})
	return c.verdict(report)
}

// progress prints each check's result as it finishes, so a long run shows
// where it is.
func (c *cli) progress(r conformance.Result) {
	fmt.Fprintf(c.stderr, "  %s  %s\n", r.Status, r.Name)
}

// verdict prints the report's table and makes any failure exit code 1, so
// CI can gate on it.
func (c *cli) verdict(report *conformance.Report) error {
	fmt.Fprintln(c.stderr)
	if err := report.WriteTable(c.stdout); err != nil {
		return err
	}
	if !report.OK() {
		return exitError{1}
	}
	return nil
}

// serveSim serves a Heroku simulator until interrupted: the one docker
// compose runs, or one for a Kiln deployed elsewhere to call.
func (c *cli) serveSim(args []string) error {
	fs, s := c.flags("sim", "[--listen 127.0.0.1:5050]")
	listen := fs.String("listen", "", "address to serve on (default: HEROKU_API_URL's host:port, else 127.0.0.1:5050)")
	quiet := fs.Bool("quiet", false, "do not log each call")
	pos, err := parse(fs, s, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"sim takes no arguments"}
	}
	addr := *listen
	if addr == "" {
		addr = "127.0.0.1:5050"
		if u, err := url.Parse(s.env("HEROKU_API_URL")); err == nil && u.Scheme == "http" && u.Port() != "" {
			addr = u.Host
		}
	}
	secret := first(s.clientSecret, s.env("HEROKU_OAUTH_CLIENT_SECRET"), herokusim.DefaultClientSecret)
	level := slog.LevelDebug // the simulator logs each call at debug
	if *quiet {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(c.stdout, &slog.HandlerOptions{Level: level}))
	core := herokusim.New(herokusim.Options{ClientSecret: secret, Log: log})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{Handler: core, ReadHeaderTimeout: 10 * time.Second}
	log.Info("Heroku simulator listening", "addr", ln.Addr().String(),
		"note", "point Kiln's HEROKU_API_URL and HEROKU_ID_URL here; /_sim has no authentication, keep it off public networks")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-c.ctx.Done():
	}
	core.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	log.Info("stopped")
	return nil
}
