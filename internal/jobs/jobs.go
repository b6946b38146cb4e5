// Package jobs is Kiln's background-work adapter on asynq (Redis): a Queue
// that implements addon.Queue, a Server that runs the add-on pipeline's jobs
// in the worker process, and a Reconciler that re-enqueues work the queue
// lost or never got (Redis was down when Heroku called) and gives up
// provisions that outlived their deadline.
//
// Each job is one asynq task whose type is the addon.JobKind and whose
// payload is {"addon_id": "<uuid>"}; the add-on's state lives in Postgres,
// so a task carries nothing else and any copy of it is harmless.
package jobs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Queue names. The grant queue has a server of its own so an OAuth grant,
// which dies five minutes after Heroku's request, never waits behind slow
// resource work; cleanup is the low-priority share of the default server.
const (
	QueueGrant   = "grant"
	QueueDefault = "default"
	QueueCleanup = "cleanup"
	// QueueKeeper holds the keeper's best-effort jobs (syncs, webhook
	// subscriptions, log lines). It has a server and slots of its own, so
	// a slow or unreachable Heroku log drain can never take the slots that
	// provisioning needs.
	QueueKeeper = "keeper"
)

// MaxRetry is asynq's retry budget per task. It is deliberately far beyond
// what the provision deadline allows (about 1,000 retries at the 5-minute
// backoff cap is more than three days): the domain's deadline, not asynq,
// decides when to stop, because asynq's own default schedule would outlive
// Heroku's 12-hour limit and archive a task the reconciler must then revive.
const MaxRetry = 1000

// spec is how one kind of job is queued.
type spec struct {
	queue    string
	timeout  time.Duration // per attempt; asynq cancels the handler's context after it
	maxRetry int           // 0: MaxRetry
	// delay holds the task (asynq's ProcessIn) so that the enqueues of the
	// next moments are deduplicated into it; 0: it is pending at once.
	// asynq keeps the time to the second and forwards due tasks every
	// ServerOptions.PollInterval, so the task runs between delay−1 s and
	// delay+PollInterval after the first enqueue.
	delay time.Duration
}

var specs = map[addon.JobKind]spec{
	addon.JobGrant:       {queue: QueueGrant, timeout: time.Minute},
	addon.JobProvision:   {queue: QueueDefault, timeout: 10 * time.Minute},
	addon.JobPlanChange:  {queue: QueueDefault, timeout: 10 * time.Minute},
	addon.JobDeprovision: {queue: QueueCleanup, timeout: 10 * time.Minute},
	addon.JobPushConfig:  {queue: QueueDefault, timeout: time.Minute},
	// The keeper's jobs (issue 14), on their own queue and server. Syncs and
	// subscriptions come back by their sweep, so a few retries suffice; log
	// lines are best effort (bounded retries, never blocking anything) and
	// coalesced: the one kind held before it runs (addon.LogDelay), so the
	// milestones of one provision, recorded within a second or two, are
	// written by one job.
	addon.JobSync:      {queue: QueueKeeper, timeout: time.Minute, maxRetry: 5},
	addon.JobSubscribe: {queue: QueueKeeper, timeout: time.Minute, maxRetry: 10},
	addon.JobLog:       {queue: QueueKeeper, timeout: time.Minute, maxRetry: 3, delay: addon.LogDelay},
	addon.JobRetire:    {queue: QueueCleanup, timeout: 5 * time.Minute},
}

// payload is the body of every task.
type payload struct {
	AddonID addon.ID `json:"addon_id"`
}

// newTask is the asynq task of a job (asynq's NewXTask, one for every
// kind: they differ only in their spec): type the kind, payload the add-on
// id, on the kind's queue with its timeout, retries and delay, under the
// task id that deduplicates it. Queued tasks and outside rigs read these,
// so none may change. decode reads the payload back.
func newTask(kind addon.JobKind, id addon.ID) (*asynq.Task, error) {
	s, ok := specs[kind]
	if !ok {
		return nil, addon.Errorf(addon.EINTERNAL, "Unknown job kind %q.", kind)
	}
	body, err := json.Marshal(payload{AddonID: id})
	if err != nil {
		return nil, addon.Wrap(addon.EINTERNAL, err, "Cannot encode job %s.", kind)
	}
	retries := MaxRetry
	if s.maxRetry > 0 {
		retries = s.maxRetry
	}
	opts := []asynq.Option{
		asynq.TaskID(taskID(kind, id)),
		asynq.Queue(s.queue),
		asynq.Timeout(s.timeout),
		asynq.MaxRetry(retries),
		asynq.Retention(0),
	}
	if s.delay > 0 {
		// Reckoned from the enqueue, not from here: asynq applies a
		// task's options when it is enqueued.
		opts = append(opts, asynq.ProcessIn(s.delay))
	}
	return asynq.NewTask(string(kind), body, opts...), nil
}

// taskID is the asynq task ID of a job: one per kind and add-on, which is
// what makes enqueueing idempotent. An addon.ID is lower-cased already
// (ParseID), so a caller's upper-case spelling cannot slip past the dedup.
func taskID(kind addon.JobKind, id addon.ID) string {
	return string(kind) + ":" + string(id)
}

// decode reads a task payload, the edge where a job's add-on id enters
// Kiln: anything that is not an add-on id is refused. The worker calls it
// once per task, in its policy (see Server).
func decode(b []byte) (addon.ID, error) {
	var p struct {
		AddonID string `json:"addon_id"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return "", fmt.Errorf("decode task payload: %w", err)
	}
	id, err := addon.ParseID(p.AddonID)
	if err != nil {
		return "", fmt.Errorf("task payload has no valid addon_id: %w", err)
	}
	return id, nil
}
