package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/jobs"
	"github.com/kiln-dev/kiln/internal/kilntest"
)

// redisOpt leases a Redis database for the test.
func redisOpt(tb testing.TB) asynq.RedisConnOpt {
	tb.Helper()
	r, err := asynq.ParseRedisURI(kilntest.Redis(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func newQueue(tb testing.TB, r asynq.RedisConnOpt) *jobs.Queue {
	tb.Helper()
	q := jobs.NewQueue(r)
	tb.Cleanup(func() { q.Close() })
	return q
}

func newInspector(tb testing.TB, r asynq.RedisConnOpt) *asynq.Inspector {
	tb.Helper()
	in := asynq.NewInspector(r)
	tb.Cleanup(func() { in.Close() })
	return in
}

func pending(tb testing.TB, in *asynq.Inspector, queue string) []*asynq.TaskInfo {
	tb.Helper()
	tasks, err := in.ListPendingTasks(queue)
	if err != nil {
		tb.Fatalf("list pending tasks of %s: %v", queue, err)
	}
	return tasks
}

func TestEnqueueRouting(t *testing.T) {
	r := redisOpt(t)
	q, in := newQueue(t, r), newInspector(t, r)
	tests := []struct {
		kind     addon.JobKind
		queue    string
		timeout  time.Duration
		maxRetry int           // 0: at least 100, bounded by the provision deadline instead
		delay    time.Duration // 0: pending at once
	}{
		{addon.JobGrant, "grant", time.Minute, 0, 0},
		{addon.JobProvision, "default", 10 * time.Minute, 0, 0},
		{addon.JobPlanChange, "default", 10 * time.Minute, 0, 0},
		{addon.JobDeprovision, "cleanup", 10 * time.Minute, 0, 0},
		{addon.JobPushConfig, "default", time.Minute, 0, 0},
		// The keeper's best-effort jobs have their own queue and server,
		// so a hanging log drain cannot take provisioning's slots.
		// They are best effort: a few retries, then their sweep. Log
		// lines alone are held, so one job writes a provision's lines.
		{addon.JobSync, "keeper", time.Minute, 5, 0},
		{addon.JobSubscribe, "keeper", time.Minute, 10, 0},
		{addon.JobLog, "keeper", time.Minute, 3, addon.LogDelay},
		{addon.JobRetire, "cleanup", 5 * time.Minute, 0, 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			id := addon.ID(uuid.NewString())
			before := time.Now()
			if err := q.Enqueue(context.Background(), tt.kind, id); err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			after := time.Now()
			info, err := in.GetTaskInfo(tt.queue, string(tt.kind)+":"+string(id))
			if err != nil {
				t.Fatalf("task not found in queue %q: %v", tt.queue, err)
			}
			if info.Type != string(tt.kind) {
				t.Errorf("task type = %q, want %q", info.Type, tt.kind)
			}
			var p map[string]string
			if err := json.Unmarshal(info.Payload, &p); err != nil || len(p) != 1 || p["addon_id"] != string(id) {
				t.Errorf("payload = %s, want {\"addon_id\": %q}", info.Payload, id)
			}
			if info.Timeout != tt.timeout {
				t.Errorf("timeout = %v, want %v", info.Timeout, tt.timeout)
			}
			switch {
			case tt.maxRetry != 0 && info.MaxRetry != tt.maxRetry:
				t.Errorf("max retry = %d, want %d", info.MaxRetry, tt.maxRetry)
			case tt.maxRetry == 0 && info.MaxRetry < 100:
				t.Errorf("max retry = %d: the provision deadline, not asynq, must bound retries", info.MaxRetry)
			}
			if info.Retention != 0 {
				t.Errorf("retention = %v, want 0 (a finished job must free its task ID)", info.Retention)
			}
			if tt.delay == 0 {
				if info.State != asynq.TaskStatePending {
					t.Errorf("state = %v, want pending", info.State)
				}
				return
			}
			// asynq keeps the process time to the second.
			earliest, latest := before.Add(tt.delay-time.Second), after.Add(tt.delay)
			if info.State != asynq.TaskStateScheduled || info.NextProcessAt.Before(earliest) || info.NextProcessAt.After(latest) {
				t.Errorf("state %v, to run at %v; want scheduled between %v and %v", info.State, info.NextProcessAt, earliest, latest)
			}
		})
	}
}

// countingQueue is a queue over a Redis client of its own that records
// the commands it sends, and an inspector on the same database.
func countingQueue(tb testing.TB) (*jobs.Queue, *asynq.Inspector, *commands) {
	tb.Helper()
	opt, err := redis.ParseURL(kilntest.Redis(tb))
	if err != nil {
		tb.Fatal(err)
	}
	c := redis.NewClient(opt)
	tb.Cleanup(func() { c.Close() })
	cmds := &commands{}
	c.AddHook(cmds)
	return newQueue(tb, jobs.SharedRedis{Client: c}), newInspector(tb, jobs.SharedRedis{Client: c}), cmds
}

// commands is a go-redis hook that records the names of the commands sent.
type commands struct {
	mu    sync.Mutex
	names []string
}

func (c *commands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.mu.Lock()
		c.names = append(c.names, cmd.Name())
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (c *commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.mu.Lock()
		for _, cmd := range cmds {
			c.names = append(c.names, cmd.Name())
		}
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

// take returns the commands recorded since the last take, a script's
// first run on the server (EVALSHA refused, then EVAL) counted as one
// EVALSHA: the scripts are loaded once per server, whichever test is first.
func (c *commands) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for i, n := range c.names {
		if n == "eval" && i > 0 && c.names[i-1] == "evalsha" {
			continue
		}
		out = append(out, n)
	}
	c.names = nil
	return out
}

// TestEnqueueConflict: an enqueue whose task id is taken is told apart by
// the task's state in one HGET: a task that is waiting (scheduled, as the
// log job is while it coalesces, or pending) is the same job, and the
// enqueue costs the refused script and that HGET; an archived one is
// deleted and enqueued afresh. The commands pin the asynq Redis layout
// Queue.taskState reads to the asynq in go.mod.
func TestEnqueueConflict(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		kind   addon.JobKind
		queue  string
		before func(in *asynq.Inspector, queue, tid string) error // after the first enqueue
		state  asynq.TaskState                                    // after the second
		kept   bool                                               // the first task's process time kept
		cmds   string                                             // the second enqueue's commands
	}{
		{name: "the log job waiting: deduplicated into it", kind: addon.JobLog, queue: "keeper",
			state: asynq.TaskStateScheduled, kept: true, cmds: "[evalsha hget]"},
		{name: "a pending job: deduplicated", kind: addon.JobProvision, queue: "default",
			state: asynq.TaskStatePending, cmds: "[evalsha hget]"},
		{name: "an archived log job: revived, and held again", kind: addon.JobLog, queue: "keeper",
			before: func(in *asynq.Inspector, queue, tid string) error { return in.ArchiveTask(queue, tid) },
			state:  asynq.TaskStateScheduled, cmds: "[evalsha hget sismember evalsha evalsha]"},
		{name: "an archived job: revived", kind: addon.JobProvision, queue: "default",
			before: func(in *asynq.Inspector, queue, tid string) error { return in.ArchiveTask(queue, tid) },
			state:  asynq.TaskStatePending, cmds: "[evalsha hget sismember evalsha evalsha]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, in, cmds := countingQueue(t)
			id := addon.ID(uuid.NewString())
			tid := string(tt.kind) + ":" + string(id)
			if err := q.Enqueue(ctx, tt.kind, id); err != nil {
				t.Fatal(err)
			}
			first, err := in.GetTaskInfo(tt.queue, tid)
			if err != nil {
				t.Fatal(err)
			}
			if tt.before != nil {
				if err := tt.before(in, tt.queue, tid); err != nil {
					t.Fatal(err)
				}
			}
			if tt.kind == addon.JobLog {
				time.Sleep(time.Second) // a second enqueue in another second
			}
			cmds.take()
			if err := q.Enqueue(ctx, tt.kind, id); err != nil {
				t.Fatalf("second Enqueue: %v", err)
			}
			if got := fmt.Sprint(cmds.take()); got != tt.cmds {
				t.Errorf("the second enqueue sent %s, want %s", got, tt.cmds)
			}
			info, err := in.GetTaskInfo(tt.queue, tid)
			if err != nil {
				t.Fatal(err)
			}
			if info.State != tt.state {
				t.Errorf("state = %v, want %v", info.State, tt.state)
			}
			if tt.state == asynq.TaskStateScheduled && info.NextProcessAt.Equal(first.NextProcessAt) != tt.kept {
				t.Errorf("to run at %v after the second enqueue, first at %v; want it kept: %v", info.NextProcessAt, first.NextProcessAt, tt.kept)
			}
			if n, err := in.GetQueueInfo(tt.queue); err != nil || n.Size != 1 {
				t.Errorf("queue %s holds %+v, %v; want the one task", tt.queue, n, err)
			}
		})
	}
}

// TestEnqueueWhileRunning: the log job held by its delay runs once asynq
// forwards it; an enqueue while it runs is absorbed by it (the keeper's
// sweep finds what it did not write), and once it is done the next
// enqueue holds a new one.
func TestEnqueueWhileRunning(t *testing.T) {
	ctx := context.Background()
	r := redisOpt(t)
	q, in := newQueue(t, r), newInspector(t, r)
	id := addon.ID(uuid.NewString())
	tid := string(addon.JobLog) + ":" + string(id)

	running, release := make(chan struct{}), make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc(string(addon.JobLog), func(ctx context.Context, t *asynq.Task) error {
		running <- struct{}{}
		<-release
		return nil
	})
	srv := asynq.NewServer(r, asynq.Config{
		Concurrency:              1,
		Queues:                   map[string]int{jobs.QueueKeeper: 1},
		TaskCheckInterval:        50 * time.Millisecond,
		DelayedTaskCheckInterval: 50 * time.Millisecond,
		LogLevel:                 asynq.FatalLevel,
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	start := time.Now()
	if err := q.Enqueue(ctx, addon.JobLog, id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-running:
	case <-time.After(wait):
		t.Fatal("the log job never ran")
	}
	if waited := time.Since(start); waited < addon.LogDelay-time.Second {
		t.Errorf("the log job ran after %v, want it held about %v", waited, addon.LogDelay)
	}
	if err := q.Enqueue(ctx, addon.JobLog, id); err != nil {
		t.Fatalf("Enqueue while the job runs: %v", err)
	}
	if info, err := in.GetTaskInfo(jobs.QueueKeeper, tid); err != nil || info.State != asynq.TaskStateActive {
		t.Fatalf("while it runs: %+v, %v; want the one active task", info, err)
	}
	close(release)
	eventually(t, "the job done", func() bool {
		_, err := in.GetTaskInfo(jobs.QueueKeeper, tid)
		return errors.Is(err, asynq.ErrTaskNotFound)
	})
	if err := q.Enqueue(ctx, addon.JobLog, id); err != nil {
		t.Fatal(err)
	}
	if info, err := in.GetTaskInfo(jobs.QueueKeeper, tid); err != nil || info.State != asynq.TaskStateScheduled {
		t.Errorf("after the job: %+v, %v; want a new scheduled task", info, err)
	}
}

func TestEnqueueDeduplicates(t *testing.T) {
	ctx := context.Background()
	r := redisOpt(t)
	q, in := newQueue(t, r), newInspector(t, r)
	id, other := addon.ID(uuid.NewString()), addon.ID(uuid.NewString())

	for range 3 {
		if err := q.Enqueue(ctx, addon.JobProvision, id); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	if err := q.Enqueue(ctx, addon.JobProvision, other); err != nil {
		t.Fatalf("Enqueue other add-on: %v", err)
	}
	if err := q.Enqueue(ctx, addon.JobGrant, id); err != nil {
		t.Fatalf("Enqueue grant: %v", err)
	}
	byAddon := map[addon.ID]int{}
	for _, ti := range pending(t, in, "default") {
		var p struct {
			AddonID addon.ID `json:"addon_id"`
		}
		_ = json.Unmarshal(ti.Payload, &p)
		byAddon[p.AddonID]++
	}
	if byAddon[id] != 1 || byAddon[other] != 1 || len(byAddon) != 2 {
		t.Errorf("pending provision tasks per add-on = %v, want one each for %s and %s", byAddon, id, other)
	}
	if n := len(pending(t, in, "grant")); n != 1 {
		t.Errorf("pending grant tasks = %d, want 1 (another kind is another job)", n)
	}
}

// TestEnqueueUpperCaseUUID: Heroku's uuid in another spelling is the same
// job: parsed at the edge (addon.ParseID), every spelling enqueues the one
// task whose id (and payload) carry the lower-cased uuid.
func TestEnqueueUpperCaseUUID(t *testing.T) {
	ctx := context.Background()
	r := redisOpt(t)
	q, in := newQueue(t, r), newInspector(t, r)
	id := uuid.NewString()
	for _, spelling := range []string{strings.ToUpper(id), id, strings.ToUpper(id[:8]) + id[8:]} {
		parsed, err := addon.ParseID(spelling)
		if err != nil {
			t.Fatalf("ParseID(%s): %v", spelling, err)
		}
		if err := q.Enqueue(ctx, addon.JobProvision, parsed); err != nil {
			t.Fatalf("Enqueue(%s): %v", spelling, err)
		}
	}
	tasks := pending(t, in, "default")
	if len(tasks) != 1 || tasks[0].ID != string(addon.JobProvision)+":"+string(id) {
		ids := []string{}
		for _, ti := range tasks {
			ids = append(ids, ti.ID)
		}
		t.Fatalf("pending tasks %v, want one with the lower-case id", ids)
	}
	if !strings.Contains(string(tasks[0].Payload), id) {
		t.Errorf("payload %s does not carry the lower-case id", tasks[0].Payload)
	}
}

// TestEnqueueRevivesArchived: an archived task keeps its ID taken; a new
// request for the job must not be swallowed by that old record.
func TestEnqueueRevivesArchived(t *testing.T) {
	ctx := context.Background()
	r := redisOpt(t)
	q, in := newQueue(t, r), newInspector(t, r)
	id := addon.ID(uuid.NewString())
	tid := string(addon.JobProvision) + ":" + string(id)

	if err := q.Enqueue(ctx, addon.JobProvision, id); err != nil {
		t.Fatal(err)
	}
	if err := in.ArchiveTask("default", tid); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, addon.JobProvision, id); err != nil {
		t.Fatalf("Enqueue over an archived task: %v", err)
	}
	info, err := in.GetTaskInfo("default", tid)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != asynq.TaskStatePending {
		t.Errorf("state = %v, want pending", info.State)
	}
}

func TestEnqueueRedisDown(t *testing.T) {
	q := newQueue(t, asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	err := q.Enqueue(context.Background(), addon.JobGrant, addon.ID(uuid.NewString()))
	if code := addon.ErrorCode(err); code != addon.EUNAVAILABLE {
		t.Fatalf("Enqueue with Redis down: code %q (%v), want %q", code, err, addon.EUNAVAILABLE)
	}
}
