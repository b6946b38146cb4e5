package jobs

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/kilntest"
)

func TestRetryDelay(t *testing.T) {
	none := func(time.Duration) time.Duration { return 0 }
	most := func(d time.Duration) time.Duration { // the largest jitter rand.N can give
		if d <= 0 {
			return 0
		}
		return d - 1
	}
	limited := func(d time.Duration) error {
		return &addon.Error{Code: addon.ERATELIMIT, Message: "slow down", RetryAfter: d}
	}
	const base, max = time.Second, 5 * time.Minute
	tests := []struct {
		name   string
		n      int
		err    error
		jitter func(time.Duration) time.Duration
		want   time.Duration
	}{
		{"first retry is the base", 0, errors.New("boom"), none, time.Second},
		{"grows: second", 1, errors.New("boom"), none, 2 * time.Second},
		{"grows: fourth", 3, errors.New("boom"), none, 8 * time.Second},
		{"grows: ninth", 8, nil, none, 256 * time.Second},
		{"capped", 9, nil, none, max},
		{"capped without overflow", 5000, nil, none, max},
		{"jitter takes at most a quarter off", 2, nil, most, 3*time.Second + 1},
		{"jitter never exceeds the cap", 30, nil, most, max - max/4 + 1},
		{"retry-after honoured when longer", 0, limited(30 * time.Second), none, 30 * time.Second},
		{"retry-after jitter only adds", 0, limited(30 * time.Second), most, 33*time.Second - 1},
		{"retry-after honoured through a wrap", 0, wrap(limited(10 * time.Second)), none, 10 * time.Second},
		{"backoff wins over a shorter retry-after", 5, limited(time.Second), none, 32 * time.Second},
		{"retry-after capped", 0, limited(time.Hour), none, max},
		{"retry-after capped with jitter", 0, limited(time.Hour), most, max},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryDelay(tt.n, tt.err, base, max, tt.jitter); got != tt.want {
				t.Errorf("retryDelay(%d, %v) = %v, want %v", tt.n, tt.err, got, tt.want)
			}
		})
	}
}

func wrap(err error) error { return errors.Join(errors.New("context"), err) }

// TestRetryDelayRandomJitter checks the real jitter stays in its band.
func TestRetryDelayRandomJitter(t *testing.T) {
	const base, max = time.Second, 5 * time.Minute
	for n := 0; n < 12; n++ {
		full := min(base<<n, max)
		for range 200 {
			got := retryDelay(n, nil, base, max, jitter)
			if got <= full-full/4 || got > full {
				t.Fatalf("retryDelay(%d) = %v, want in (%v, %v]", n, got, full-full/4, full)
			}
		}
	}
}

func TestSweepLock(t *testing.T) {
	ctx := context.Background()
	opt, err := redis.ParseURL(kilntest.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	conn := asynq.RedisClientOpt{Addr: opt.Addr, DB: opt.DB}
	rc := conn.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { rc.Close() })

	r := NewReconciler(nil, nil, ReconcilerOptions{Interval: time.Minute, Redis: conn})
	if !r.acquire(ctx, rc, "dyno-1") {
		t.Fatal("the first dyno did not get the sweep lock")
	}
	if r.acquire(ctx, rc, "dyno-2") {
		t.Fatal("a second dyno got the sweep lock within the same interval")
	}
	ttl, err := rc.PTTL(ctx, lockKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > time.Minute {
		t.Fatalf("sweep lock TTL = %v, want within (0, 1m]: it must expire by itself before the next tick", ttl)
	}
	if !r.acquire(ctx, nil, "dyno-2") {
		t.Fatal("without Redis every process must sweep")
	}

	down := asynq.RedisClientOpt{Addr: "127.0.0.1:1"}.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { down.Close() })
	if !r.acquire(ctx, down, "dyno-3") {
		t.Fatal("with Redis down the sweep must run anyway (deadlines still matter)")
	}
}

// TestIdlePollDefault: an idle server looks for new tasks every 200 ms
// unless told otherwise, never less often than PollInterval.
func TestIdlePollDefault(t *testing.T) {
	tests := []struct {
		name string
		o    ServerOptions
		want time.Duration
	}{
		{"defaults", ServerOptions{}, DefaultIdlePoll},
		{"a shorter poll interval wins", ServerOptions{PollInterval: 50 * time.Millisecond}, 50 * time.Millisecond},
		{"a longer poll interval does not", ServerOptions{PollInterval: 5 * time.Second}, DefaultIdlePoll},
		{"set", ServerOptions{IdlePoll: time.Second}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.o.withDefaults().IdlePoll; got != tt.want {
				t.Errorf("IdlePoll %v, want %v", got, tt.want)
			}
			// And it reaches asynq: the servers' configuration, not only
			// the options, polls an idle queue at that pace.
			s := NewServer(asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, nil, tt.o)
			c := s.config(slog.New(slog.DiscardHandler), 1, map[string]int{QueueDefault: 1})
			if c.TaskCheckInterval != tt.want || c.DelayedTaskCheckInterval != s.opt.PollInterval {
				t.Errorf("asynq polls idle queues every %v and moves due tasks every %v; want %v and %v",
					c.TaskCheckInterval, c.DelayedTaskCheckInterval, tt.want, s.opt.PollInterval)
			}
		})
	}
}
