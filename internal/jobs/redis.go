package jobs

import (
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// SharedRedis is an asynq.RedisConnOpt that hands every user the same
// go-redis client, so a process's Redis connections are one pool with one
// size (REDIS_POOL_SIZE) instead of a pool per asynq server, inspector and
// lock, each sized 10 × GOMAXPROCS by default. Whoever built the client
// closes it; the users in this package leave it open.
type SharedRedis struct{ Client redis.UniversalClient }

// MakeRedisClient returns the shared client.
func (s SharedRedis) MakeRedisClient() any { return s.Client }

// client returns r's client and whether it is shared (not to be closed).
func client(r asynq.RedisConnOpt) (redis.UniversalClient, bool, bool) {
	if s, ok := r.(SharedRedis); ok {
		return s.Client, true, true
	}
	c, ok := r.MakeRedisClient().(redis.UniversalClient)
	return c, false, ok
}
