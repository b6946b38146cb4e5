package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// cancelChannel is the Redis channel every asynq server subscribes to for
// task cancellations (asynq's internal base.CancelChannel).
const cancelChannel = "asynq:cancel"

// cancelCheckTimeout bounds checkCancelChannel, so a Redis that does not
// answer delays a worker's start by no more than this.
const cancelCheckTimeout = 3 * time.Second

// checkCancelChannel subscribes to asynq's cancellation channel once, as
// each asynq server is about to, and says whether Redis refuses it. asynq
// (v0.26, rdb.CancelationPubSub) retries a refused subscription every 5 s
// per server without closing the connection it opened for it, so a Redis
// user whose ACL does not allow the channel (Redis 7 gives a new ACL user no
// channels unless told) would cost a connection every few seconds until
// the plan's limit turns away every dyno. Such a refusal (NOPERM) stops
// the worker at start, saying what to grant. Anything else (Redis not
// answering yet, a failover) is left to asynq's retries: a dial that
// fails leaves no connection behind.
func checkCancelChannel(ctx context.Context, r asynq.RedisConnOpt) error {
	c, shared, ok := client(r)
	if !ok {
		return nil
	}
	if !shared {
		defer c.Close()
	}
	ctx, cancel := context.WithTimeout(ctx, cancelCheckTimeout)
	defer cancel()
	sub := c.Subscribe(ctx, cancelChannel)
	defer sub.Close()
	_, err := sub.Receive(ctx)
	var reply redis.Error
	if !errors.As(err, &reply) || !strings.HasPrefix(reply.Error(), "NOPERM") {
		return nil
	}
	if strings.Contains(reply.Error(), "channel") {
		return fmt.Errorf("jobs: Redis refuses this user a subscription to %q, which every asynq server needs "+
			"(and asynq would leak a connection retrying it every 5 s): allow the channel in the user's ACL "+
			"(ACL SETUSER <user> &%s, or allchannels): %w", cancelChannel, cancelChannel, err)
	}
	return fmt.Errorf("jobs: Redis refuses this user a command every asynq server needs to subscribe to %q "+
		"(and asynq would leak a connection retrying it every 5 s): check the user's ACL (+@all, ~*, &%s): %w",
		cancelChannel, cancelChannel, err)
}
