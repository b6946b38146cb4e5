// Command kiln-heroku plays Heroku against any Kiln, local or deployed: it
// provisions, changes plans, deprovisions and signs in as Heroku does, runs
// the Partner API conformance checks partners put in CI, serves the Heroku
// simulator for local stacks (docker compose, kiln-dev), and generates and
// validates add-on manifests.
//
//	kiln-heroku provision [--plan test] [--option k=v]...
//	kiln-heroku plan-change ADDON_ID PLAN
//	kiln-heroku deprovision ADDON_ID
//	kiln-heroku sso ADDON_ID [--open]
//	kiln-heroku status [ADDON_ID]
//	kiln-heroku check
//	kiln-heroku driver-check [--secret S] URL
//	kiln-heroku sim [--listen 127.0.0.1:5050]
//	kiln-heroku manifest generate --url https://kiln.example.com
//	kiln-heroku manifest validate FILE
//
// Kiln's credentials and URLs come from flags, a manifest (--manifest),
// the environment, or .dev/env (written by make dev), in that order.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `kiln-heroku plays Heroku against a Kiln.

Commands:
  provision [--plan test] [--option k=v]...   provision an add-on and watch it become provisioned
  plan-change ADDON_ID PLAN                   change an add-on's plan
  deprovision ADDON_ID                        deprovision an add-on
  sso ADDON_ID [--open]                       sign in to an add-on's dashboard as Heroku's dashboard does
  status [ADDON_ID]                           show add-ons as Heroku (the simulator) sees them
  check                                       run the Partner API conformance checks (exit 1 on any failure)
  driver-check [--secret S] URL               check a partner service for the http resource driver (exit 1 on any failure)
  sim [--listen 127.0.0.1:5050]               serve a Heroku simulator
  manifest generate --url https://...         write an add-on manifest for this Kiln
  manifest validate FILE                      check an add-on manifest

Kiln's settings come from flags, --manifest FILE, the environment, then
.dev/env (make dev writes it). Run "kiln-heroku COMMAND -h" for a command's flags.
`

// run is kiln-heroku; it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	c := &cli{ctx: ctx, getenv: getenv, stdout: stdout, stderr: stderr}
	var err error
	switch args[0] {
	case "provision":
		err = c.provision(args[1:])
	case "plan-change":
		err = c.planChange(args[1:])
	case "deprovision":
		err = c.deprovision(args[1:])
	case "sso":
		err = c.sso(args[1:])
	case "status":
		err = c.status(args[1:])
	case "check":
		err = c.check(args[1:])
	case "driver-check":
		err = c.driverCheck(args[1:])
	case "sim":
		err = c.serveSim(args[1:])
	case "manifest":
		err = c.manifest(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "kiln-heroku: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch e := err.(type) {
	case nil:
		return 0
	case usageError:
		fmt.Fprintf(stderr, "kiln-heroku %s: %s\n", args[0], e.msg)
		return 2
	case exitError:
		return e.code // the command already said why
	default:
		fmt.Fprintf(stderr, "kiln-heroku %s: %v\n", args[0], err)
		return 1
	}
}

// cli holds what every command needs.
type cli struct {
	ctx            context.Context
	getenv         func(string) string
	stdout, stderr io.Writer
}

// usageError is a mistake in the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitError ends with a code after the command has explained itself.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }
