package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Count adds one to key's counter, which lives until expireAt (the end of
// a quota's period, a calendar month for the tenant API), and returns the
// count after this call. One round trip; the counter is shared by every
// web dyno.
func (r *Redis) Count(ctx context.Context, key string, expireAt time.Time) (int64, error) {
	var incr *redis.IntCmd
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, keyPrefix+key)
		p.ExpireAt(ctx, keyPrefix+key, expireAt)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("ratelimit: count: %w", err)
	}
	return incr.Val(), nil
}
