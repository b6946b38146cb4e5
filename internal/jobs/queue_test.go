package jobs_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

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
		maxRetry int // 0: at least 100, bounded by the provision deadline instead
	}{
		{addon.JobGrant, "grant", time.Minute, 0},
		{addon.JobProvision, "default", 10 * time.Minute, 0},
		{addon.JobPlanChange, "default", 10 * time.Minute, 0},
		{addon.JobDeprovision, "cleanup", 10 * time.Minute, 0},
		// The keeper's best-effort jobs have their own queue and server,
		// so a hanging log drain cannot take provisioning's slots.
		// They are best effort: a few retries, then their sweep.
		{addon.JobSync, "keeper", time.Minute, 5},
		{addon.JobSubscribe, "keeper", time.Minute, 10},
		{addon.JobLog, "keeper", time.Minute, 3},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			id := addon.ID(uuid.NewString())
			if err := q.Enqueue(context.Background(), tt.kind, id); err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
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
			if info.State != asynq.TaskStatePending {
				t.Errorf("state = %v, want pending", info.State)
			}
		})
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
