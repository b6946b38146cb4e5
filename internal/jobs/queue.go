package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/addon"
)

// enqueueTimeout bounds one Enqueue. The web process enqueues while Heroku
// waits for its answer (a 3 s budget); when Redis is down it must give up
// quickly and answer 202 anyway, leaving the job to the reconciler.
const enqueueTimeout = 2 * time.Second

// Queue puts add-on jobs on asynq. It implements addon.Queue; the web and the
// worker processes each hold one.
//
// Deduplication: a job's task ID is "<kind>:<addon id>", so while a task of
// that kind for that add-on is pending, scheduled, waiting to retry or
// running, enqueueing it again is a no-op that returns nil. Tasks are kept
// for no time after success (Retention 0), so the ID is free again as soon
// as a job finishes. Two consequences callers should know:
//   - An enqueue that arrives while the same job is running is absorbed by
//     the running one; a handler must therefore read its work from the
//     store when it runs, not assume the state of the enqueue time. Anything
//     it misses, the Reconciler re-enqueues.
//   - A task that ended in asynq's archive (a permanent failure, or retries
//     exhausted) would keep its ID taken for as long as the archive keeps it
//     (up to 90 days). Enqueue therefore deletes an archived task with the
//     same ID and enqueues afresh: an explicit request for the job (from
//     the domain or the Reconciler, which checks deadlines itself) wins over
//     a record of an old failure.
//
// A kind with a delay (the log stream's, see spec) is held as a scheduled
// task, so the enqueues of the next moments are deduplicated into it. That
// makes a deduplicated enqueue a common one, so telling it from an
// archived task costs one HGET (see taskState), not the inspector's
// lookup.
type Queue struct {
	shared    bool
	redis     redis.UniversalClient
	client    *asynq.Client
	inspector *asynq.Inspector
}

// NewQueue connects lazily: nothing is dialled until the first Enqueue, so a
// web process starts (and answers Heroku) even while Redis is down.
func NewQueue(r asynq.RedisConnOpt) *Queue {
	rc, shared, ok := client(r)
	if !ok {
		panic(fmt.Sprintf("jobs: unsupported asynq.RedisConnOpt %T", r))
	}
	return &Queue{
		shared:    shared,
		redis:     rc,
		client:    asynq.NewClientFromRedisClient(rc),
		inspector: asynq.NewInspectorFromRedisClient(rc),
	}
}

// Close releases the Redis connections.
func (q *Queue) Close() error {
	if q.shared {
		return nil
	}
	return q.redis.Close()
}

// Enqueue queues a job for an add-on once. An already queued job is not an
// error; Redis failures come back as EUNAVAILABLE so callers can tell
// "try later" from a bug.
func (q *Queue) Enqueue(ctx context.Context, kind addon.JobKind, addonID addon.ID) error {
	task, err := newTask(kind, addonID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, enqueueTimeout)
	defer cancel()

	id, queue := taskID(kind, addonID), specs[kind].queue
	for attempt := 0; ; attempt++ {
		_, err = q.client.EnqueueContext(ctx, task)
		if err == nil || errors.Is(err, asynq.ErrDuplicateTask) {
			return nil
		}
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			return addon.Wrap(addon.EUNAVAILABLE, err, "The job queue is unavailable.")
		}
		if attempt > 0 {
			return nil // someone else re-enqueued it between our attempts
		}
		state, err := q.taskState(ctx, queue, id)
		if err != nil {
			return addon.Wrap(addon.EUNAVAILABLE, err, "The job queue is unavailable.")
		}
		switch state {
		case "":
			// It finished between the two calls: enqueue again.
		case "archived", "completed":
			// A record of an old end (completed only with a retention,
			// which Kiln's tasks do not have): delete it, enqueue again.
			err := q.inspector.DeleteTask(queue, id)
			if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return addon.Wrap(addon.EUNAVAILABLE, fmt.Errorf("delete archived task %s: %w", id, err), "The job queue is unavailable.")
			}
		default:
			// pending, scheduled, retry or active (aggregating: grouped
			// tasks, which Kiln does not use): already queued, deduplicated.
			return nil
		}
	}
}

// taskState reads the state of the task with the given ID, "" when there
// is none, in one HGET of asynq's Redis layout: the task's hash
// asynq:{<queue>}:t:<id> and its field "state", which asynq's enqueue and
// schedule scripts write and its forwarder, processor and archiver update
// (internal/base TaskKey and internal/rdb of the asynq in go.mod;
// TestEnqueueConflict holds this to it). The inspector's GetTaskInfo
// answers the same with a SISMEMBER and a script and decodes the whole
// task, outside the caller's context.
func (q *Queue) taskState(ctx context.Context, queue, id string) (string, error) {
	state, err := q.redis.HGet(ctx, "asynq:{"+queue+"}:t:"+id, "state").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the state of task %s: %w", id, err)
	}
	return state, nil
}
