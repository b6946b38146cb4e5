package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/ratelimit"
)

// client connects to a leased Redis database, as a dyno would.
func client(tb testing.TB, url string) *redis.Client {
	tb.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatal(err)
	}
	c := redis.NewClient(o)
	tb.Cleanup(func() { c.Close() })
	return c
}

func TestBucketDrainsAndIsSharedAcrossClients(t *testing.T) {
	url := kilntest.Redis(t)
	ctx := context.Background()
	// Two clients stand for two web dynos: they share one bucket per key.
	dynos := []*ratelimit.Redis{ratelimit.New(client(t, url)), ratelimit.New(client(t, url))}
	const burst = 5
	const perMinute = 0.06 // one token in 1,000 s: no refill within the test

	for i := range burst {
		remaining, wait, ok, err := dynos[i%2].Take(ctx, "operator:alice", burst, perMinute)
		if err != nil || !ok {
			t.Fatalf("take %d: ok=%v err=%v", i+1, ok, err)
		}
		if want := burst - 1 - i; remaining != want || wait != 0 {
			t.Errorf("take %d: remaining=%d wait=%v, want %d and 0", i+1, remaining, wait, want)
		}
	}
	remaining, wait, ok, err := dynos[1].Take(ctx, "operator:alice", burst, perMinute)
	if err != nil || ok || remaining != 0 {
		t.Fatalf("take past the burst: remaining=%d ok=%v err=%v; want refused with 0 left", remaining, ok, err)
	}
	if wait < 900*time.Second || wait > 1000*time.Second {
		t.Errorf("wait = %v, want about 1,000 s (one token at 0.06 a minute)", wait)
	}
	// Another key has its own bucket.
	if remaining, _, ok, err := dynos[0].Take(ctx, "operator:bob", burst, perMinute); err != nil || !ok || remaining != burst-1 {
		t.Errorf("another key: remaining=%d ok=%v err=%v; want a full bucket", remaining, ok, err)
	}
}

func TestBucketRefills(t *testing.T) {
	r := ratelimit.New(client(t, kilntest.Redis(t)))
	ctx := context.Background()
	const perMinute = 6000 // 100 a second
	if _, _, ok, err := r.Take(ctx, "k", 1, perMinute); err != nil || !ok {
		t.Fatalf("first take: ok=%v err=%v", ok, err)
	}
	_, wait, ok, err := r.Take(ctx, "k", 1, perMinute)
	if err != nil || ok || wait <= 0 {
		t.Fatalf("second take: ok=%v wait=%v err=%v; want refused with a wait", ok, wait, err)
	}
	time.Sleep(wait + 20*time.Millisecond)
	if _, _, ok, err := r.Take(ctx, "k", 1, perMinute); err != nil || !ok {
		t.Fatalf("take after waiting %v: ok=%v err=%v; want a refilled token", wait, ok, err)
	}
}

func TestBucketExpires(t *testing.T) {
	url := kilntest.Redis(t)
	c := client(t, url)
	r := ratelimit.New(c)
	ctx := context.Background()
	took := time.Now()
	if _, _, _, err := r.Take(ctx, "k", 10, 60); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.TTL(ctx, "kiln:ratelimit:k").Result()
	if err != nil {
		t.Fatal(err)
	}
	// One token short at one a second: gone (full again) within 2 s. A
	// stall of a second or more before the TTL call (a loaded machine)
	// may find it already gone (-2): that is the expiry too, but only
	// after such a stall.
	if ttl == -2 && time.Since(took) >= time.Second {
		return
	}
	if ttl <= 0 || ttl > 2*time.Second {
		t.Errorf("bucket TTL = %v, want (0, 2s]: a bucket lives only until it is full again", ttl)
	}
}

func TestRedisDownIsAnError(t *testing.T) {
	r := ratelimit.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}))
	if _, _, _, err := r.Take(context.Background(), "k", 1, 60); err == nil {
		t.Error("Take through a dead Redis succeeded")
	}
}

func TestRefusesEmptyBuckets(t *testing.T) {
	r := ratelimit.New(client(t, kilntest.Redis(t)))
	for _, c := range []struct {
		burst     int
		perMinute float64
	}{{0, 60}, {1, 0}, {1, -1}} {
		if _, _, _, err := r.Take(context.Background(), "k", c.burst, c.perMinute); err == nil {
			t.Errorf("Take(burst %d, %v a minute) succeeded", c.burst, c.perMinute)
		}
	}
}

// TestPeekTakesNothing: peeking a bucket never empties it, and says no once
// takes have.
func TestPeekTakesNothing(t *testing.T) {
	rl := ratelimit.New(client(t, kilntest.Redis(t)))
	ctx := context.Background()
	const burst, perMinute = 2, 0.06
	for i := 0; i < 10; i++ {
		if _, ok, err := rl.Peek(ctx, "guess", burst, perMinute); err != nil || !ok {
			t.Fatalf("peek %d on a full bucket: ok=%v err=%v", i, ok, err)
		}
	}
	for i := 0; i < burst; i++ {
		if _, _, ok, err := rl.Take(ctx, "guess", burst, perMinute); err != nil || !ok {
			t.Fatalf("take %d: ok=%v err=%v", i, ok, err)
		}
	}
	wait, ok, err := rl.Peek(ctx, "guess", burst, perMinute)
	if err != nil || ok || wait <= 0 {
		t.Errorf("peek on an empty bucket: ok=%v wait=%v err=%v, want refused with a wait", ok, wait, err)
	}
}
