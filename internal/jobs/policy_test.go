package jobs

import (
	"context"
	"errors"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestPolicyHandsOnTheDecodedID: the worker's policy reads a task's
// payload and hands the parsed add-on id to the kind's handler (which does
// not read the payload again); a malformed payload
// never reaches a handler and is not retried, and a kind no handler knows
// yet is retried. No Redis: the server's mux is driven directly.
func TestPolicyHandsOnTheDecodedID(t *testing.T) {
	const id = addon.ID("01234567-89ab-cdef-0123-456789abcdef")
	var got []addon.ID
	srv := NewServer(asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, addon.NewService(addon.Deps{}, addon.Options{}), ServerOptions{
		Handlers: map[addon.JobKind]func(context.Context, addon.ID) error{
			addon.JobGrant: func(_ context.Context, id addon.ID) error { got = append(got, id); return nil },
		},
	})
	tests := []struct {
		name, kind, payload string
		want                []addon.ID // ids the handler got
		skipRetry, notFound bool
	}{
		{"as enqueued", string(addon.JobGrant), `{"addon_id":"` + string(id) + `"}`, []addon.ID{id}, false, false},
		{"upper case", string(addon.JobGrant), `{"addon_id":"01234567-89AB-CDEF-0123-456789ABCDEF"}`, []addon.ID{id}, false, false},
		{"not a uuid", string(addon.JobGrant), `{"addon_id":"../etc"}`, nil, true, false},
		{"not JSON", string(addon.JobGrant), `addon_id=` + string(id), nil, true, false},
		{"unknown kind", "addon:future", `{"addon_id":"` + string(id) + `"}`, nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			err := srv.mux.ProcessTask(context.Background(), asynq.NewTask(tt.kind, []byte(tt.payload)))
			if len(got) != len(tt.want) || (len(got) == 1 && got[0] != tt.want[0]) {
				t.Errorf("handler got %q, want %q", got, tt.want)
			}
			if skip := errors.Is(err, asynq.SkipRetry); skip != tt.skipRetry {
				t.Errorf("err = %v; SkipRetry %v, want %v", err, skip, tt.skipRetry)
			}
			if nf := errors.Is(err, asynq.ErrHandlerNotFound); nf != tt.notFound {
				t.Errorf("err = %v; handler not found %v, want %v", err, nf, tt.notFound)
			}
			if tt.want != nil && err != nil {
				t.Errorf("err = %v, want nil", err)
			}
		})
	}
	t.Run("handler without the policy", func(t *testing.T) {
		got = nil
		h := handleTask(func(_ context.Context, id addon.ID) error { got = append(got, id); return nil })
		err := h.ProcessTask(context.Background(), asynq.NewTask(string(addon.JobGrant), []byte(`{"addon_id":"`+string(id)+`"}`)))
		if len(got) != 0 || !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("handler got %q, err %v; want no call and a refusal without retries", got, err)
		}
	})
}

// TestNewTaskDecodes: decode reads back what newTask writes, for every
// kind, under the kind as task type (TestEnqueueRouting checks the rest of
// the task through Redis).
func TestNewTaskDecodes(t *testing.T) {
	const id = addon.ID("01234567-89ab-cdef-0123-456789abcdef")
	for kind := range specs {
		t.Run(string(kind), func(t *testing.T) {
			task, err := newTask(kind, id)
			if err != nil {
				t.Fatal(err)
			}
			if task.Type() != string(kind) {
				t.Errorf("type %q, want %q", task.Type(), kind)
			}
			if got, err := decode(task.Payload()); got != id || err != nil {
				t.Errorf("decode = %q, %v; want %q", got, err, id)
			}
		})
	}
	if _, err := newTask("addon:future", id); addon.ErrorCode(err) != addon.EINTERNAL {
		t.Errorf("newTask of an unknown kind: %v, want EINTERNAL", err)
	}
}
