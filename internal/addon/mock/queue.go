package mock

import (
	"context"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.Queue = (*Queue)(nil)

// Queue is the job queue answering through EnqueueFn, so a test sees which
// job the service asked for next, or makes Redis be down.
type Queue struct {
	EnqueueFn func(ctx context.Context, kind addon.JobKind, id addon.ID) error
}

// Enqueue calls EnqueueFn.
func (q *Queue) Enqueue(ctx context.Context, kind addon.JobKind, id addon.ID) error {
	if q.EnqueueFn == nil {
		panic(unset("Enqueue"))
	}
	return q.EnqueueFn(ctx, kind, id)
}
