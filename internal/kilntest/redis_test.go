package kilntest_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/kilntest"
)

// TestRedisIsPrivate holds kilntest.Redis to its promise: each test's
// database is on a server the test binary started (never 127.0.0.1:6379),
// two tests never share one, and what a test writes is gone afterwards.
func TestRedisIsPrivate(t *testing.T) {
	if os.Getenv("KILN_TEST_REDIS_URL") != "" {
		t.Skip("KILN_TEST_REDIS_URL names the developer's own index")
	}
	var urls []string
	for i := 0; i < 3; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			u := kilntest.Redis(t)
			opt, err := redis.ParseURL(u)
			if err != nil {
				t.Fatal(err)
			}
			_, port, _ := net.SplitHostPort(opt.Addr)
			if port == "6379" {
				t.Fatalf("kilntest.Redis gave the shared server %s", u)
			}
			c := redis.NewClient(opt)
			defer c.Close()
			ctx := context.Background()
			if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
				t.Fatalf("a fresh test database holds %d keys (%v)", n, err)
			}
			if err := c.Set(ctx, "mine", "x", 0).Err(); err != nil {
				t.Fatal(err)
			}
			urls = append(urls, u)
		})
	}
	for _, u := range urls {
		opt, _ := redis.ParseURL(u)
		c := redis.NewClient(opt)
		n, err := c.DBSize(context.Background()).Result()
		c.Close()
		if err != nil || n != 0 {
			t.Errorf("%s still holds %d keys after its test (%v)", u, n, err)
		}
	}
}

// TestRedisParallelTestsDoNotShare: no two tests hold one database at the
// same time.
func TestRedisParallelTestsDoNotShare(t *testing.T) {
	if os.Getenv("KILN_TEST_REDIS_URL") != "" {
		t.Skip("KILN_TEST_REDIS_URL names the developer's own index")
	}
	var mu sync.Mutex
	held := map[string]bool{}
	for i := 0; i < 6; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			u := kilntest.Redis(t)
			mu.Lock()
			if held[u] {
				t.Errorf("two tests hold %s at once", u)
			}
			held[u] = true
			mu.Unlock()
			time.Sleep(50 * time.Millisecond) // overlap
			mu.Lock()
			delete(held, u)
			mu.Unlock()
		})
	}
}

// TestSharedRedisUntouched checks that a test never writes to or empties the
// developer's Redis on 127.0.0.1:6379: a key placed in each of its indexes
// 1-15 before kilntest.Redis runs is still there afterwards. (make test
// also checks this around the whole suite.) Skipped when no Redis runs
// there.
func TestSharedRedisUntouched(t *testing.T) {
	if os.Getenv("KILN_TEST_REDIS_URL") != "" {
		t.Skip("KILN_TEST_REDIS_URL names the developer's own index")
	}
	ctx := context.Background()
	probe := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", MaxRetries: -1})
	if probe.Ping(ctx).Err() != nil {
		probe.Close()
		t.Skip("no Redis on 127.0.0.1:6379")
	}
	probe.Close()
	key := kilntest.Name("kiln:test:canary")
	for db := 1; db <= 15; db++ {
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: db})
		if err := c.Set(ctx, key, "keep", 10*time.Minute).Err(); err != nil {
			c.Close()
			t.Fatal(err)
		}
		c.Close()
	}
	defer func() {
		for db := 1; db <= 15; db++ {
			c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: db})
			c.Del(ctx, key)
			c.Close()
		}
	}()
	for i := 0; i < 16; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) { _ = kilntest.Redis(t) })
	}
	for db := 1; db <= 15; db++ {
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: db})
		v, err := c.Get(ctx, key).Result()
		c.Close()
		if v != "keep" {
			t.Errorf("the developer's Redis db %d lost its key (%q, %v)", db, v, err)
		}
	}
}
