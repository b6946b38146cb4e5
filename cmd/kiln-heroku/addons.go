package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/asheroku"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// flags makes a command's flag set with the shared settings registered.
func (c *cli) flags(name, args string) (*flag.FlagSet, *settings) {
	fs := flag.NewFlagSet("kiln-heroku "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	s := &settings{getenv: c.getenv, stderr: c.stderr}
	s.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: kiln-heroku %s %s\n\nFlags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs, s
}

// parse parses flags wherever they appear among the positional arguments
// ("plan-change ID basic --kiln URL" works) and loads the settings.
func parse(fs *flag.FlagSet, s *settings, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitError{0}
			}
			return nil, exitError{2}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if s != nil {
		if err := s.load(fs); err != nil {
			return nil, err
		}
	}
	return pos, nil
}

// parseWant is parse for a command that takes exactly the positional
// arguments names ("ADDON_ID", "PLAN"), refusing any other count with
// their names.
func parseWant(fs *flag.FlagSet, s *settings, args []string, names ...string) ([]string, error) {
	pos, err := parse(fs, s, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != len(names) {
		return nil, usageError{"want " + strings.Join(names, " ")}
	}
	return pos, nil
}

// optionsFlag collects repeated --option k=v.
type optionsFlag map[string]string

func (o optionsFlag) String() string { return fmt.Sprint(map[string]string(o)) }

func (o optionsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	o[k] = val
	return nil
}

// provision provisions an add-on as Heroku does: the add-on is created in
// the simulator (which issues its OAuth grant), Kiln gets the provision
// call, and the command watches the simulator until Kiln marks it
// provisioned.
func (c *cli) provision(args []string) error {
	fs, s := c.flags("provision", "[--plan test] [--option k=v]...")
	plan := fs.String("plan", "test", "plan slug")
	id := fs.String("uuid", "", "the add-on's uuid (default: a fresh one)")
	opts := optionsFlag{}
	fs.Var(opts, "option", "a provisioning option key=value, as `heroku addons:create ... -- --key value` sends (repeatable)")
	wait := fs.Bool("wait", true, "watch until Kiln marks the add-on provisioned")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for provisioned")
	reveal := fs.Bool("reveal", false, "show config var values in full (credentials included)")
	pos, err := parse(fs, s, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"provision takes no arguments (did you mean --plan?)"}
	}
	kiln, err := s.kiln()
	if err != nil {
		return err
	}
	sim, stop, err := s.sim(c.ctx)
	if err != nil {
		return err
	}
	defer stop()
	if *id == "" {
		*id = uuid.NewString()
	}
	reg, err := sim.RegisterOnPlan(c.ctx, *id, *plan)
	if err != nil {
		return err
	}
	a, err := kiln.Provision(c.ctx, asheroku.NewProvisionRequest(*id, *plan, &reg.Grant, opts))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "POST %s%s → %s\n", kiln.URL, asheroku.ResourcesPath, a)
	if a.Status/100 != 2 {
		if m := a.Message(); m != "" {
			fmt.Fprintf(c.stderr, "Kiln refused: %s\n", m)
		}
		return exitError{1}
	}
	fmt.Fprintf(c.stdout, "%s\n", *id)
	if obj, err := a.Object(); err == nil && obj["config"] != nil {
		fmt.Fprintln(c.stderr, "provisioned synchronously; config:")
		printConfig(c.stderr, toStrings(obj["config"]), *reveal)
		return nil
	}
	if !*wait {
		fmt.Fprintf(c.stderr, "not waiting; follow it with: kiln-heroku status %s\n", *id)
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, *timeout)
	defer cancel()
	view := newProgressView(c.stderr, *id)
	st, err := sim.WaitProvisioned(ctx, *id, 200*time.Millisecond, view.update)
	view.finish()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(c.stderr, "not provisioned after %s (state %q). Check the worker's log; kiln-heroku status %s shows what Heroku saw.\n", *timeout, st.State, *id)
			return exitError{1}
		}
		return err
	}
	fmt.Fprintf(c.stderr, "provisioned; config vars as Heroku received them:\n")
	printConfig(c.stderr, st.Config, *reveal)
	fmt.Fprintf(c.stderr, "next:\n  kiln-heroku sso %s --open\n  kiln-heroku plan-change %s basic\n  kiln-heroku deprovision %s\n", *id, *id, *id)
	return nil
}

// planChange sends Heroku's plan change call.
func (c *cli) planChange(args []string) error {
	fs, s := c.flags("plan-change", "ADDON_ID PLAN")
	pos, err := parseWant(fs, s, args, "ADDON_ID", "PLAN")
	if err != nil {
		return err
	}
	kiln, err := s.kiln()
	if err != nil {
		return err
	}
	a, err := kiln.ChangePlan(c.ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	if err := c.report(a); err != nil {
		return err
	}
	// Heroku records the new plan when the provider accepts the change.
	c.recordInSim(s, pos[0], pos[1], "")
	return nil
}

// deprovision sends Heroku's deprovision call.
func (c *cli) deprovision(args []string) error {
	fs, s := c.flags("deprovision", "ADDON_ID")
	pos, err := parseWant(fs, s, args, "ADDON_ID")
	if err != nil {
		return err
	}
	kiln, err := s.kiln()
	if err != nil {
		return err
	}
	a, err := kiln.Deprovision(c.ctx, pos[0])
	if err != nil {
		return err
	}
	if err := c.report(a); err != nil {
		return err
	}
	// Heroku considers the add-on gone once the provider answers 200 or
	// 204; after a 202 it waits for the provider's actions/deprovision.
	if a.Status != http.StatusAccepted {
		c.recordInSim(s, pos[0], "", "deprovisioned")
	}
	return nil
}

// report prints a Partner API answer and fails on a non-2xx one.
func (c *cli) report(a *asheroku.Answer) error {
	fmt.Fprintf(c.stdout, "%s %s → %s\n", a.Method, a.URL, a)
	if a.Status/100 != 2 {
		if m := a.Message(); m != "" {
			fmt.Fprintf(c.stderr, "Kiln refused: %s\n", m)
		}
		return exitError{1}
	}
	return nil
}

// sso writes a page that signs the browser in to the add-on's dashboard as
// Heroku's dashboard does (SSO is a form POST, so a link cannot do it).
func (c *cli) sso(args []string) error {
	fs, s := c.flags("sso", "ADDON_ID [--open]")
	out := fs.String("out", "", "write the page here (default: a new file in the temporary directory)")
	open := fs.Bool("open", false, "open the page in the browser")
	email := fs.String("email", "developer@example.com", "the signed-in user's email")
	userID := fs.String("user-id", "", "the signed-in user's id (default: a fixed example uuid)")
	app := fs.String("app", "kiln-heroku-app", "the app the add-on is attached to")
	printForm := fs.Bool("print", false, "also print the form fields")
	pos, err := parseWant(fs, s, args, "ADDON_ID")
	if err != nil {
		return err
	}
	kiln, err := s.kiln()
	if err != nil {
		return err
	}
	salt := s.ssoSalt()
	if salt == "" {
		return errors.New("no SSO salt: pass --sso-salt or --manifest, or set ADDON_SSO_SALT")
	}
	sso := asheroku.NewSSO(pos[0], salt)
	sso.Email, sso.App, sso.ContextApp = *email, *app, *app
	if *userID != "" {
		sso.UserID = *userID
	}
	form := sso.Form()
	page, err := asheroku.Page(kiln.URL+asheroku.SSOPath, form)
	if err != nil {
		return err
	}
	path := *out
	if path == "" {
		f, err := os.CreateTemp("", "kiln-sso-*.html")
		if err != nil {
			return fmt.Errorf("write the SSO page: %w", err)
		}
		path = f.Name()
		f.Close()
	}
	if err := os.WriteFile(path, page, 0o600); err != nil {
		return fmt.Errorf("write the SSO page: %w", err)
	}
	abs, _ := filepath.Abs(path)
	u := (&url.URL{Scheme: "file", Path: abs}).String()
	fmt.Fprintln(c.stdout, u)
	fmt.Fprintf(c.stderr, "open it within 5 minutes (the timestamp expires); it posts the SSO form to %s%s\n", kiln.URL, asheroku.SSOPath)
	if *printForm {
		for _, k := range sortedKeys(map[string][]string(form)) {
			fmt.Fprintf(c.stdout, "%s=%s\n", k, form.Get(k))
		}
	}
	if *open {
		if err := c.openBrowser(u); err != nil {
			fmt.Fprintf(c.stderr, "could not open a browser: %v\nopen this file in a browser yourself (within 5 minutes):\n  %s\n", err, abs)
			return exitError{1}
		}
	}
	return nil
}

// openers are the commands tried, in order, to open a page in the
// developer's browser.
func openers() []string {
	if runtime.GOOS == "darwin" {
		return []string{"open"}
	}
	return []string{"xdg-open", "sensible-browser", "x-www-browser"}
}

// openBrowser opens u with the first opener that works, waiting for it
// (openers return once the browser has the page) so a failure, such as
// xdg-open finding no browser, is reported instead of lost.
func (c *cli) openBrowser(u string) error {
	var failures []string
	for _, name := range openers() {
		path, err := exec.LookPath(name)
		if err != nil {
			failures = append(failures, name+": not installed")
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
		out, err := exec.CommandContext(ctx, path, u).CombinedOutput()
		cancel()
		if err == nil {
			return nil
		}
		msg := strings.TrimSpace(string(out))
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		failures = append(failures, fmt.Sprintf("%s: %v %s", name, err, msg))
	}
	return errors.New(strings.Join(failures, "; "))
}

// recordInSim tells the simulator what Heroku itself records after a call
// the provider accepted; without a simulator there is nothing to tell.
func (c *cli) recordInSim(s *settings, id, plan, state string) {
	sim, stop, err := s.sim(c.ctx)
	if err != nil {
		return
	}
	defer stop()
	if _, err := sim.Record(c.ctx, id, plan, state); err != nil && !errors.Is(err, asheroku.ErrUnknownAddon) {
		fmt.Fprintf(c.stderr, "note: the simulator did not record it: %v\n", err)
	}
}

// progressView shows provisioning as it happens: one line rewritten in
// place on a terminal, one line per step change elsewhere (CI logs).
type progressView struct {
	w     io.Writer
	id    string
	tty   bool
	last  string
	frame int
	shown bool
}

func newProgressView(w io.Writer, id string) *progressView {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressView{w: w, id: id, tty: tty}
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func (v *progressView) update(p asheroku.Progress) {
	steps := strings.Join([]string{
		step(p, herokusim.KindGrant, "grant exchanged"),
		step(p, herokusim.KindConfig, "config pushed"),
		step(p, herokusim.KindProvision, "marked provisioned"),
	}, "  ")
	if v.tty {
		v.frame++
		fmt.Fprintf(v.w, "\r\x1b[K%s %s  %5.1fs  %s", spinner[v.frame%len(spinner)], p.State, p.Elapsed.Seconds(), steps)
		v.shown = true
		return
	}
	if steps != v.last {
		fmt.Fprintf(v.w, "%6.1fs  %s  %s\n", p.Elapsed.Seconds(), p.State, steps)
		v.last = steps
	}
}

func (v *progressView) finish() {
	if v.tty && v.shown {
		fmt.Fprintln(v.w)
	}
}

// step renders one provisioning step: done, failing (with the status
// Heroku answered) or pending.
func step(p asheroku.Progress, kind, label string) string {
	done, failed := p.Step(kind)
	switch {
	case done:
		return "✓ " + label
	case failed != 0:
		return fmt.Sprintf("✗ %s (Heroku answered %d; Kiln retries)", label, failed)
	default:
		return "· " + label
	}
}

// printConfig lists config vars, hiding credentials unless reveal.
func printConfig(w io.Writer, cfg map[string]string, reveal bool) {
	if len(cfg) == 0 {
		fmt.Fprintln(w, "  (none)")
		return
	}
	for _, k := range sortedKeys(cfg) {
		v := cfg[k]
		if !reveal {
			v = hide(k, v)
		}
		fmt.Fprintf(w, "  %s=%s\n", k, v)
	}
}

// hide masks the secret parts of a config var: a URL's password, or the
// whole value of a var whose name says it is a secret.
func hide(name, v string) string {
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.User != nil {
		if _, has := u.User.Password(); has {
			return u.Redacted() + "   (--reveal shows the password)"
		}
	}
	for _, s := range []string{"KEY", "SECRET", "TOKEN", "PASSWORD"} {
		if strings.Contains(name, s) {
			return "xxxxx   (--reveal shows it)"
		}
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func toStrings(v any) map[string]string {
	out := map[string]string{}
	if m, ok := v.(map[string]any); ok {
		for k, val := range m {
			out[k] = fmt.Sprint(val)
		}
	}
	return out
}
