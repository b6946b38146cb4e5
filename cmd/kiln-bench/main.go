// Command kiln-bench measures how fast Kiln accepts and finishes provisions,
// against the limits of its own stack on the same machine. `make bench` runs
// it from the repository root after building bin/web and bin/worker.
//
// It starts a private Kiln deployment: a fresh Postgres database
// (kiln_bench_<random>, dropped at the end), a private redis-server on a free
// port, the Heroku simulator (internal/herokusim, no rate limit) on a
// loopback port inside this process, and the real bin/web and bin/worker as
// child processes. Then it measures, in order:
//
//   - baseline: a minimal Echo handler (`kiln-bench baseline`, a child
//     process) doing one Postgres insert and one asynq enqueue, against the
//     same Postgres and Redis: the ceiling of Kiln's stack on this machine;
//   - accept: Heroku's provision call against bin/web at 64 concurrent
//     callers (the worker stopped, so the figure is the web process's own),
//     alternating rounds with the baseline; the better round of each counts;
//   - end to end: N provisions (account driver) from the request to the
//     simulator's actions/provision, with the worker running;
//   - grant freshness: with a backlog of slow resource jobs queued
//     (RESOURCE_DRIVER_DELAY), how long a new provision waits for its OAuth
//     grant exchange;
//   - growth: accept latency with 10,000 and 200,000 add-ons in the table
//     (rows inserted directly, not through the API);
//   - latency: the simulator answers every call after 150 ms (a real
//     Heroku's latency) and web and worker run with GOMAXPROCS=8: one
//     worker's add-ons/s end to end, grant exchanges/s in the burst, and
//     the peak Redis and Postgres connections of web and worker;
//   - peak RSS (VmHWM) of web and worker.
//
// It prints a table and writes it as JSON, Markdown and an SVG latency
// histogram into bench/results/ (git-ignored). Figures are reported as
// ratios against the baseline of the same run; benchmarks report, tests do
// not time: `-quick` runs every phase with a few hundred requests so a test
// can prove the tool works.
//
// Usage:
//
//	kiln-bench [-quick] [-bin bin] [-out bench/results] [-profile] [-only accept,e2e,backlog,growth,latency] [-env KEY=VALUE]...
//	kiln-bench baseline   (internal: the baseline server; PORT, DATABASE_URL, REDIS_URL)
//
// The Postgres server is KILN_BENCH_DATABASE_URL, else KILN_TEST_DATABASE_URL,
// else postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; the
// benchmark database is created on it and dropped afterwards.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-dev/kiln/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		err = runBaseline(ctx, os.Getenv)
	} else {
		err = run(ctx, os.Args[1:], os.Stdout)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln-bench:", err)
		os.Exit(1)
	}
}

// sizes is how much work each phase does.
type sizes struct {
	Callers     int           `json:"callers"`            // concurrent callers, like Heroku's provision fan-in
	Warmup      int           `json:"warmup"`             // requests before measuring, discarded
	Accept      int           `json:"accept"`             // requests per accept (and baseline) round
	Rounds      int           `json:"rounds"`             // alternating baseline/accept rounds
	EndToEnd    int           `json:"end_to_end"`         // add-ons provisioned end to end
	Backlog     int           `json:"backlog"`            // slow resource jobs queued before probing grants
	Probes      int           `json:"probes"`             // provisions whose grant freshness is measured
	ProbeEvery  time.Duration `json:"probe_every_ns"`     // gap between probes
	Delay       time.Duration `json:"driver_delay_ns"`    // RESOURCE_DRIVER_DELAY during the backlog phase
	GrowthSmall int           `json:"growth_small"`       // add-ons in the table for the first growth run
	GrowthLarge int           `json:"growth_large"`       // ... and for the second
	GrowthReqs  int           `json:"growth_requests"`    // requests per growth run
	WaitLimit   time.Duration `json:"wait_limit_ns"`      // how long to wait for asynchronous work
	ProfileSecs int           `json:"profile_secs"`       // CPU profile length with -profile
	Concurrency int           `json:"worker_concurrency"` // WORKER_CONCURRENCY
	Latency     int           `json:"latency_addons"`     // add-ons provisioned with 150 ms Heroku latency
	Steady      int           `json:"steady_addons"`      // add-ons sent at a steady pace
	SteadyRate  float64       `json:"steady_rate"`        // their pace, per second
}

var full = sizes{
	Callers: 64, Warmup: 2000, Accept: 15000, Rounds: 4,
	EndToEnd: 10000,
	Backlog:  20000, Probes: 200, ProbeEvery: 50 * time.Millisecond, Delay: time.Second,
	GrowthSmall: 10000, GrowthLarge: 200000, GrowthReqs: 20000,
	WaitLimit: 4 * time.Minute, ProfileSecs: 5, Concurrency: config.DefaultConcurrency,
	Latency: 6000,
	Steady:  1500, SteadyRate: 50,
}

var quick = sizes{
	Callers: 64, Warmup: 100, Accept: 400, Rounds: 1,
	EndToEnd: 300,
	Backlog:  500, Probes: 20, ProbeEvery: 20 * time.Millisecond, Delay: time.Second,
	GrowthSmall: 1000, GrowthLarge: 5000, GrowthReqs: 300,
	WaitLimit: time.Minute, ProfileSecs: 1, Concurrency: config.DefaultConcurrency,
	Latency: 200,
	Steady:  100, SteadyRate: 25,
}

// options are the command line.
type options struct {
	quick    bool
	bin      string
	out      string
	profile  bool
	keepLogs bool
	phases   map[string]bool
	env      []string // extra environment for web and worker
}

// envFlags collects repeated -env KEY=VALUE flags.
type envFlags []string

func (e *envFlags) String() string { return strings.Join(*e, " ") }
func (e *envFlags) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

var allPhases = []string{"accept", "e2e", "steady", "backlog", "growth", "latency"}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("kiln-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var only string
	fs.BoolVar(&o.quick, "quick", false, "tiny sizes: proves the tool works (a few hundred requests), measures nothing")
	fs.StringVar(&o.bin, "bin", "bin", "directory holding the built web and worker commands")
	fs.StringVar(&o.out, "out", "bench/results", "directory for the JSON, Markdown and SVG results")
	fs.BoolVar(&o.profile, "profile", false, "also save CPU profiles of web (accept) and worker (end to end) into -out")
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep the web and worker logs (their directory is printed)")
	var env envFlags
	fs.Var(&env, "env", "KEY=VALUE added to web's and worker's environment (repeatable), to try a setting such as GOGC=200")
	fs.StringVar(&only, "only", strings.Join(allPhases, ","), "phases to run, comma-separated: "+strings.Join(allPhases, ","))
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.env = env
	o.phases = map[string]bool{}
	for _, p := range strings.Split(only, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		ok := false
		for _, q := range allPhases {
			ok = ok || p == q
		}
		if !ok {
			return o, fmt.Errorf("-only: unknown phase %q (want %s)", p, strings.Join(allPhases, ","))
		}
		o.phases[p] = true
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	sz := full
	if o.quick {
		sz = quick
	}
	started := time.Now()
	res := &Results{Started: started.UTC(), Quick: o.quick, Sizes: sz, Host: hostInfo()}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stdout, "%6.1fs  %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, a...))
	}
	logf("load average %s; %d CPUs", res.Host.LoadBefore, res.Host.CPUs)

	st, err := newStack(ctx, o, sz, logf)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			logf("cleanup: %v", cerr)
		}
	}()
	res.Database = st.database.Name
	b := &bench{st: st, o: o, sz: sz, res: res, logf: logf}
	if err := b.all(ctx); err != nil {
		st.failed = true
		return err
	}
	res.RSS = RSS{WebKB: st.peak("web"), WorkerKB: st.peak("worker")}
	res.Host.LoadAfter = loadAverage()
	res.Seconds = time.Since(started).Seconds()
	res.judge()
	paths, err := res.write(o.out)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	res.table(stdout)
	fmt.Fprintln(stdout)
	for _, p := range paths {
		fmt.Fprintln(stdout, "wrote", p)
	}
	return nil
}

// bench runs the phases over one stack.
type bench struct {
	st   *stack
	o    options
	sz   sizes
	res  *Results
	logf func(string, ...any)
}

func (b *bench) all(ctx context.Context) error {
	steps := []struct {
		phase string
		fn    func(context.Context) error
	}{
		{"accept", b.accept},
		{"e2e", b.endToEnd},
		{"steady", b.steady},
		{"backlog", b.backlog},
		{"growth", b.growth},
		{"latency", b.latencyPhase},
	}
	for _, s := range steps {
		if !b.o.phases[s.phase] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.phase, err)
		}
	}
	return nil
}

var errTimeout = errors.New("timed out")
