package addon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// One writer per add-on.
//
// Every piece of work that changes an add-on and calls something outside
// Kiln's database (Heroku, a resource driver) follows one pattern: claim the
// add-on, make the call with no database transaction open, record the result
// under the claim's fence, release. Service.Exclusive is that pattern; new
// writers (credential rolls, sync, webhooks, operator actions) use it too.
//
// The claim is a lease on the add-on's row (owner, expiry) with a fencing
// version that every claim bumps (Store.Acquire). Why a lease and not a
// Postgres advisory lock: a lock lives on a connection, so every add-on with
// a Heroku or driver call in flight would pin one of the few connections
// Heroku's small Postgres plans allow (20 for all dynos); a lease holds no
// connection while the call runs, holds across web and worker dynos, and
// lapses by itself when the process holding it dies. A writer that runs long
// renews it; a writer whose lease lapsed anyway (a long pause, a partition)
// cannot record, because the fence moved on when the next writer claimed.
//
// Short changes that call nothing (recording a requested plan, moving to
// deprovisioning on Heroku's DELETE) stay plain Store.Update transactions:
// the row lock serialises them, and every leased writer re-checks the
// add-on's state when it records.

// Lease is a writer's claim on one add-on. Fence is the add-on's version at
// the claim; Store.Record refuses a lease whose fence moved on.
type Lease struct {
	AddonID ID
	Owner   string
	Fence   int64
	Until   time.Time
}

// ErrBusy is in the chain of the error a claim gets while another writer
// holds the add-on; ErrLeaseLost when a writer's lease was taken over.
var (
	ErrBusy      = errors.New("add-on busy: another writer holds its lease")
	ErrLeaseLost = errors.New("lease lost: another writer claimed the add-on")
)

// Busy is the error for a claim refused because another writer holds the
// add-on. It is transient (EUNAVAILABLE): jobs retry soon, Heroku and
// operators get a 503 with Retry-After.
func Busy(id ID, owner string, left time.Duration) error {
	ra := min(max(left, 200*time.Millisecond), 2*time.Second)
	return &Error{
		Code:       EUNAVAILABLE,
		Message:    fmt.Sprintf("Another change to add-on %s is in progress; try again shortly.", id),
		RetryAfter: ra,
		Err:        fmt.Errorf("%w (held by %s)", ErrBusy, owner),
	}
}

// LeaseLost is the error a writer gets when it records after its lease was
// taken over: its result is stale. Transient, so a job retries from what is
// recorded.
func LeaseLost(id ID) error {
	return &Error{Code: EUNAVAILABLE, Message: fmt.Sprintf("Add-on %s was claimed by another writer.", id), Err: ErrLeaseLost}
}

// IsBusy reports whether err is a refused claim.
func IsBusy(err error) bool { return errors.Is(err, ErrBusy) }

// DefaultLeaseTTL is how long a claim lasts unless renewed: long enough that
// renewing every third of it survives a slow database, short enough that an
// add-on whose worker died waits no longer for its next writer.
const DefaultLeaseTTL = 30 * time.Second

// Claim is a held lease plus the add-on as last recorded under it.
type Claim struct {
	s     *Service
	mu    sync.Mutex
	lease Lease
	a     *Addon
	done  bool
	lost  bool // renewal or a record found the lease taken over
	// started: the claim recorded that a grant exchange starts (claimed
	// with AcquireExchange, which found none started before).
	started bool
	// from is when the claim's last successful acquire or renewal was
	// sent: the lease holds until at least from plus its TTL, whatever
	// the database's clock says.
	from time.Time

	stop   context.CancelFunc
	wg     sync.WaitGroup
	cancel context.CancelCauseFunc
}

// Addon returns the add-on as the claim found it or as last recorded. It
// is read-only: Record writes from it (Store.Record's seen), so a change
// made to it here would be saved by the next Record unseen.
func (c *Claim) Addon() *Addon {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.a
}

// Lease returns the lease held.
func (c *Claim) Lease() Lease {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lease
}

// Record saves a change under the claim's fence: fn sees the add-on as
// stored now (re-check its state there: the claim's copy when nothing
// changed it since, else the row read again under its lock) and may
// change it; nothing is saved when fn fails or the lease was taken over
// (LeaseLost). fn may run twice (Store.Record): first on the claim's
// copy, then, if the add-on changed meanwhile, on the stored one; it
// changes nothing but its add-on.
func (c *Claim) Record(ctx context.Context, fn func(a *Addon, now time.Time) error) (*Addon, error) {
	return c.record(ctx, false, fn)
}

func (c *Claim) record(ctx context.Context, release bool, fn func(a *Addon, now time.Time) error) (*Addon, error) {
	c.mu.Lock()
	l, seen := c.lease, c.a
	if c.lost {
		seen = nil // the row has moved on: only the locked path can say so
	}
	c.mu.Unlock()
	a, err := c.s.store.Record(ctx, l, seen, release, func(ctx context.Context, a *Addon) error {
		return fn(a, c.s.now())
	})
	if errors.Is(err, ErrLeaseLost) {
		c.markLost()
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.a = a
	if release {
		c.done = true
	}
	c.mu.Unlock()
	return a, nil
}

// markLost notes that the lease was found taken over: later records take
// the locked path (which refuses them), and held says so.
func (c *Claim) markLost() {
	c.mu.Lock()
	c.lost = true
	c.mu.Unlock()
}

// held reports whether the claim still holds its lease, as far as it
// knows: not released by a final Record, not found taken over.
func (c *Claim) held() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.done && !c.lost
}

// keep replaces the claim's copy of the add-on after a save made outside
// Record (tokens, saved whatever the fence says).
func (c *Claim) keep(a *Addon) {
	c.mu.Lock()
	c.a = a
	c.mu.Unlock()
}

// owner names this process as a lease holder, for operators reading the
// row: the dyno (or host), the pid and a random suffix.
func (s *Service) owner() string {
	s.ownerOnce.Do(func() {
		name := s.opt.Owner
		if name == "" {
			name, _ = os.Hostname()
		}
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		s.ownerName = fmt.Sprintf("%s/%d/%s", name, os.Getpid(), hex.EncodeToString(b))
	})
	return s.ownerName
}

func (s *Service) leaseTTL() time.Duration {
	if s.opt.LeaseTTL > 0 {
		return s.opt.LeaseTTL
	}
	return DefaultLeaseTTL
}

// claim takes the add-on's lease, waiting up to wait for a busy one, and
// starts renewing it. The returned context is ctx, cancelled (cause
// LeaseLost) if renewal finds the lease taken over. Call c.finish.
func (s *Service) claim(ctx context.Context, id ID, wait time.Duration, exchange bool) (*Claim, context.Context, error) {
	deadline := time.Now().Add(wait)
	for {
		var a *Addon
		var l Lease
		var started bool
		var err error
		sent := time.Now()
		if exchange {
			a, l, started, err = s.store.AcquireExchange(ctx, id, s.owner(), s.leaseTTL())
		} else {
			a, l, err = s.store.Acquire(ctx, id, s.owner(), s.leaseTTL())
		}
		if err == nil {
			c := &Claim{s: s, lease: l, a: a, started: started, from: sent}
			wctx, cancel := context.WithCancelCause(ctx)
			c.cancel = cancel
			rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
			c.stop = stop
			c.wg.Add(1)
			go c.renew(rctx)
			return c, wctx, nil
		}
		if !IsBusy(err) || !time.Now().Add(50*time.Millisecond).Before(deadline) {
			return nil, nil, err
		}
		t := time.NewTimer(min(100*time.Millisecond, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, err
		case <-t.C:
		}
	}
}

// renew extends the lease every third of its life until finish. When the
// lease was taken over it cancels the work's context: whatever the work
// does next cannot be recorded anyway.
//
// It also gives the lease up when it can no longer show it holds it. Each
// renewal waits at most a sixth of the TTL (the pool may be starved, the
// database unreachable), and a failed one is tried again every twelfth;
// once two thirds of the TTL have passed since the last renewal that went
// through was sent, the lease could lapse before another would, and a
// second writer claim the add-on: the work's context is cancelled then
// (cause errRenewLate, which is LeaseLost), so no call to Heroku or the
// driver is made by two writers at once. Its records stay fenced: one
// saves only if no other writer claimed the add-on meanwhile.
func (c *Claim) renew(ctx context.Context) {
	defer c.wg.Done()
	ttl := c.s.leaseTTL()
	t := time.NewTimer(time.Until(c.renewed().Add(ttl / 3)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, ttl/6)
		l, err := c.s.store.Renew(rctx, c.Lease(), ttl)
		cancel()
		switch {
		case err == nil:
			c.mu.Lock()
			c.lease, c.from = l, sent
			c.mu.Unlock()
			t.Reset(time.Until(sent.Add(ttl / 3)))
		case errors.Is(err, ErrLeaseLost):
			c.markLost()
			c.s.log().ErrorContext(ctx, "add-on lease taken over while its writer worked", "addon", l.AddonID)
			c.cancel(err)
			return
		case ctx.Err() != nil:
			return
		case time.Since(c.renewed()) >= ttl-ttl/3-ttl/12:
			// No retry would go through before two thirds are up.
			c.markLost()
			c.s.log().ErrorContext(ctx, "add-on lease could not be renewed in time; its writer stops", "addon", c.Lease().AddonID, "err", err)
			c.cancel(fmt.Errorf("%w: %w", errRenewLate, err))
			return
		default:
			c.s.log().WarnContext(ctx, "renew add-on lease; retrying", "addon", c.Lease().AddonID, "err", err)
			t.Reset(ttl / 12)
		}
	}
}

// errRenewLate is the cause a writer's work is cancelled with when its
// lease could not be renewed in time (Claim.renew): LeaseLost, since
// another writer may claim the add-on before this one could renew.
var errRenewLate = fmt.Errorf("%w (it could not be renewed in time)", ErrLeaseLost)

// renewed is when the claim's last successful acquire or renewal was sent.
func (c *Claim) renewed() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.from
}

// finish stops renewing and releases the lease unless a final Record
// already did. A failed release is only logged: the lease lapses by itself.
func (c *Claim) finish(ctx context.Context) {
	c.stop()
	c.wg.Wait()
	c.cancel(nil)
	c.mu.Lock()
	done := c.done
	c.done = true
	c.mu.Unlock()
	if done {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := c.s.store.Release(rctx, c.Lease()); err != nil {
		c.s.log().WarnContext(ctx, "release add-on lease; it will lapse", "addon", c.lease.AddonID, "err", err)
	}
}

// Exclusive runs fn as the add-on's one writer: it claims the add-on
// (waiting up to wait while another writer holds it; then the error is
// Busy), renews the claim while fn runs, and releases it afterwards. fn
// makes its calls to Heroku or the driver with no transaction open and
// records results with c.Record, which saves only while the claim's fence
// holds (re-reading the add-on under its row lock when anyone else wrote
// it since) and refuses to save if the lease was taken over meanwhile.
func (s *Service) Exclusive(ctx context.Context, id ID, wait time.Duration, fn func(ctx context.Context, c *Claim) error) error {
	return s.exclusive(ctx, id, wait, false, fn)
}

// exclusive is Exclusive; with exchange the claim also records that a
// grant exchange starts (Store.AcquireExchange, Claim.started).
func (s *Service) exclusive(ctx context.Context, id ID, wait time.Duration, exchange bool, fn func(ctx context.Context, c *Claim) error) error {
	c, wctx, err := s.claim(ctx, id, wait, exchange)
	if err != nil {
		return err
	}
	defer c.finish(ctx)
	err = fn(wctx, c)
	if err != nil && context.Cause(wctx) != nil && errors.Is(context.Cause(wctx), ErrLeaseLost) {
		return errors.Join(err, context.Cause(wctx))
	}
	return err
}

// SaveInHand is inHand for writers outside this package's files: use it
// to save anything a call returned that cannot be asked for again.
func (s *Service) SaveInHand(ctx context.Context, what string, id ID, save func(ctx context.Context) error) error {
	return s.inHand(ctx, what, id, save)
}

// inHand retries a save of something that exists only in this process's
// memory (tokens from an exchange or refresh, credentials a driver just
// rotated): losing it would spend a single-use grant or leave a customer with
// dead credentials. It retries transient failures with backoff on a context
// that is not the job's (a job's deadline or cancellation must not throw the
// result away) for up to InHandBudget.
func (s *Service) inHand(ctx context.Context, what string, id ID, save func(ctx context.Context) error) error {
	budget := s.opt.InHandBudget
	if budget <= 0 {
		budget = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	defer cancel()
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := save(ctx)
		if err == nil {
			if attempt > 1 {
				s.log().InfoContext(ctx, "saved after retrying", "what", what, "addon", id, "attempts", attempt)
			}
			return nil
		}
		if !Transient(err) || errors.Is(err, ErrLeaseLost) || ctx.Err() != nil {
			s.log().ErrorContext(ctx, "could not save; it is lost", "what", what, "addon", id, "attempts", attempt, "err", err)
			return err
		}
		s.log().WarnContext(ctx, "save failed; retrying with what is in hand", "what", what, "addon", id, "attempt", attempt, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(wait*2, 2*time.Second)
	}
}
