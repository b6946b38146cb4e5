package addon

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// NextSync is when an add-on is next compared with Heroku after t: every
// add-on has a fixed phase within the interval (a hash of its id), so a
// fleet of any size is spread evenly over the interval instead of bursting
// at Heroku's rate limit every hour.
func NextSync(id ID, t time.Time, interval time.Duration) time.Time {
	if interval <= 0 {
		return time.Time{}
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	phase := time.Duration(h.Sum64() % uint64(interval))
	// The next instant after t that is phase past a multiple of interval.
	base := t.Truncate(interval).Add(phase)
	if !base.After(t) {
		base = base.Add(interval)
	}
	return base
}

// Sync compares the add-on with Heroku's record (GET /addons/{id}, with the
// add-on's own token) and acts on the difference:
//   - the app's id and name and Heroku's state are recorded;
//   - an add-on Heroku has deprovisioned, or answers 404 for, is
//     deprovisioned here too (its resource destroyed), with the reason
//     "removed on Heroku";
//   - a refused token is recorded for operators (and alerted), never a
//     reason to destroy anything: the customer may re-authorize.
//
// The network call happens outside any transaction; the result is recorded
// afterwards, re-checking the add-on's state.
func (k *Keeper) Sync(ctx context.Context, id ID) error {
	if k.Watcher == nil {
		return nil
	}
	var info HerokuAddon
	live := false
	// The add-on's one writer for the call: a refreshed token is saved
	// under the claim.
	err := k.Service.Exclusive(ctx, id, 0, func(ctx context.Context, c *Claim) error {
		a := c.Addon()
		if a.State != StateProvisioned || a.Tokens == nil {
			return nil
		}
		live = true
		return k.Service.withToken(ctx, c, func(token string) error {
			var err error
			info, err = k.Watcher.GetAddon(ctx, token, id)
			return err
		})
	})
	if err == nil && !live {
		return nil
	}
	if IsBusy(err) {
		return err // another writer holds it: retried shortly
	}
	now := k.now()
	next := NextSync(id, now, k.SyncInterval)
	switch {
	case err == nil:
		if _, err := k.Links.UpdateLink(ctx, id, func(l *Link) error {
			l.AppID, l.AppName, l.HerokuState = info.AppID, info.AppName, info.State
			l.SyncedAt, l.NextSyncAt = now, next
			l.AccessRefused, l.AccessRefusedAt = "", time.Time{}
			return nil
		}); err != nil {
			return err
		}
		if info.State == string(StateDeprovisioned) {
			return k.removedOnHeroku(ctx, id, "Heroku reports the add-on deprovisioned")
		}
		return nil
	case ErrorCode(err) == ENOTFOUND:
		if _, err := k.Links.UpdateLink(ctx, id, func(l *Link) error {
			l.HerokuState, l.SyncedAt, l.NextSyncAt = "not found", now, next
			return nil
		}); err != nil {
			return err
		}
		return k.removedOnHeroku(ctx, id, "Heroku answers 404 for the add-on")
	case Transient(err):
		return fmt.Errorf("sync with Heroku: %w", err)
	}
	// Refused: the authorization was revoked, or the token no longer has
	// access. Flag it; keep everything.
	msg := ErrorMessage(err)
	if _, uerr := k.Links.UpdateLink(ctx, id, func(l *Link) error {
		if l.AccessRefusedAt.IsZero() {
			l.AccessRefusedAt = now
		}
		l.AccessRefused, l.NextSyncAt = msg, next
		return nil
	}); uerr != nil {
		return uerr
	}
	k.log().ErrorContext(ctx, "Heroku refused the add-on's token; flagged for operators, nothing destroyed",
		"addon", id, "code", ErrorCode(err), "err", err)
	if k.AccessRefused != nil {
		k.AccessRefused(id)
	}
	return nil
}

// removedOnHeroku deprovisions an add-on Heroku no longer has: it moves to
// deprovisioning with the reason ReasonRemovedOnHeroku and the usual job
// destroys its resource.
func (k *Keeper) removedOnHeroku(ctx context.Context, id ID, detail string) error {
	a, err := k.Service.store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if a.State != StateProvisioned {
			return nil
		}
		a.Note(k.now(), "sync", detail)
		return a.Transition(k.now(), StateDeprovisioning, ReasonRemovedOnHeroku)
	})
	if err != nil {
		return err
	}
	if a.State == StateDeprovisioning {
		k.log().WarnContext(ctx, "add-on removed on Heroku; deprovisioning it", "addon", id, "detail", detail)
		k.Service.handOn(ctx, a)
	}
	return nil
}

// logBacklogWindow is how far back the sweep looks for log lines whose job
// was absorbed or lost: the common case is seconds; a longer outage of the
// job queue costs lines, never provisioning.
const logBacklogWindow = 15 * time.Minute

// logSettle is how old a milestone must be before the sweep looks for it.
// Its own job starts within LogDelay and a second more (the jobs adapter
// keeps the time to the second and forwards due tasks every second) and
// writes it; a sweep before then would only re-enqueue a job that is
// already waiting, a deduplicated round trip to Redis for every add-on
// being provisioned. Two seconds more are for the job's own run. After
// it, the sweep finds what is left: a line recorded while its job was
// running (the enqueue was absorbed, and the job had already read the
// events) or whose enqueue was lost.
const logSettle = LogDelay + 3*time.Second

// webhookMemory is how long applied webhook event ids are remembered:
// far beyond Heroku's retries of a delivery.
const webhookMemory = 7 * 24 * time.Hour

// sweepLimit bounds how many add-ons one sweep looks at per kind of work.
const sweepLimit = 500

// Sweep enqueues the keeper's due work: syncs whose time has come,
// subscriptions that are missing (a failed or lost job), credentials whose
// grace ended. The worker runs it every SweepInterval; enqueueing
// deduplicates, so overlapping sweeps on several dynos are harmless.
func (k *Keeper) Sweep(ctx context.Context) error {
	now := k.now()
	if k.Logs != nil {
		// Lines whose enqueue was absorbed by a running job (or lost).
		ids, err := k.Links.LogBacklog(ctx, now.Add(-logBacklogWindow), now.Add(-logSettle), sweepLimit)
		if err != nil {
			return err
		}
		for _, id := range ids {
			k.enqueue(ctx, JobLog, id)
		}
	}
	// Credentials whose grace ended (a partial index: cheap every tick).
	ids, err := k.Links.DueForRetire(ctx, now, sweepLimit)
	if err != nil {
		return err
	}
	for _, id := range ids {
		k.enqueue(ctx, JobRetire, id)
	}
	// The rest scans every live add-on: at most every tenth of the sync
	// interval (and at least every minute).
	slow := min(max(k.SyncInterval/10, time.Second), time.Minute)
	k.mu.Lock()
	due := now.Sub(k.lastSweep) >= slow
	if due {
		k.lastSweep = now
	}
	k.mu.Unlock()
	if !due {
		return nil
	}
	// One add-on whose link cannot be read (sealed with a key no longer
	// in ENCRYPTION_KEY, say) must not hold up every sync and
	// subscription behind it: it is logged and skipped, and its error
	// returned with the rest.
	var errs []error
	if k.Watcher != nil && k.SyncInterval > 0 {
		ids, err := k.Links.DueForSync(ctx, now, sweepLimit)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := k.syncDue(ctx, id, now); err != nil {
				k.log().ErrorContext(ctx, "sync sweep skipped an add-on", "addon", id, "err", err)
				errs = append(errs, fmt.Errorf("sync of %s: %w", id, err))
			}
		}
	}
	if err := k.Links.PruneEvents(ctx, now.Add(-webhookMemory)); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if k.Watcher != nil && k.WebhookURL != "" {
		ids, err := k.Links.Unsubscribed(ctx, now.Add(-time.Minute), now.Add(-subscribeRetry), sweepLimit)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, id := range ids {
			k.enqueue(ctx, JobSubscribe, id)
		}
	}
	return errors.Join(errs...)
}

// syncDue enqueues the sync of an add-on whose slot has come, or, at
// first sight of it, gives it its slot rather than syncing at once, so a
// deploy does not sync the fleet.
func (k *Keeper) syncDue(ctx context.Context, id ID, now time.Time) error {
	l, err := k.Links.Link(ctx, id)
	if err != nil {
		return err
	}
	if !l.NextSyncAt.IsZero() {
		k.enqueue(ctx, JobSync, id)
		return nil
	}
	_, err = k.Links.UpdateLink(ctx, id, func(l *Link) error {
		if l.NextSyncAt.IsZero() {
			l.NextSyncAt = NextSync(id, now, k.SyncInterval)
		}
		return nil
	})
	return err
}

// SweepInterval is how often the worker should call Sweep: often enough
// that each add-on's sync slot is honoured to within a tenth of the
// interval, and log lines whose job was absorbed by a running one wait at
// most logSettle, this interval and LogDelay (about 13 s at worst with the
// hourly sync); at least every second.
func (k *Keeper) SweepInterval() time.Duration {
	d := k.SyncInterval / 10
	return min(max(d, time.Second), 5*time.Second)
}
