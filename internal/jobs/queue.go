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
		revived, err := q.dropArchived(queue, id)
		if err != nil {
			return addon.Wrap(addon.EUNAVAILABLE, err, "The job queue is unavailable.")
		}
		if !revived {
			return nil // already queued: deduplicated
		}
	}
}

// dropArchived deletes the task with the given ID if it sits in the archive,
// and reports whether it did (so the caller enqueues again).
func (q *Queue) dropArchived(queue, id string) (bool, error) {
	info, err := q.inspector.GetTaskInfo(queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return true, nil // it finished meanwhile: enqueue again
	case err != nil:
		return false, fmt.Errorf("inspect task %s: %w", id, err)
	case info.State != asynq.TaskStateArchived:
		return false, nil
	}
	err = q.inspector.DeleteTask(queue, id)
	if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return false, fmt.Errorf("delete archived task %s: %w", id, err)
	}
	return true, nil
}
