package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// accept measures Heroku's provision call against bin/web, and the baseline
// handler against the same Postgres and Redis, in alternating rounds so a
// burst of outside load hurts both alike. The worker is not running: this is
// the web process's figure (on Heroku the worker has dynos of its own).
func (b *bench) accept(ctx context.Context) error {
	st, sz := b.st, b.sz
	baseURL, stopBaseline, err := st.startBaseline(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = stopBaseline() }()
	hc := client(sz.Callers)
	warm := func(url string) {
		runLoad(ctx, hc, url, unregistered(sz.Warmup), sz.Callers)
	}
	warm(baseURL + "/heroku/resources")
	warm(st.webURL + "/heroku/resources")
	b.res.Load.BeforeAccept = loadAverage()
	for round := 1; round <= sz.Rounds; round++ {
		calls := unregistered(sz.Accept)
		r := b.load(ctx, hc, baseURL+"/heroku/resources", calls)
		b.logf("baseline round %d: %.0f/s  p50 %.1f ms  p99 %.1f ms  errors %d", round, r.PerSecond, r.Latency.P50, r.Latency.P99, r.Errors)
		b.res.BaselineRounds = append(b.res.BaselineRounds, r)

		calls = unregistered(sz.Accept)
		var prof func() error
		if b.o.profile && round == sz.Rounds {
			prof = b.profile(ctx, fmt.Sprintf("%s/admin/debug/pprof/profile?seconds=%d", st.webURL, sz.ProfileSecs), "web-accept")
		}
		r = b.load(ctx, hc, st.webURL+"/heroku/resources", calls)
		if prof != nil {
			if err := prof(); err != nil {
				b.logf("profile: %v", err)
			}
		}
		if prof != nil {
			// Allocations since the web started: all of them provision calls.
			if err := b.profile(ctx, st.webURL+"/admin/debug/pprof/allocs", "web-allocs")(); err != nil {
				b.logf("profile: %v", err)
			}
		}
		b.logf("accept   round %d: %.0f/s  p50 %.1f ms  p99 %.1f ms  errors %d", round, r.PerSecond, r.Latency.P50, r.Latency.P99, r.Errors)
		b.res.AcceptRounds = append(b.res.AcceptRounds, r)
	}
	b.res.Baseline = best(b.res.BaselineRounds)
	b.res.Accept = best(b.res.AcceptRounds)
	for i := range b.res.AcceptRounds {
		b.res.RoundRatios = append(b.res.RoundRatios, ratio(b.res.AcceptRounds[i].PerSecond, b.res.BaselineRounds[i].PerSecond))
	}
	b.res.AcceptRatio = median(b.res.RoundRatios)
	hc.CloseIdleConnections()
	return nil
}

// median of a few ratios (the mean of the middle two for an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// best is the round with the highest throughput: outside load can only make
// a round slower, never faster.
func best(rs []Rate) Rate {
	var out Rate
	for _, r := range rs {
		if r.PerSecond > out.PerSecond {
			out = r
		}
	}
	return out
}

// endToEnd provisions N add-ons through the whole pipeline (account driver)
// and times each from its request to the simulator's actions/provision.
// They are sent as fast as the web answers: a burst, which queues.
func (b *bench) endToEnd(ctx context.Context) error {
	sz := b.sz
	b.res.Load.BeforeEndToEnd = loadAverage()
	e, err := b.pipeline(ctx, sz.EndToEnd, "worker-e2e", func(hc *http.Client, url string, calls []call) loadResult {
		return runLoad(ctx, hc, url, calls, sz.Callers)
	})
	b.res.EndToEnd = e
	b.logf("end to end: %d/%d provisioned in %.1f s: %.0f/s  p50 %.0f ms  p99 %.0f ms", e.Provisioned, e.Addons, e.Seconds, e.PerSecond, e.Latency.P50, e.Latency.P99)
	return err
}

// steady provisions N add-ons through the whole pipeline at a steady pace
// below what the machine can carry, as add-ons arrive between bursts: no
// queue builds, so its CPU per add-on is the pipeline's cost when every
// job starts at once (grant jobs go on to provision inline).
func (b *bench) steady(ctx context.Context) error {
	sz := b.sz
	e, err := b.pipeline(ctx, sz.Steady, "", func(hc *http.Client, url string, calls []call) loadResult {
		return runPaced(ctx, hc, url, calls, sz.SteadyRate, sz.Callers)
	})
	b.res.Steady = Steady{EndToEnd: e, Rate: sz.SteadyRate}
	b.logf("steady: %d/%d provisioned at %.0f/s sent: p50 %.0f ms  p99 %.0f ms", e.Provisioned, e.Addons, sz.SteadyRate, e.Latency.P50, e.Latency.P99)
	return err
}

// pipeline starts the worker, sends n provisions with send, waits until
// each was marked provisioned on the simulator (timing each from its
// request), stops the worker, and returns the figures with the CPU every
// process spent from the first request to the last add-on provisioned.
// With -profile, a CPU profile of the worker named profile is taken
// meanwhile (none when profile is empty).
func (b *bench) pipeline(ctx context.Context, n int, profile string, send func(hc *http.Client, url string, calls []call) loadResult) (EndToEnd, error) {
	st, sz := b.st, b.sz
	if err := st.reset(ctx); err != nil {
		return EndToEnd{}, err
	}
	if err := st.start(ctx, "worker"); err != nil {
		return EndToEnd{}, err
	}
	calls := st.registered(n)
	hc := client(sz.Callers)
	var prof func() error
	if b.o.profile && profile != "" {
		prof = b.profile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", st.workerDebug, sz.ProfileSecs), profile)
	}
	s0, c0 := st.sessions(ctx), st.sampleCPU()
	lr := send(hc, st.webURL+"/heroku/resources", calls)
	accepted := lr.rate()
	b.logf("%d provisions accepted at %.0f/s (errors %d); waiting for the pipeline", accepted.Requests, accepted.PerSecond, accepted.Errors)
	ids := idsOf(calls)
	err := st.calls.waitAll(ctx, sz.WaitLimit, "every add-on marked provisioned", herokusim.KindProvision, ids)
	cpu, sessions := cpuBetween(c0, st.sampleCPU()), st.sessions(ctx)-s0
	if prof != nil {
		if perr := prof(); perr != nil {
			b.logf("profile: %v", perr)
		}
	}
	done, _ := st.calls.times(herokusim.KindProvision, ids)
	provisioned := answersOf(done, lr.starts)
	e := EndToEnd{Addons: len(ids), Provisioned: provisioned.n, Accept: accepted, CPU: cpu, Sessions: sessions}
	e.Seconds, e.PerSecond = provisioned.rate(lr.start)
	e.Latency = provisioned.latency
	// Heroku sees an add-on marked provisioned just before Kiln records it,
	// so the last records may trail the simulator's marks by a moment.
	_ = waitFor(ctx, 5*time.Second, "Kiln to record every add-on", func() bool {
		return err != nil || st.states(ctx)[string(addon.StateProvisioning)] == 0
	})
	e.States = st.states(ctx)
	if serr := st.stop("worker"); serr != nil {
		return e, serr
	}
	hc.CloseIdleConnections()
	if err != nil {
		return e, fmt.Errorf("%w (%d of %d provisioned)", err, e.Provisioned, len(ids))
	}
	return e, nil
}

// backlog queues many slow resource jobs (the driver waits
// RESOURCE_DRIVER_DELAY per call), then sends new provisions one by one and
// times each from its request to its grant exchange: the OAuth grant dies
// five minutes after Heroku's request, so it must not wait behind resource
// work.
func (b *bench) backlog(ctx context.Context) error {
	st, sz := b.st, b.sz
	if err := st.reset(ctx); err != nil {
		return err
	}
	if err := st.start(ctx, "worker", "RESOURCE_DRIVER_DELAY="+sz.Delay.String()); err != nil {
		return err
	}
	hc := client(sz.Callers)
	burst := st.registered(sz.Backlog)
	b.res.Load.BeforeBacklog = loadAverage()
	lr := runLoad(ctx, hc, st.webURL+"/heroku/resources", burst, sz.Callers)
	accepted := lr.rate()
	b.logf("backlog: %d provisions accepted at %.0f/s (errors %d); waiting for their grants", accepted.Requests, accepted.PerSecond, accepted.Errors)
	ids := idsOf(burst)
	err := st.calls.waitAll(ctx, sz.WaitLimit, "the burst's grants exchanged", herokusim.KindGrant, ids)
	if err != nil {
		return err
	}
	grantTimes, _ := st.calls.times(herokusim.KindGrant, ids)
	grants := answersOf(grantTimes, lr.starts)
	f := Freshness{Burst: len(ids), Delay: sz.Delay.String(), BurstLatency: grants.latency}
	_, f.BurstGrantsPerSecond = grants.rate(lr.start)
	if f.Queued, err = st.pending(ctx, "default"); err != nil {
		return err
	}
	b.logf("backlog: burst grants exchanged at %.0f/s (p99 %.0f ms); %d resource jobs queued; probing", f.BurstGrantsPerSecond, f.BurstLatency.P99, f.Queued)

	probes := st.registered(sz.Probes)
	starts := make([]time.Time, len(probes))
	var wg sync.WaitGroup
	var probeErrors atomic.Int64
	tick := time.NewTicker(sz.ProbeEvery)
	for i := range probes {
		if i > 0 {
			<-tick.C
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := runLoad(ctx, hc, st.webURL+"/heroku/resources", probes[i:i+1], 1)
			starts[i] = r.starts[0]
			if r.status[0] != http.StatusAccepted {
				probeErrors.Add(1)
			}
		}()
	}
	tick.Stop()
	wg.Wait()
	f.ProbeErrors = int(probeErrors.Load())
	probeIDs := idsOf(probes)
	// A probe still waiting at the limit is a result (the target wants
	// every probe exchanged), not a failed run; anything else stops it.
	if err := st.calls.waitAll(ctx, sz.WaitLimit, "the probes' grants exchanged", herokusim.KindGrant, probeIDs); err != nil && !errors.Is(err, errTimeout) {
		return err
	}
	got, _ := st.calls.times(herokusim.KindGrant, probeIDs)
	exchanged := answersOf(got, starts)
	f.Probes, f.Exchanged, f.Latency = len(probes), exchanged.n, exchanged.latency
	if f.QueuedAfter, err = st.pending(ctx, "default"); err != nil {
		return err
	}
	b.res.Freshness = f
	b.logf("backlog: probe grants p50 %.0f ms  p99 %.0f ms  max %.0f ms; %d resource jobs still queued", f.Latency.P50, f.Latency.P99, f.Latency.Max, f.QueuedAfter)
	hc.CloseIdleConnections()
	return st.stop("worker")
}

// growth measures accept latency with a small and a large table. The rows
// are inserted directly (as a long-lived deployment accumulates them), not
// through the API.
func (b *bench) growth(ctx context.Context) error {
	st, sz := b.st, b.sz
	if err := st.reset(ctx); err != nil {
		return err
	}
	hc := client(sz.Callers)
	for _, rows := range []int{sz.GrowthSmall, sz.GrowthLarge} {
		have, err := st.count(ctx)
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := st.seed(ctx, rows-have); err != nil {
			return err
		}
		b.logf("growth: %d add-ons in the table (%d inserted in %.1f s)", rows, rows-have, time.Since(t0).Seconds())
		runLoad(ctx, hc, st.webURL+"/heroku/resources", unregistered(sz.Warmup/2), sz.Callers)
		r := b.load(ctx, hc, st.webURL+"/heroku/resources", unregistered(sz.GrowthReqs))
		b.logf("growth: accept with %d rows: %.0f/s  p50 %.1f ms  p99 %.1f ms", rows, r.PerSecond, r.Latency.P50, r.Latency.P99)
		b.res.Growth = append(b.res.Growth, GrowthRun{Rows: rows, Accept: r})
	}
	hc.CloseIdleConnections()
	return nil
}

// profile starts a CPU profile of a process and returns a function that
// waits for it and saves it into the results directory.
func (b *bench) profile(ctx context.Context, url, name string) func() error {
	type result struct {
		body []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.SetBasicAuth("admin", adminPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s answered %d", url, resp.StatusCode)
		}
		ch <- result{body, err}
	}()
	return func() error {
		r := <-ch
		if r.err != nil {
			return r.err
		}
		if err := os.MkdirAll(b.o.out, 0o755); err != nil {
			return err
		}
		p := filepath.Join(b.o.out, b.res.stamp()+"-"+name+".pprof")
		b.res.Profiles = append(b.res.Profiles, p)
		return os.WriteFile(p, r.body, 0o644)
	}
}

// load runs one measured closed-loop load and records what it cost.
func (b *bench) load(ctx context.Context, hc *http.Client, url string, calls []call) Rate {
	var lr loadResult
	cpu, sessions := b.st.measure(ctx, func() { lr = runLoad(ctx, hc, url, calls, b.sz.Callers) })
	r := lr.rate()
	r.CPU, r.Sessions = cpu, sessions
	return r
}

func idsOf(calls []call) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.id
	}
	return out
}
