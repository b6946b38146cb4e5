// Package ratelimit keeps token buckets in Redis, so a rate limit holds for
// a caller however many web dynos Heroku's router spreads its requests
// over. Each bucket is one Redis hash updated by a Lua script, atomically,
// on Redis's own clock (dynos' clocks may disagree).
//
// It implements the web package's Buckets interface through plain types
// (the adapters never import each other); cmd/web wires it.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyPrefix namespaces the buckets in the Redis database Kiln shares with
// its job queues.
const keyPrefix = "kiln:ratelimit:"

// take is the token bucket: refill by elapsed time (Redis TIME) up to the
// burst, take cost tokens (one, or none to only look) if there is one, keep
// the bucket only as long as it takes to refill (a full bucket is the same
// as no bucket). It answers {allowed, remaining, seconds until a token is
// back}.
var take = redis.NewScript(`
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3] or '1')
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1)
local wait = 0
if allowed == 0 then
  wait = (1 - tokens) / rate
end
return {allowed, math.floor(tokens), tostring(wait)}
`)

// Redis is a set of token buckets in Redis. It is safe for concurrent use.
type Redis struct {
	rdb redis.UniversalClient
}

// New keeps buckets in rdb's database.
func New(rdb redis.UniversalClient) *Redis {
	return &Redis{rdb: rdb}
}

// Take takes one token from key's bucket, which holds burst tokens at most
// and refills at perMinute tokens a minute. ok is false when the bucket is
// empty; remaining is what is left after this call; wait is how long until
// a token is back (zero when ok). Errors (Redis down) are returned as they
// are: the caller decides whether to fail open.
func (r *Redis) Take(ctx context.Context, key string, burst int, perMinute float64) (remaining int, wait time.Duration, ok bool, err error) {
	return r.run(ctx, key, burst, perMinute, 1)
}

// Peek is Take without taking: ok says whether key's bucket holds a token.
// A guessing limit peeks for callers that present the right password, so
// they are refused while their address is locked out without using up the
// bucket themselves.
func (r *Redis) Peek(ctx context.Context, key string, burst int, perMinute float64) (wait time.Duration, ok bool, err error) {
	_, wait, ok, err = r.run(ctx, key, burst, perMinute, 0)
	return wait, ok, err
}

func (r *Redis) run(ctx context.Context, key string, burst int, perMinute float64, cost int) (remaining int, wait time.Duration, ok bool, err error) {
	if burst < 1 || perMinute <= 0 {
		return 0, 0, false, fmt.Errorf("ratelimit: a bucket needs burst >= 1 and a positive refill, got %d and %v", burst, perMinute)
	}
	res, err := take.Run(ctx, r.rdb, []string{keyPrefix + key}, burst, strconv.FormatFloat(perMinute/60, 'g', -1, 64), cost).Slice()
	if err != nil {
		return 0, 0, false, fmt.Errorf("ratelimit: take a token: %w", err)
	}
	if len(res) != 3 {
		return 0, 0, false, fmt.Errorf("ratelimit: unexpected answer %v", res)
	}
	allowed, _ := res[0].(int64)
	left, _ := res[1].(int64)
	ws, _ := res[2].(string)
	secs, err := strconv.ParseFloat(ws, 64)
	if err != nil {
		return 0, 0, false, fmt.Errorf("ratelimit: unexpected wait %q: %w", ws, err)
	}
	return int(left), time.Duration(math.Ceil(secs * float64(time.Second))), allowed == 1, nil
}
