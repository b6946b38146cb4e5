// Package chaos is Kiln's chaos run: several real web and worker processes
// over one Postgres and one Redis (a plain server, then a Sentinel group),
// the Heroku simulator answering late, with 429s and 5xx, and a stream of
// provisions (each sent to two webs at once), plan changes, rotations and
// deprovisions, while processes are SIGKILLed and restarted, Redis fails
// over or goes silent and Postgres drops every connection. At the end it
// checks, for every add-on, what Heroku would see, and reports the faults
// injected and the invariants checked.
//
// cmd/kiln-chaos runs it (`make chaos`); the package's tests run a short
// form inside `make test`.
package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Round names the Redis a round runs over.
type Round string

// The rounds of a full run.
const (
	RoundRedis    Round = "redis"    // one redis-server behind a fault proxy (as Heroku Redis)
	RoundSentinel Round = "sentinel" // a primary, a replica and three Sentinels
)

// Fault names, as the report's table prints them and Options.Faults
// selects them.
const (
	FaultKillWeb       = "web SIGKILL + restart"
	FaultKillWorker    = "worker SIGKILL + restart"
	FaultPGReset       = "postgres: every connection reset (proxy)"
	FaultPGTerminate   = "postgres: pg_terminate_backend of Kiln's backends"
	FaultRedisBlack    = "redis: blackhole"
	FaultRedisReset    = "redis: every connection reset (proxy)"
	FaultFailover      = "redis: Sentinel failover (primary SIGKILL)"
	FaultHerokuLatency = "heroku: 100-300 ms latency on every call"
	FaultHeroku429     = "heroku: burst of 429 (Retry-After)"
	FaultHeroku5xx     = "heroku: burst of 500/503"
)

// AllFaults is every fault, in the table's order.
var AllFaults = []string{FaultKillWeb, FaultKillWorker, FaultPGReset, FaultPGTerminate, FaultRedisBlack,
	FaultRedisReset, FaultFailover, FaultHerokuLatency, FaultHeroku429, FaultHeroku5xx}

// Options shape a run. Zero fields take the short form's values.
type Options struct {
	// Seed makes the run's choices (which add-on, which process, when)
	// reproducible; 0 picks one, which the report prints.
	Seed int64
	// Rounds to run, each on a fresh deployment; default both.
	Rounds []Round
	// Duration is how long each round sends work and injects faults.
	Duration time.Duration
	// Settle bounds the wait, after the faults stop, for every add-on to
	// reach the state Heroku asked for.
	Settle time.Duration
	// Webs and Workers are the process counts (at least 2 and 3).
	Webs, Workers int
	// Rate is Heroku calls started a second (provisions and the rest).
	Rate float64
	// ProvisionsOnly makes every Heroku call a provision (no plan changes,
	// rotations or deprovisions), so every accepted add-on must end
	// provisioned.
	ProvisionsOnly bool
	// BlackholeFor is how long Redis stays silent.
	BlackholeFor time.Duration
	// Faults selects faults by name; nil means AllFaults.
	Faults []string
	// Env is extra environment for Kiln's processes, e.g. a setting that
	// breaks a guarantee on purpose.
	Env []string
	// Bin holds the release, web and worker binaries; built when empty.
	Bin string
	// Dir receives the processes' logs; a temporary directory when empty
	// (removed after a passing run).
	Dir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

func (o Options) has(fault string) bool {
	if o.Faults == nil {
		return true
	}
	for _, f := range o.Faults {
		if f == fault {
			return true
		}
	}
	return false
}

func (o Options) sentinelDownAfter() time.Duration { return 1500 * time.Millisecond }

func (o *Options) defaults() {
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano() % 1_000_000
	}
	if len(o.Rounds) == 0 {
		o.Rounds = []Round{RoundRedis, RoundSentinel}
	}
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 100 * time.Second
	}
	o.Webs = max(o.Webs, 2)
	o.Workers = max(o.Workers, 3)
	if o.Rate <= 0 {
		o.Rate = 3
	}
	if o.BlackholeFor <= 0 {
		o.BlackholeFor = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Run runs every round and returns the report; err is for a run that could
// not be carried out (no Postgres, a binary that does not build), never
// for a violated invariant, which the report names.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	start := time.Now()
	keep := o.Dir != ""
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "kiln-chaos")
		if err != nil {
			return nil, err
		}
		o.Dir = d
	}
	if o.Bin == "" {
		o.Bin = filepath.Join(o.Dir, "bin")
		if err := build(ctx, o.Bin); err != nil {
			return nil, err
		}
	}
	rep := newReport(o)
	for i, round := range o.Rounds {
		rng := rand.New(rand.NewPCG(uint64(o.Seed), uint64(i)))
		dir := filepath.Join(o.Dir, string(round))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := runRound(ctx, o, round, rng, dir, rep); err != nil {
			return rep, fmt.Errorf("round %s: %w (logs in %s)", round, err, dir)
		}
	}
	rep.Elapsed = time.Since(start)
	if !keep && rep.OK() {
		os.RemoveAll(o.Dir)
	} else {
		rep.LogDir = o.Dir
	}
	return rep, nil
}

// build compiles the commands the run starts, from the module Kiln is in.
func build(ctx context.Context, dir string) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return fmt.Errorf("chaos: cannot find Kiln's module to build it (run inside the repository or pass the binaries): %v", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/release", "./cmd/web", "./cmd/worker")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chaos: build: %v\n%s", err, b)
	}
	return nil
}

func runRound(ctx context.Context, o Options, round Round, rng *rand.Rand, dir string, rep *Report) error {
	fmt.Fprintf(o.Log, "chaos: round %s: starting %d web and %d worker processes\n", round, o.Webs, o.Workers)
	s, err := startStack(ctx, o, round, dir)
	if err != nil {
		return err
	}
	defer s.close()
	if o.has(FaultHerokuLatency) {
		rep.fault(round, FaultHerokuLatency, "every call, both ways")
	}

	w := newWorkload(s, rng, o.Rate)
	w.provisionsOnly = o.ProvisionsOnly
	runCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	faults := schedule(o, round, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))
	done := make(chan struct{})
	go func() {
		defer close(done)
		inject(runCtx, s, faults, rep, o.Log)
	}()
	fmt.Fprintf(o.Log, "chaos: round %s: %s of work and %d faults\n", round, o.Duration, len(faults))
	w.run(runCtx)
	<-done
	w.wait()

	// Heal everything, bring every process back, and let Kiln finish.
	s.sim.ClearFaults()
	if err := s.ensureRunning(); err != nil {
		return err
	}
	if s.group != nil {
		if err := s.group.Rejoin(); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.Log, "chaos: round %s: faults over; settling (at most %s)\n", round, o.Settle)
	res := w.settle(ctx, o.Settle)
	if ctx.Err() != nil {
		return ctx.Err() // interrupted: the checks are incomplete
	}
	rep.add(round, w, res)
	if !res.ok() {
		rep.Tails = append(rep.Tails, fmt.Sprintf("round %s:\n%s", round, s.tail(15)))
	}
	fmt.Fprintf(o.Log, "chaos: round %s: checked %d add-ons in %s; %d violations\n", round, len(w.addons), res.took.Round(time.Second), res.count())
	return nil
}
