package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuick runs the whole benchmark in its -quick mode against freshly
// built web and worker binaries, real Postgres and Redis: it proves the
// tool works end to end and cleans up after itself. It asserts nothing
// about speed (tests never time); it asserts that every phase did its work.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the benchmark stack")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(os.PathSeparator), "./cmd/web", "./cmd/worker", "./cmd/kiln-bench")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out := filepath.Join(t.TempDir(), "results")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kiln-bench"), "-quick", "-bin", bin, "-out", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kiln-bench -quick: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"figure", "baseline: 1 insert + 1 enqueue", "accept: 64 callers", "end to end", "steady: ", "grant freshness", "rows in the table", "peak RSS", "target"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the printed table lacks %q:\n%s", want, stdout.String())
		}
	}

	raw, err := os.ReadFile(filepath.Join(out, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r Results
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("latest.json: %v", err)
	}
	sz := quick
	checks := []struct {
		name string
		ok   bool
	}{
		{"baseline answered every call 202", r.Baseline.Requests == sz.Accept && r.Baseline.Errors == 0 && r.Baseline.PerSecond > 0},
		{"accept answered every call 202", r.Accept.Requests == sz.Accept && r.Accept.Errors == 0 && r.Accept.Latency.N == sz.Accept},
		{"every end-to-end add-on reached actions/provision", r.EndToEnd.Addons == sz.EndToEnd && r.EndToEnd.Provisioned == sz.EndToEnd && r.EndToEnd.PerSecond > 0},
		{"no end-to-end add-on failed", r.EndToEnd.States["failed"] == 0 && r.EndToEnd.States["provisioned"] == sz.EndToEnd},
		{"every steady add-on reached actions/provision", r.Steady.Addons == sz.Steady && r.Steady.Provisioned == sz.Steady && r.Steady.Rate == sz.SteadyRate && r.Steady.CPU.Cores["worker"] > 0},
		{"the backlog was queued behind the probes", r.Freshness.Burst == sz.Backlog && r.Freshness.Queued > 0},
		{"every probe's grant was exchanged", r.Freshness.Probes == sz.Probes && r.Freshness.Exchanged == sz.Probes && r.Freshness.ProbeErrors == 0},
		{"both growth runs ran", len(r.Growth) == 2 && r.Growth[0].Rows == sz.GrowthSmall && r.Growth[1].Rows == sz.GrowthLarge && r.Growth[1].Accept.Errors == 0},
		{"peak RSS was read", r.RSS.WebKB > 0 && r.RSS.WorkerKB > 0},
		{"every target was judged", len(r.Targets) == 11},
		{"the 150 ms latency phase provisioned every add-on", r.Latency.Addons == sz.Latency && r.Latency.Provisioned == sz.Latency && r.Latency.PeakRedis["worker"] > 0 && r.Latency.PeakPostgres["worker"] > 0},
		{"CPU was accounted", r.Accept.CPU.Cores["web"] > 0},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: no", c.name)
		}
	}
	if t.Failed() {
		t.Logf("results:\n%s", raw)
	}

	svg, err := os.ReadFile(filepath.Join(out, "latest-latency.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := wellFormed(svg); err != nil || !bytes.Contains(svg, []byte("<polyline")) {
		t.Errorf("latest-latency.svg is not an SVG histogram (%v):\n%.300s", err, svg)
	}
	if md, err := os.ReadFile(filepath.Join(out, "latest.md")); err != nil || !bytes.Contains(md, []byte("| accept: 64 callers |")) {
		t.Errorf("latest.md lacks the table (%v)", err)
	}

	db, err := sql.Open("pgx", adminDatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", r.Database).Scan(&n); err != nil || n != 0 || r.Database == "" {
		t.Errorf("benchmark database %q left behind (count %d, %v)", r.Database, n, err)
	}
}

func wellFormed(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func TestLatencyOf(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Latency
	}{
		{"empty", nil, Latency{}},
		{"one", ms(7), Latency{P50: 7, P90: 7, P99: 7, Max: 7, N: 1}},
		{"hundred", ms(hundred...), Latency{P50: 50, P90: 90, P99: 99, Max: 100, N: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := latencyOf(tt.in); got != tt.want {
				t.Errorf("latencyOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms ...int) []time.Time {
		out := make([]time.Time, len(ms))
		for i, m := range ms {
			if m >= 0 {
				out[i] = t0.Add(time.Duration(m) * time.Millisecond)
			}
		}
		return out
	}
	tests := []struct {
		name            string
		answered, sent  []time.Time
		n               int
		p50, max        float64
		seconds, perSec float64
	}{
		{"none answered", at(-1, -1), at(0, 10), 0, 0, 0, 0, 0},
		{"all answered", at(100, 2000), at(0, 1000), 2, 100, 1000, 2, 1},
		{"one still missing", at(-1, 500, 400), at(0, 100, 200), 2, 200, 400, 0.5, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := answersOf(tt.answered, tt.sent)
			seconds, perSec := a.rate(t0)
			if a.n != tt.n || a.latency.P50 != tt.p50 || a.latency.Max != tt.max || seconds != tt.seconds || perSec != tt.perSec {
				t.Errorf("n %d p50 %v max %v, rate %v s %v/s; want n %d p50 %v max %v, rate %v s %v/s",
					a.n, a.latency.P50, a.latency.Max, seconds, perSec, tt.n, tt.p50, tt.max, tt.seconds, tt.perSec)
			}
		})
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 200000: "200,000", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCPUBetween(t *testing.T) {
	t0 := time.Now()
	a := cpuSample{at: t0, present: true, busy: 10, idle: 10, procs: map[string]float64{"web": 1, "postgres": 2, "other": 5}}
	b := cpuSample{at: t0.Add(2 * time.Second), present: true, busy: 13, idle: 11, procs: map[string]float64{"web": 2, "postgres": 3, "other": 99}}
	got := cpuBetween(a, b)
	want := map[string]float64{"web": 0.5, "postgres": 0.5, "other": 0.5} // 3 s busy, 2 s named
	for k, v := range want {
		if got.Cores[k] != v {
			t.Errorf("%s = %v cores, want %v", k, got.Cores[k], v)
		}
	}
	if got.Idle != 0.5 {
		t.Errorf("idle = %v, want 0.5", got.Idle)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-only", "accept,growth", "-env", "GOGC=200"}, io.Discard)
	if err != nil || !o.quick || !o.phases["accept"] || !o.phases["growth"] || o.phases["e2e"] || len(o.env) != 1 {
		t.Errorf("parseFlags = %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"-only", "nonesuch"}, {"-env", "GOGC"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}
