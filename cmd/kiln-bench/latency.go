package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

// HerokuLatency is the phase of issue 11: the simulator answers every call
// after a real Heroku's latency (150 ms), web and worker run with
// GOMAXPROCS=8 as on a dyno, and one worker process provisions a burst end
// to end. It reports add-ons/s, the grant exchanges/s of the burst, and the
// peak Redis and Postgres connections of web and worker, sampled every
// 100 ms throughout.
type HerokuLatency struct {
	Latency      time.Duration  `json:"latency_ns"`
	GOMAXPROCS   int            `json:"gomaxprocs"`
	Addons       int            `json:"addons"`
	Provisioned  int            `json:"provisioned"`
	Seconds      float64        `json:"seconds"`
	PerSecond    float64        `json:"per_second"`
	GrantsPerSec float64        `json:"grants_per_second"`
	Latencies    Latency        `json:"latency"`
	PeakRedis    map[string]int `json:"peak_redis_connections"`
	PeakPostgres map[string]int `json:"peak_postgres_connections"`
}

// latencyPhase runs HerokuLatency. The web process is restarted with
// connection names (application_name, client_name) so the samples can tell
// web from worker, and restarted as before afterwards.
func (b *bench) latencyPhase(ctx context.Context) error {
	st, sz := b.st, b.sz
	if err := st.reset(ctx); err != nil {
		return err
	}
	named := func(name string) []string {
		db, _ := url.Parse(st.database.URL)
		q := db.Query()
		q.Set("application_name", "kiln-"+name)
		db.RawQuery = q.Encode()
		return []string{"GOMAXPROCS=8", "DATABASE_URL=" + db.String(), "REDIS_URL=redis://" + st.redisAddr + "/0?client_name=kiln-" + name}
	}
	if err := st.stop("web"); err != nil {
		return err
	}
	if err := st.start(ctx, "web", named("web")...); err != nil {
		return err
	}
	if err := st.start(ctx, "worker", named("worker")...); err != nil {
		return err
	}
	h := HerokuLatency{Latency: 150 * time.Millisecond, GOMAXPROCS: 8, PeakRedis: map[string]int{}, PeakPostgres: map[string]int{}}
	st.sim.Inject(herokusim.Fault{Delay: h.Latency})
	defer st.sim.ClearFaults()

	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			st.sampleConnections(sctx, h.PeakRedis, h.PeakPostgres)
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	calls := st.registered(sz.Latency)
	hc := client(sz.Callers)
	lr := runLoad(ctx, hc, st.webURL+"/heroku/resources", calls, sz.Callers)
	ids := idsOf(calls)
	err := st.calls.waitAll(ctx, sz.WaitLimit, "every add-on marked provisioned", herokusim.KindProvision, ids)
	stopSampling()
	wg.Wait()
	done, _ := st.calls.times(herokusim.KindProvision, ids)
	grantTimes, _ := st.calls.times(herokusim.KindGrant, ids)
	provisioned, grants := answersOf(done, lr.starts), answersOf(grantTimes, lr.starts)
	n := provisioned.n
	h.Addons, h.Provisioned = len(ids), n
	h.Seconds, h.PerSecond = provisioned.rate(lr.start)
	h.Latencies = provisioned.latency
	if grants.n > 1 && grants.last.After(lr.start) {
		// From the first request of the burst, so the figure includes the
		// latency of getting the burst in.
		_, h.GrantsPerSec = grants.rate(lr.start)
	}
	b.res.Latency = h
	b.logf("150 ms Heroku: %d/%d provisioned in %.1f s: %.0f/s; grants %.0f/s; peak redis %v, postgres %v",
		n, len(ids), h.Seconds, h.PerSecond, h.GrantsPerSec, h.PeakRedis, h.PeakPostgres)
	hc.CloseIdleConnections()
	serr := st.stop("worker")
	if werr := st.stop("web"); serr == nil {
		serr = werr
	}
	if werr := st.start(ctx, "web"); serr == nil {
		serr = werr
	}
	if err != nil {
		return fmt.Errorf("%w (%d of %d provisioned)", err, n, len(ids))
	}
	return serr
}

// sampleConnections raises the peaks with the connections open now, by
// process: Redis clients by name (CLIENT LIST), Postgres backends by
// application_name.
func (st *stack) sampleConnections(ctx context.Context, redisPeak, pgPeak map[string]int) {
	now := map[string]int{}
	if list, err := st.rdb.ClientList(ctx).Result(); err == nil {
		for _, line := range strings.Split(list, "\n") {
			for _, f := range strings.Fields(line) {
				if name, ok := strings.CutPrefix(f, "name="); ok && strings.HasPrefix(name, "kiln-") {
					now[strings.TrimPrefix(name, "kiln-")]++
				}
			}
		}
	}
	total := 0
	for k, v := range now {
		redisPeak[k] = max(redisPeak[k], v)
		total += v
	}
	redisPeak["total"] = max(redisPeak["total"], total)

	rows, err := st.db.QueryContext(ctx, "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'kiln-%' GROUP BY 1", st.database.Name)
	if err != nil {
		return
	}
	defer rows.Close()
	total = 0
	for rows.Next() {
		var name string
		var n int
		if rows.Scan(&name, &n) == nil {
			k := strings.TrimPrefix(name, "kiln-")
			pgPeak[k] = max(pgPeak[k], n)
			total += n
		}
	}
	pgPeak["total"] = max(pgPeak["total"], total)
}
