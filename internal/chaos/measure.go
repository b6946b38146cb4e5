package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/faultkit"
)

// MeasureRedis counts the Redis commands one provision costs end to end:
// one web and one worker over a private redis-server, n provisions (each
// sent twice, as in the chaos run) with no faults, INFO commandstats read
// before and after, and the processes' idle traffic (measured first, over
// idle) subtracted. docs/deploy.md quotes it (`kiln-chaos -measure-redis`).
func MeasureRedis(ctx context.Context, o Options, n int, idle time.Duration, w io.Writer) error {
	o.Faults = []string{}
	o.defaults()
	o.Webs, o.Workers = 1, 1
	dir, err := os.MkdirTemp("", "kiln-measure")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.Bin == "" {
		o.Bin = dir + "/bin"
		if err := build(ctx, o.Bin); err != nil {
			return err
		}
	}
	s, err := startStack(ctx, o, RoundRedis, dir)
	if err != nil {
		return err
	}
	defer s.close()
	addr := s.redis.Addr()
	time.Sleep(3 * time.Second) // start-up traffic is not idle traffic
	a, err := commandStats(addr)
	if err != nil {
		return err
	}
	time.Sleep(idle)
	b, err := commandStats(addr)
	if err != nil {
		return err
	}
	_, idleCmds := diffStats(a, b)
	idleRate := float64(idleCmds) / idle.Seconds()

	wl := newWorkload(s, rand.New(rand.NewPCG(uint64(o.Seed), 1)), 1)
	start := time.Now()
	for i := range n {
		wl.wg.Add(1)
		go wl.provision(rand.New(rand.NewPCG(uint64(o.Seed), uint64(i)+2)))
		time.Sleep(10 * time.Millisecond)
	}
	wl.wait()
	for {
		res := wl.check(ctx)
		if res.settled && res.outcome["provisioned"] == res.addons {
			break
		}
		if time.Since(start) > 2*time.Minute || ctx.Err() != nil {
			return fmt.Errorf("measure: provisions did not finish: %v", res.outcome)
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	c, err := commandStats(addr)
	if err != nil {
		return err
	}
	per, total := diffStats(b, c)
	busy := float64(total) - idleRate*took.Seconds()
	fmt.Fprintf(w, "idle traffic, 1 web + 1 worker: %.1f commands/s\n", idleRate)
	fmt.Fprintf(w, "%d provisions in %s: %d commands, %.0f of them idle traffic: %.1f commands per provision\n",
		n, took.Round(100*time.Millisecond), total, idleRate*took.Seconds(), busy/float64(n))
	names := make([]string, 0, len(per))
	for k := range per {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return per[names[i]] > per[names[j]] })
	var parts []string
	for _, k := range names {
		if v := float64(per[k]) / float64(n); v >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %.1f", strings.ToUpper(k), v))
		}
	}
	fmt.Fprintf(w, "per provision (idle share included): %s\n", strings.Join(parts, ", "))
	return nil
}

// commandStats reads INFO commandstats: command → calls.
func commandStats(addr string) (map[string]int, error) {
	out, err := faultkit.Command(addr, "INFO", "commandstats")
	if err != nil {
		return nil, err
	}
	m := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(l), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		if v, err := strconv.Atoi(calls); err == nil {
			m[name] = v
		}
	}
	return m, nil
}

func diffStats(a, b map[string]int) (map[string]int, int) {
	d := map[string]int{}
	total := 0
	for k, v := range b {
		if x := v - a[k]; x > 0 {
			d[k] = x
			total += x
		}
	}
	return d, total
}
