package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

// event is one fault at a moment of the round.
type event struct {
	at     time.Duration
	fault  string
	target string // the process, for kills
	draw   int    // a seeded number in [0, 1500) for the fault's details
}

// schedule picks the round's faults and their moments from the seed. Faults
// fall in the first 80% of the round, so their effects overlap the work.
func schedule(o Options, round Round, rng *rand.Rand) []event {
	d := o.Duration
	at := func(from, to float64) time.Duration {
		return time.Duration((from + rng.Float64()*(to-from)) * float64(d))
	}
	var evs []event
	add := func(fault string, n int, from, to float64) {
		if !o.has(fault) {
			return
		}
		for range n {
			evs = append(evs, event{at: at(from, to), fault: fault})
		}
	}
	// About one kill every 4 s, two workers for each web.
	kills := max(int(d/(4*time.Second)), 2)
	// Kills stop at 60%: asynq takes up to a minute and a half to hand a
	// killed worker's task to another (lease 30 s, recoverer every minute).
	add(FaultKillWeb, max(kills/3, 1), 0.05, 0.6)
	add(FaultKillWorker, max(kills-kills/3, 1), 0.05, 0.6)
	add(FaultPGReset, 1, 0.15, 0.7)
	add(FaultPGTerminate, 1, 0.15, 0.7)
	add(FaultHeroku429, 2, 0.05, 0.8)
	add(FaultHeroku5xx, 2, 0.05, 0.8)
	switch round {
	case RoundSentinel:
		add(FaultFailover, 1, 0.25, 0.5)
	default:
		add(FaultRedisBlack, 1, 0.25, 0.5)
		add(FaultRedisReset, 1, 0.6, 0.8)
	}
	for i := range evs {
		evs[i].draw = rng.IntN(1500)
		switch evs[i].fault {
		case FaultKillWeb:
			evs[i].target = fmt.Sprintf("web.%d", 1+rng.IntN(o.Webs))
		case FaultKillWorker:
			evs[i].target = fmt.Sprintf("worker.%d", 1+rng.IntN(o.Workers))
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	return evs
}

// inject carries out the schedule until ctx ends, recording each fault.
func inject(ctx context.Context, s *stack, evs []event, rep *Report, log io.Writer) {
	start := time.Now()
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, ev := range evs {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(ev.at))):
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			detail, err := apply(ctx, s, ev)
			if err == errSkipped {
				return
			}
			stamp := fmt.Sprintf("%.1fs", time.Since(start).Seconds())
			if err != nil {
				fmt.Fprintf(log, "chaos: %s %s: %s could not be injected: %v\n", s.round, stamp, ev.fault, err)
				rep.faultError(s.round, ev.fault, err)
				return
			}
			fmt.Fprintf(log, "chaos: %s %s: %s %s\n", s.round, stamp, ev.fault, detail)
			rep.fault(s.round, ev.fault, stamp+" "+detail)
		}()
	}
}

// errSkipped is a fault that had nothing to act on.
var errSkipped = errors.New("skipped")

// apply injects one fault and, for the ones that last, ends it.
func apply(ctx context.Context, s *stack, ev event) (string, error) {
	switch ev.fault {
	case FaultKillWeb, FaultKillWorker:
		if !s.kill(ev.target) {
			return "", errSkipped // another kill has it down
		}
		down := 500*time.Millisecond + time.Duration(ev.draw)*time.Millisecond
		time.Sleep(down)
		if err := s.start(ev.target); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s, back after %s", ev.target, down), nil
	case FaultPGReset:
		return "", s.pg.Reset()
	case FaultPGTerminate:
		// The checker's own connections are spared only by luck, and reconnect.
		n, err := s.database.TerminateBackends(ctx)
		return fmt.Sprintf("%d backends", n), err
	case FaultRedisBlack:
		if err := s.rproxy.Blackhole(); err != nil {
			return "", err
		}
		time.Sleep(s.o.BlackholeFor)
		s.rproxy.Heal()
		return fmt.Sprintf("for %s", s.o.BlackholeFor), nil
	case FaultRedisReset:
		return "", s.rproxy.Reset()
	case FaultFailover:
		old, now, err := s.group.Failover(context.WithoutCancel(ctx), 60*time.Second)
		if err != nil {
			return "", err
		}
		// The old primary comes back a while later and is made a replica.
		time.Sleep(2 * time.Second)
		if err := s.group.Rejoin(); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s killed, %s promoted", old, now), nil
	case FaultHeroku429:
		s.sim.Inject(herokusim.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1", Times: 6})
		return "next 6 calls", nil
	case FaultHeroku5xx:
		status := http.StatusServiceUnavailable
		if ev.draw%2 == 0 {
			status = http.StatusInternalServerError
		}
		s.sim.Inject(herokusim.Fault{Status: status, Times: 6})
		return fmt.Sprintf("next 6 calls answered %d", status), nil
	}
	return "", fmt.Errorf("unknown fault %q", ev.fault)
}
