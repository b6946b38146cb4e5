package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/ratelimit"
)

func TestCountIsSharedAndExpires(t *testing.T) {
	url := kilntest.Redis(t)
	ctx := context.Background()
	a, b := ratelimit.New(client(t, url)), ratelimit.New(client(t, url))
	end := time.Now().Add(time.Hour)
	for i, r := range []*ratelimit.Redis{a, b, a} {
		n, err := r.Count(ctx, "tenant:month:x", end)
		if err != nil || n != int64(i+1) {
			t.Fatalf("count %d = %d, %v", i+1, n, err)
		}
	}
	ttl, err := client(t, url).TTL(ctx, "kiln:ratelimit:tenant:month:x").Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("ttl = %v, %v; want about an hour", ttl, err)
	}
}
