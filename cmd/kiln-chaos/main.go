// Command kiln-chaos runs Kiln's chaos run (`make chaos`): many web and
// worker processes over one Postgres and one Redis, plain and Sentinel,
// while processes are killed, Redis fails over or goes silent, Postgres
// drops its connections and Heroku answers late, with 429s and 5xx. It
// prints the faults injected and the invariants checked, and exits 1 naming
// every violated invariant.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-dev/kiln/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kiln-chaos:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiln-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Int64("seed", 0, "seed for every random choice (0: pick one; the report prints it)")
	duration := fs.Duration("duration", 100*time.Second, "how long each round sends work and injects faults")
	settle := fs.Duration("settle", 120*time.Second, "longest wait, after the faults, for Kiln to finish")
	webs := fs.Int("webs", 2, "web processes (at least 2)")
	workers := fs.Int("workers", 3, "worker processes (at least 3)")
	rate := fs.Float64("rate", 5, "Heroku calls started a second")
	rounds := fs.String("rounds", "redis,sentinel", "rounds to run: redis (plain, behind a fault proxy), sentinel")
	bin := fs.String("bin", "", "directory with the release, web and worker binaries (default: build them)")
	dir := fs.String("dir", "", "keep the processes' logs here (default: a temporary directory, kept only on failure)")
	short := fs.Bool("short", false, "the short form run inside make test")
	measure := fs.Int("measure-redis", 0, "instead of a chaos run: count the Redis commands per provision over this many provisions (docs/deploy.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := chaos.Options{
		Seed: *seed, Duration: *duration, Settle: *settle, Webs: *webs, Workers: *workers, Rate: *rate,
		Bin: *bin, Dir: *dir, Log: stderr,
	}
	if *short {
		o.Duration, o.Settle, o.Rate = 20*time.Second, 100*time.Second, 3
	}
	if *measure > 0 {
		return chaos.MeasureRedis(ctx, o, *measure, 20*time.Second, stdout)
	}
	for _, r := range strings.Split(*rounds, ",") {
		switch chaos.Round(strings.TrimSpace(r)) {
		case chaos.RoundRedis, chaos.RoundSentinel:
			o.Rounds = append(o.Rounds, chaos.Round(strings.TrimSpace(r)))
		default:
			return fmt.Errorf("-rounds: unknown round %q (want redis, sentinel)", r)
		}
	}
	rep, err := chaos.Run(ctx, o)
	if rep != nil {
		fmt.Fprintln(stdout)
		rep.Write(stdout)
	}
	if err != nil {
		return err
	}
	if v := rep.Violated(); len(v) > 0 {
		for _, t := range rep.Tails {
			fmt.Fprintln(stderr, t)
		}
		return fmt.Errorf("invariants violated: %s (seed %d reproduces the run's choices)", strings.Join(v, ", "), rep.Seed)
	}
	if !rep.OK() {
		return fmt.Errorf("some faults could not be injected (see the table)")
	}
	return nil
}
