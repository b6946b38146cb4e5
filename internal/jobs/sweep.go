package jobs

import (
	"context"
	"log/slog"
	"time"
)

// RunSweep calls sweep every interval until ctx ends: the keeper's sweep
// (addon.Keeper.Sweep), which enqueues due syncs, missing webhook
// subscriptions, log-stream backlogs and credential revocations, and the
// reconciler's outbox sweep. Every worker dyno runs them; enqueueing
// deduplicates, so overlapping sweeps only cost a query each. A failed
// sweep is logged (log names which) and tried again next tick.
func RunSweep(ctx context.Context, interval time.Duration, sweep func(context.Context) error, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, max(interval, 30*time.Second))
		if err := sweep(sctx); err != nil && ctx.Err() == nil {
			log.Warn("sweep failed; next tick retries", "err", err)
		}
		cancel()
	}
}
