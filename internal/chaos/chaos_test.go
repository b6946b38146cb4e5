package chaos_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/chaos"
)

// bin holds the binaries every test of the package starts.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kiln-chaos-bin")
	if err != nil {
		panic(err)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/release", "./cmd/web", "./cmd/worker")
	build.Dir = filepath.Join("..", "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.Exit(1)
	}
	bin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs the chaos run and logs its report.
func run(t *testing.T, o chaos.Options) *chaos.Report {
	t.Helper()
	o.Bin, o.Dir = bin, t.TempDir()
	o.Log = testWriter{t}
	rep, err := chaos.Run(context.Background(), o)
	if rep != nil {
		var b strings.Builder
		rep.Write(&b)
		t.Log("\n" + b.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestChaosShort is the chaos run's short form: two webs and three workers
// over plain Redis behind a fault proxy, every fault of that round, a few
// dozen add-ons. The Sentinel round's failover runs in
// TestProvisionsThroughSentinelFailover; `make chaos` runs both rounds,
// longer, with every fault.
func TestChaosShort(t *testing.T) {
	rep := run(t, chaos.Options{Seed: 16, Rounds: []chaos.Round{chaos.RoundRedis}, Duration: 20 * time.Second, Settle: 90 * time.Second, Rate: 3})
	if v := rep.Violated(); len(v) > 0 {
		for _, tail := range rep.Tails {
			t.Log(tail)
		}
		t.Fatalf("invariants violated: %s", strings.Join(v, ", "))
	}
	if !rep.OK() {
		t.Fatal("some faults could not be injected")
	}
	for _, f := range []string{chaos.FaultKillWeb, chaos.FaultKillWorker, chaos.FaultPGReset, chaos.FaultPGTerminate,
		chaos.FaultRedisBlack, chaos.FaultRedisReset, chaos.FaultHeroku429, chaos.FaultHeroku5xx} {
		if rep.Injected(f) == 0 {
			t.Errorf("the short form never injected %q", f)
		}
	}
}

// TestProvisionsThroughSentinelFailover SIGKILLs the Sentinel group's
// primary while provisions flow: every add-on Kiln accepted ends
// provisioned, on Kiln's side and on Heroku's, each grant exchanged once.
func TestProvisionsThroughSentinelFailover(t *testing.T) {
	rep := run(t, chaos.Options{
		Seed: 1616, Rounds: []chaos.Round{chaos.RoundSentinel}, Duration: 15 * time.Second, Settle: 90 * time.Second,
		Rate: 4, ProvisionsOnly: true, Faults: []string{chaos.FaultFailover, chaos.FaultHerokuLatency},
	})
	if rep.Injected(chaos.FaultFailover) != 1 {
		t.Fatal("the primary was not killed")
	}
	if v := rep.Violated(); len(v) > 0 {
		t.Fatalf("invariants violated through a failover: %s", strings.Join(v, ", "))
	}
	accepted, provisioned := rep.Outcome(chaos.RoundSentinel)
	if accepted < 20 || provisioned != accepted {
		t.Fatalf("%d add-ons accepted, %d provisioned; want every one (and at least 20) provisioned", accepted, provisioned)
	}
}

// TestChaosCatchesBrokenReconciler breaks a guarantee on purpose: the
// reconciler never finds stale work (RECONCILE_AFTER of 1000 h) and never
// sweeps the outbox of failed enqueues (OUTBOX_INTERVAL of 1000 h), so
// provisions accepted while Redis is a blackhole are never enqueued. The
// chaos run must fail and name the invariant, or it proves nothing.
func TestChaosCatchesBrokenReconciler(t *testing.T) {
	rep := run(t, chaos.Options{
		Seed: 16016, Rounds: []chaos.Round{chaos.RoundRedis}, Duration: 12 * time.Second, Settle: 20 * time.Second,
		Rate: 4, ProvisionsOnly: true, Faults: []string{chaos.FaultRedisBlack},
		Env: []string{"RECONCILE_AFTER=1000h", "OUTBOX_INTERVAL=1000h"},
	})
	if rep.Injected(chaos.FaultRedisBlack) != 1 {
		t.Fatal("Redis was never blackholed")
	}
	if !slices.Contains(rep.Violated(), chaos.InvAccepted) {
		t.Fatalf("with the reconciler disabled the run found violations of %v, want %s", rep.Violated(), chaos.InvAccepted)
	}
	var b strings.Builder
	rep.Write(&b)
	if !strings.Contains(b.String(), "VIOLATED "+chaos.InvAccepted) || !strings.Contains(b.String(), "still provisioning") {
		t.Errorf("the report does not name the violation and the stranded add-ons:\n%s", b.String())
	}
}
