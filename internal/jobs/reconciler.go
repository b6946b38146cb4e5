package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/addon"
)

// ReconcilerOptions tunes the Reconciler. Zero values take the defaults.
type ReconcilerOptions struct {
	// Interval between sweeps. Default 30 s.
	Interval time.Duration
	// StaleAfter is how long an unfinished add-on may go without an update
	// before a sweep looks at it; younger ones are left to the jobs already
	// working on them. Default 2 min.
	StaleAfter time.Duration
	// Limit caps the add-ons one sweep looks at (oldest first). Default 500.
	Limit int
	// OutboxInterval is how often the outbox sweep enqueues add-ons whose
	// enqueue failed (addon.Addon.Requeue), so work accepted while Redis was
	// down starts within seconds of its return. Default 5 s.
	OutboxInterval time.Duration
	// Redis, when set, holds the sweep lock so only one worker dyno sweeps
	// per Interval. Without it every process sweeps, which is still correct
	// (enqueueing deduplicates, giving up is idempotent), only wasteful.
	Redis asynq.RedisConnOpt
	// Log receives logfmt lines. Default: discarded.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// lockKey is the Redis key of the sweep lock.
const lockKey = "kiln:reconciler:sweep"

// Reconciler is what makes "nothing accepted is lost" hold. The web process
// records an add-on and answers Heroku 202 even when Redis is down, and a
// task can be lost (Redis flushed, a task archived); the database is the
// truth, so every Interval the reconciler lists the add-ons still in
// flight that nobody has touched for a while and enqueues their next job
// (addon.Addon.NextJob, the rule the service hands add-ons on by too), or
// gives up those past their provisioning deadline. asynq's retries are not
// bounded by that deadline: this is. It also deprovisions failed add-ons
// that Heroku removed at its 12-hour limit while Kiln still held their
// resource or tokens, so none is left behind.
//
// Only one dyno sweeps per Interval, by a Redis lock (SET NX PX) that is
// never released but expires by itself a little before the next tick. It is
// a rate limit more than a mutex: if a slow sweep overlaps another, nothing
// breaks, because every action is idempotent. Redis rather than a Postgres
// advisory lock because Redis is this package's own dependency (the jobs
// adapter must not reach into the store's database), the lock needs no held
// connection, and when Redis is down the lock is skipped and the sweep runs
// anyway, so deadlines are still enforced.
type Reconciler struct {
	queue addon.Queue
	svc   *addon.Service
	opt   ReconcilerOptions
	log   *slog.Logger

	mu   sync.Mutex
	from addon.StaleFrom // where the next sweep's page starts
}

// NewReconciler builds a reconciler over the service (to find add-ons and
// give up) and the queue (to enqueue their next job).
func NewReconciler(svc *addon.Service, q addon.Queue, o ReconcilerOptions) *Reconciler {
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 2 * time.Minute
	}
	if o.Limit <= 0 {
		o.Limit = 500
	}
	if o.OutboxInterval <= 0 {
		o.OutboxInterval = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Reconciler{queue: q, svc: svc, opt: o, log: o.Log.With("component", "reconciler")}
}

// Run sweeps every Interval (the first time at once), and runs the outbox
// sweep every OutboxInterval beside it, until ctx ends; then it returns
// nil. A failed sweep is logged and the next one tries again.
func (r *Reconciler) Run(ctx context.Context) error {
	var lock redis.UniversalClient
	if r.opt.Redis != nil {
		c, shared, ok := client(r.opt.Redis)
		if !ok {
			return fmt.Errorf("reconciler: unsupported asynq.RedisConnOpt %T", r.opt.Redis)
		}
		lock = c
		if !shared {
			defer c.Close()
		}
	}
	// The outbox sweep keeps its own pace: a long reconciler sweep (give-ups
	// waiting on a slow resource service) must not hold back work accepted
	// while Redis was down.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = RunSweep(ctx, r.opt.OutboxInterval, r.outbox, r.log) })

	owner := token()
	t := time.NewTicker(r.opt.Interval)
	defer t.Stop()
	for {
		if r.acquire(ctx, lock, owner) {
			n, err := r.Sweep(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				r.log.Error("sweep failed", "acted", n, "err", err)
			case n > 0:
				r.log.Info("sweep done", "acted", n)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// outbox is one outbox sweep for RunSweep, logging what it enqueued.
func (r *Reconciler) outbox(ctx context.Context) error {
	n, err := r.SweepOutbox(ctx)
	if err != nil {
		return fmt.Errorf("outbox sweep (enqueued %d): %w", n, err)
	}
	if n > 0 {
		r.log.Info("outbox sweep done", "enqueued", n)
	}
	return nil
}

// SweepOutbox enqueues the next job (addon.Addon.NextJob) of every add-on
// whose enqueue failed (the web process or a job could not reach Redis) and
// clears its flag unless the add-on changed after it was listed (the flag
// may then stand for a newer failed enqueue). It needs no lock: enqueueing
// deduplicates. It stops at the first enqueue failure (Redis is still down)
// and returns how many it enqueued.
//
// It goes on page after page while pages come full, so a backlog left by
// a long outage (thousands of provisions accepted while Redis was down,
// their grants dying five minutes after each request) drains at the pace
// of Redis and Postgres, not Limit rows an interval; it starts no page
// once OutboxInterval has passed, and the next tick goes on. A page whose
// flags all stayed (every add-on changed after it was listed) ends the
// sweep too: their writers are at work, and the next tick lists them
// again.
func (r *Reconciler) SweepOutbox(ctx context.Context) (int, error) {
	start := time.Now() // time spent, not the clock Stale is judged by
	total := 0
	for {
		n, cleared, full, err := r.outboxPage(ctx)
		total += n
		if err != nil || !full || cleared == 0 || time.Since(start) >= r.opt.OutboxInterval {
			return total, err
		}
	}
}

// outboxPage is one page of SweepOutbox: how many jobs it enqueued, how
// many flags it cleared and whether the page was full.
func (r *Reconciler) outboxPage(ctx context.Context) (enqueued, cleared int, full bool, err error) {
	flagged, err := r.svc.Requeued(ctx, r.opt.Limit)
	skipped, err := r.unreadable("requeued", err)
	if err != nil {
		return 0, 0, false, fmt.Errorf("reconciler: list requeued add-ons: %w", err)
	}
	full = len(flagged)+skipped == r.opt.Limit
	for _, a := range flagged {
		if kind, ok := a.NextJob(); ok {
			if err := r.queue.Enqueue(ctx, kind, a.ID); err != nil {
				return enqueued, cleared, full, fmt.Errorf("enqueue %s for %s: %w", kind, a.ID, err)
			}
			enqueued++
		}
		ok, err := r.svc.Unflag(ctx, a)
		if err != nil {
			return enqueued, cleared, full, fmt.Errorf("clear requeue flag of %s: %w", a.ID, err)
		}
		if ok {
			cleared++
		}
	}
	return enqueued, cleared, full, nil
}

// unreadable sorts a sweep listing's error: add-ons it left out because
// they cannot be read (addon.UnreadableError: sealed with a key no longer
// in ENCRYPTION_KEY, or damaged) are logged at error level, for an
// operator to restore the key or repair the rows, and counted in skipped,
// and the sweep goes on with the rest; any other error is returned, and
// stops it.
func (r *Reconciler) unreadable(listing string, err error) (skipped int, _ error) {
	if err == nil {
		return 0, nil
	}
	ids, only := addon.Unreadable(err)
	if !only {
		return 0, err
	}
	r.log.Error("listed add-ons cannot be read; the sweep goes on without them", "listing", listing, "count", len(ids), "err", err)
	return len(ids), nil
}

// acquire takes this interval's sweep lock. When Redis cannot tell, it
// answers yes: a duplicate sweep is harmless, a skipped deadline is not.
func (r *Reconciler) acquire(ctx context.Context, lock redis.UniversalClient, owner string) bool {
	if lock == nil {
		return true
	}
	ttl := r.opt.Interval - r.opt.Interval/10
	ok, err := lock.SetNX(ctx, lockKey, owner, ttl).Result()
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("sweep lock unavailable; sweeping anyway", "err", err)
		}
		return ctx.Err() == nil
	}
	return ok
}

// Sweep runs one pass over at most Limit stale add-ons, those after the
// previous pass's (round to the oldest again after the last, within the
// same pass when there is room), then over the failed add-ons whose
// leftovers are to go (removeLeftovers), and returns how many it acted on
// (enqueued a job for, gave up, or handed to the deprovision job). It goes
// on past individual failures and returns them joined; once the queue
// fails it stops enqueueing (Redis is down, every enqueue would fail) but
// still gives up add-ons past their deadline; once a give-up meets
// Heroku's rate limit it gives up no more (each asks Heroku first), and
// still enqueues. It starts no new action once Interval has passed by its
// clock (giving up add-ons against a slow resource service can take that
// long): the next pass goes on after the last add-on this one finished
// with.
//
// An add-on that became stale behind the pass's place (it was leased, or
// touched, as its page went by) waits until the passes come round again.
func (r *Reconciler) Sweep(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.opt.Now()
	before := start.Add(-r.opt.StaleAfter)
	from := r.from
	stale, err := r.svc.Stale(ctx, before, from, r.opt.Limit)
	skipped, err := r.unreadable("stale", err)
	if err != nil {
		return 0, fmt.Errorf("reconciler: list stale add-ons: %w", err)
	}
	listed := len(stale) + skipped
	if room := r.opt.Limit - listed; room > 0 && from != (addon.StaleFrom{}) {
		// The end came before the page was full: go round to the oldest,
		// up to where this page began.
		head, err := r.svc.Stale(ctx, before, addon.StaleFrom{}, room)
		if _, err = r.unreadable("stale", err); err != nil {
			return 0, fmt.Errorf("reconciler: list stale add-ons: %w", err)
		}
		for _, a := range head {
			if !from.Precedes(a) { // not in this pass's first page
				stale = append(stale, a)
			}
		}
	}
	// The next pass follows this one's last add-on while pages come full;
	// after a short one it starts from the oldest again. So add-ons no
	// pass can move on (a resource service that keeps refusing) cannot
	// fill every page and keep newer ones from ever being looked at.
	next := addon.StaleFrom{}
	if listed == r.opt.Limit && len(stale) > 0 {
		next = key(stale[len(stale)-1])
	}
	var (
		n        int
		errs     []error
		queueErr error
		limited  bool // Heroku answered a give-up with its rate limit
	)
	for i, a := range stale {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		if i > 0 && r.spent(start) {
			r.log.Warn("sweep stopped at its interval; the next goes on from there", "acted", n, "left", len(stale)-i)
			next = key(stale[i-1])
			break
		}
		log := r.log.With("addon", a.ID, "state", a.State)
		if a.State == addon.StateProvisioning {
			if !a.Deadline.IsZero() && start.After(a.Deadline) {
				if limited {
					continue // the next sweep asks Heroku again
				}
				left, err := r.svc.GiveUp(ctx, a.ID, addon.ReasonDeadline)
				if err != nil {
					log.Error("give up failed", "err", err)
					errs = append(errs, fmt.Errorf("give up %s: %w", a.ID, err))
					// A give-up asks Heroku first: every next one would
					// get the same answer, and keep the limit reached.
					limited = addon.ErrorCode(err) == addon.ERATELIMIT
					continue
				}
				if left == addon.StateProvisioned {
					log.Warn("provisioning deadline passed, but Heroku has the add-on provisioned: recorded provisioned", "deadline", a.Deadline)
				} else {
					log.Warn("gave up: provisioning deadline passed", "deadline", a.Deadline, "left", left)
				}
				n++
				continue
			}
		}
		kind, ok := a.NextJob()
		if !ok {
			continue
		}
		if queueErr != nil {
			continue
		}
		if err := r.queue.Enqueue(ctx, kind, a.ID); err != nil {
			log.Error("enqueue failed", "job", kind, "err", err)
			queueErr = fmt.Errorf("enqueue %s for %s: %w", kind, a.ID, err)
			errs = append(errs, queueErr)
			continue
		}
		log.Debug("enqueued", "job", kind)
		n++
	}
	if ctx.Err() == nil {
		r.from = next
		m, err := r.removeLeftovers(ctx, start)
		n += m
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// leftoversPerSweep caps the failed add-ons one sweep hands to the
// deprovision job (removeLeftovers): each may cost a token refresh and a
// call to Heroku, and a first deploy of this release finds every add-on
// that ever failed holding something. 50 every 30 s is 6,000 an hour,
// gentle on Heroku's rate limit and on the queue customers' own
// deprovisions use.
const leftoversPerSweep = 50

// removeLeftovers deprovisions the failed add-ons Heroku has removed at its
// 12-hour limit while Kiln may still hold their resource or holds their
// tokens (addon.Service.RemoveLeftover), up to leftoversPerSweep a sweep,
// and returns how many it handed to the deprovision job. Like the pass
// before it, it starts none once Interval has passed since start, and it
// stops at Heroku's rate limit; one that fails otherwise is skipped. The
// next sweep lists what is left again.
func (r *Reconciler) removeLeftovers(ctx context.Context, start time.Time) (int, error) {
	if r.spent(start) {
		return 0, nil
	}
	left, err := r.svc.Leftovers(ctx, min(r.opt.Limit, leftoversPerSweep))
	if _, err = r.unreadable("leftovers", err); err != nil {
		return 0, fmt.Errorf("reconciler: list leftovers: %w", err)
	}
	n := 0
	var errs []error
	for i, a := range left {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		if r.spent(start) {
			r.log.Warn("leftovers: sweep stopped at its interval; the next goes on", "removed", n, "left", len(left)-i)
			break
		}
		moved, err := r.svc.RemoveLeftover(ctx, a.ID)
		if err != nil {
			r.log.Error("deprovisioning a failed add-on's leftovers failed", "addon", a.ID, "err", err)
			errs = append(errs, fmt.Errorf("remove leftovers of %s: %w", a.ID, err))
			if addon.ErrorCode(err) == addon.ERATELIMIT {
				break // every next one would ask Heroku too
			}
			continue
		}
		if moved {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// spent reports whether a sweep that began at start has used up its
// Interval: it then starts no new action.
func (r *Reconciler) spent(start time.Time) bool { return r.opt.Now().Sub(start) >= r.opt.Interval }

// key is where a listing that starts after a goes on.
func key(a *addon.Addon) addon.StaleFrom { return addon.StaleFrom{UpdatedAt: a.UpdatedAt, ID: a.ID} }

// token names this process as a lock owner (for an operator reading Redis).
func token() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
