// Command kiln-dev is `make dev`: one command that runs Kiln locally with
// everything it needs. It generates (once) and reuses a development
// environment in .dev/env, makes sure Postgres and Redis are running
// (reusing servers already up, otherwise starting its own from the
// installed binaries with their data under .dev/), creates the database,
// applies migrations with bin/release, and runs bin/web, bin/worker and a
// Heroku simulator, each line of output prefixed with who wrote it. Ctrl-C
// (or SIGTERM) stops everything it started, and only that.
//
//	kiln-dev [--dir .dev] [--bin bin]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-dev/kiln/internal/asheroku"
	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

func main() {
	// Output piped to a reader that dies (make dev | tee log, Ctrl-C) must
	// not kill kiln-dev mid-drain: a write to the broken pipe fails with
	// EPIPE instead, the console stops writing, and the stop goes on.
	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	os.Exit(run(sigs, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// Grace periods: Kiln's processes drain within 25 s (Heroku kills at 30 s);
// servers get a little less patience.
const (
	appGrace     = 30 * time.Second
	serviceGrace = 15 * time.Second
)

// run is kiln-dev; sigs delivers Ctrl-C and SIGTERM. It returns the exit
// code: 0 after a requested stop, 1 when something failed or crashed.
func run(sigs <-chan os.Signal, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kiln-dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".dev", "directory for the generated environment and local servers' data (git-ignored)")
	binDir := fs.String("bin", "bin", "directory holding the built commands (make build)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kiln-dev [--dir .dev] [--bin bin]\n\nRuns Kiln locally: Postgres, Redis, migrations, web, worker and a Heroku simulator.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	con := newConsole(stdout)
	d := &dev{dir: *dir, bin: *binDir, con: con, log: con.writer("kiln-dev"), sigs: sigs}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A signal during start-up cancels it; the stop that follows still
	// stops whatever had started.
	startupDone, watcherGone := make(chan struct{}), make(chan struct{})
	interrupted := false
	go func() {
		defer close(watcherGone)
		select {
		case sig := <-sigs:
			d.log.Printf("%s during start-up: stopping", sig)
			interrupted = true
			cancel()
		case <-startupDone:
		}
	}()
	err := d.start(ctx, getenv)
	close(startupDone)
	<-watcherGone
	switch {
	case interrupted:
		d.stop()
		return 0
	case err != nil:
		d.log.Printf("error: %v", err)
		d.stop()
		return 1
	}
	code := d.wait()
	d.stop()
	return code
}

// dev is one run of the local stack.
type dev struct {
	dir, bin string
	con      *console
	log      *prefixWriter
	sigs     <-chan os.Signal
	env      *devEnv
	sup      *supervisor
	services []*child // servers kiln-dev started: stopped last
	apps     []*child // web and worker: stopped first
	sim      *http.Server
	simCore  *herokusim.Sim
}

// start brings the stack up, in dependency order.
func (d *dev) start(ctx context.Context, getenv func(string) string) error {
	for _, name := range []string{"release", "web", "worker"} {
		if !executable(filepath.Join(d.bin, name)) {
			return fmt.Errorf("%s is missing: build first (make build, or go build -o %s/ ./cmd/...)", filepath.Join(d.bin, name), d.bin)
		}
	}
	env, err := loadEnv(filepath.Join(d.dir, "env"), getenv)
	if err != nil {
		return err
	}
	d.env = env
	switch {
	case env.Created:
		d.log.Printf("generated %s with fresh secrets (reused on later runs)", env.Path)
	case len(env.Added) > 0:
		d.log.Printf("added %s to %s", strings.Join(env.Added, ", "), env.Path)
	default:
		d.log.Printf("using %s", env.Path)
	}
	if len(env.Replaced) > 0 {
		d.log.Printf("replaced %s in %s with a fresh %d-character one (Kiln refuses admin passwords under %d characters)",
			strings.Join(env.Replaced, ", "), env.Path, 2*config.MinAdminPasswordLen, config.MinAdminPasswordLen)
	}
	if len(env.Overridden) > 0 {
		d.log.Printf("from your shell, overriding %s: %s", env.Path, strings.Join(env.Overridden, ", "))
	}
	for _, p := range []config.Process{config.Web, config.Worker} {
		if _, err := config.Load(env.Get, p); err != nil {
			return fmt.Errorf("%s does not configure Kiln: %w", env.Path, err)
		}
	}
	d.sup = newSupervisor(d.con, env.Environ())

	pg, err := ensurePostgres(ctx, d.sup, d.dir, env.Get("DATABASE_URL"))
	d.addService(pg)
	if err != nil {
		return err
	}
	rd, err := ensureRedis(ctx, d.sup, d.dir, env.Get("REDIS_URL"))
	d.addService(rd)
	if err != nil {
		return err
	}
	created, err := ensureDatabase(ctx, env.Get("DATABASE_URL"))
	if err != nil {
		return err
	}
	if created {
		d.log.Printf("created database %s", strings.TrimPrefix(mustURL(env.Get("DATABASE_URL")).Path, "/"))
	}
	if err := d.release(ctx); err != nil {
		return err
	}
	if err := d.startSim(ctx); err != nil {
		return err
	}
	port := env.Get("PORT")
	if !portFree(port) {
		return fmt.Errorf("port %s is taken, so web cannot listen; stop what uses it or run PORT=5001 make dev", port)
	}
	for _, name := range []string{"web", "worker"} {
		c, err := d.sup.start(name, exec.Command(filepath.Join(d.bin, name)), syscall.SIGTERM, nil)
		if err != nil {
			return err
		}
		d.apps = append(d.apps, c)
	}
	if err := d.waitHealthy(ctx, "http://127.0.0.1:"+port+"/healthz"); err != nil {
		return err
	}
	d.banner()
	return nil
}

func (d *dev) addService(c *child) {
	if c != nil {
		d.services = append(d.services, c)
	}
}

// release runs bin/release (migrations) to completion.
func (d *dev) release(ctx context.Context) error {
	c, err := d.sup.start("release", exec.CommandContext(ctx, filepath.Join(d.bin, "release")), syscall.SIGTERM, nil)
	if err != nil {
		return err
	}
	c.expect() // release is meant to exit
	<-c.done
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if c.err != nil {
		return fmt.Errorf("release (migrations) failed: %w", c.err)
	}
	return nil
}

// startSim serves a Heroku simulator where HEROKU_API_URL and HEROKU_ID_URL
// point, when that is this machine and no simulator already answers there.
func (d *dev) startSim(ctx context.Context) error {
	var addrs []string
	for _, key := range []string{"HEROKU_API_URL", "HEROKU_ID_URL"} {
		raw := d.env.Get(key)
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "http" {
			d.log.Printf("%s is %s: not a local simulator, so none is started", key, raw)
			continue
		}
		e, err := endpointOf(raw, 80)
		if err != nil || !e.Local() {
			d.log.Printf("%s is %s: not a local simulator, so none is started", key, raw)
			continue
		}
		if asheroku.NewSim(raw).Ping(ctx) == nil {
			d.log.Printf("using the Heroku simulator already running at %s", raw)
			continue
		}
		if !contains(addrs, e.String()) {
			addrs = append(addrs, e.String())
		}
	}
	if len(addrs) == 0 {
		return nil
	}
	out := d.con.writer("sim")
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d.simCore = herokusim.New(herokusim.Options{ClientSecret: d.env.Get("HEROKU_OAUTH_CLIENT_SECRET"), Log: log})
	switch n, err := loadSim(d.simCore, d.simFile()); {
	case err != nil:
		out.Printf("not restoring the simulator's add-ons: %v", err)
	case n > 0:
		out.Printf("restored %d add-on(s), with their tokens, from %s", n, d.simFile())
	}
	d.sim = &http.Server{Handler: d.simCore, ReadHeaderTimeout: 10 * time.Second}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("the Heroku simulator cannot listen on %s (HEROKU_API_URL): %w", a, err)
		}
		out.Printf("Heroku simulator listening on http://%s", a)
		go func() {
			if err := d.sim.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				out.Printf("error: %v", err)
			}
		}()
	}
	return nil
}

// waitHealthy waits for web's /healthz, giving up when a child dies.
func (d *dev) waitHealthy(ctx context.Context, url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case c := <-d.sup.exited:
			if !c.expected() {
				return fmt.Errorf("%s exited during start-up: %v", c.name, exitText(c.err))
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("web did not answer %s within a minute", url)
		}
	}
}

// banner tells the developer where everything is.
func (d *dev) banner() {
	port := d.env.Get("PORT")
	kh := filepath.Join(d.bin, "kiln-heroku")
	flags := ""
	if d.dir != ".dev" {
		flags = " --env-file " + d.env.Path
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Kiln is running.\n")
	fmt.Fprintf(&b, "  Kiln                http://localhost:%s\n", port)
	fmt.Fprintf(&b, "  Queues (asynqmon)   http://localhost:%s/admin/queues   user admin, ADMIN_PASSWORD in %s\n", port, d.env.Path)
	fmt.Fprintf(&b, "  Heroku simulator    %s   (calls: %s/_sim/calls)\n", d.env.Get("HEROKU_API_URL"), d.env.Get("HEROKU_API_URL"))
	fmt.Fprintf(&b, "Play Heroku against it:\n")
	fmt.Fprintf(&b, "  %s provision%s --plan test\n", kh, flags)
	fmt.Fprintf(&b, "  %s status%s [ADDON_ID]\n", kh, flags)
	fmt.Fprintf(&b, "  %s sso%s ADDON_ID --open\n", kh, flags)
	fmt.Fprintf(&b, "  %s plan-change%s ADDON_ID basic\n", kh, flags)
	fmt.Fprintf(&b, "  %s deprovision%s ADDON_ID\n", kh, flags)
	fmt.Fprintf(&b, "  %s check%s\n", kh, flags)
	fmt.Fprintf(&b, "Ctrl-C stops everything kiln-dev started.")
	d.log.Printf("%s", b.String())
}

// wait runs until a signal or until a child dies on its own.
func (d *dev) wait() int {
	for {
		select {
		case sig := <-d.sigs:
			d.log.Printf("%s: stopping (again to kill at once)", sig)
			return 0
		case c := <-d.sup.exited:
			if c.expected() {
				continue
			}
			d.log.Printf("%s exited unexpectedly (%v): stopping everything", c.name, exitText(c.err))
			return 1
		}
	}
}

// stop stops Kiln's processes, then the simulator, then the servers
// kiln-dev started, in that order. A second signal kills what is left.
func (d *dev) stop() {
	done := make(chan struct{})
	go func() {
		select {
		case <-d.sigs:
			d.log.Printf("second signal: killing everything")
			if d.sup != nil {
				d.sup.killAll()
			}
		case <-done:
		}
	}()
	defer close(done)
	stopAll(appGrace, d.apps...)
	if d.sim != nil {
		// Heroku remembers its add-ons; so does the simulator, across runs.
		if err := saveSim(d.simCore, d.simFile()); err != nil {
			d.log.Printf("could not save the simulator's add-ons: %v", err)
		}
		d.simCore.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = d.sim.Shutdown(ctx)
		cancel()
	}
	// Reverse start order: Redis, then Postgres.
	for i := len(d.services) - 1; i >= 0; i-- {
		d.services[i].stop(serviceGrace)
	}
	if d.sup != nil {
		d.log.Printf("stopped")
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func portFree(port string) bool {
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func mustURL(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		return &url.URL{}
	}
	return u
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
