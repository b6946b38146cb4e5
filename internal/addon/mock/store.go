package mock

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.Store = (*Store)(nil)

// Store is an addon.Store in memory: a map of add-ons and a list of events
// under one mutex, keeping the contract the Postgres store keeps
// (internal/postgres, addons.go and leases.go), so a unit test of the
// service exercises the same rules the real store enforces: Create
// deduplicates by id, Update and Record save nothing when fn fails, Record
// refuses a lease whose fence moved on, Acquire refuses a held lease and
// takes over a lapsed one, and add-ons go in and out as copies, so nothing a
// caller keeps can change what is stored. The zero value is ready to use.
type Store struct {
	// Now is the store's clock, the one leases lapse by (in Postgres, the
	// database's clock_timestamp()); nil means time.Now. A test that sets
	// it lets a lease lapse without sleeping.
	Now func() time.Time
	// Before, when set, is called at the start of every method with the
	// method's name ("Update", "Record", "Acquire" (AcquireExchange too),
	// ...) and the add-on's id ("" for listings and counts), outside the
	// store's lock. An error it returns is the method's and nothing is
	// changed: that is the database failing. It may use the store itself:
	// that is another writer acting between two of the service's calls.
	Before func(op string, id addon.ID) error
	// CheckContext makes Record refuse an ended context, as Postgres's
	// driver does, for tests of records that must outlive their caller.
	CheckContext bool

	mu     sync.Mutex
	addons map[addon.ID]*addon.Addon
	events []addon.Event
	last   time.Time // the last updated_at given out
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Store) before(op string, id addon.ID) error {
	if s.Before == nil {
		return nil
	}
	return s.Before(op, id)
}

// stamp is the updated_at of a write: the clock, moved on by a
// microsecond when it has not moved since the last write, so that a
// comparison of updated_at (the outbox's "changed since listed") sees
// every write even under a frozen test clock. Call with s.mu held.
func (s *Store) stamp() time.Time {
	t := s.now()
	if !t.After(s.last) {
		t = s.last.Add(time.Microsecond)
	}
	s.last = t
	return t
}

// Create records a new add-on, or returns the one stored under its id with
// created=false. Like the Postgres store it takes a's events (a keeps
// none), sets no lease, and dates the add-on a.CreatedAt or now.
func (s *Store) Create(ctx context.Context, a *addon.Addon) (*addon.Addon, bool, error) {
	if err := s.before("Create", a.ID); err != nil {
		return nil, false, err
	}
	if !addon.ValidID(string(a.ID)) {
		return nil, false, addon.Errorf(addon.EINVALID, "The uuid %q is not a valid UUID.", a.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.addons[a.ID]; ok {
		return cur.Clone(), false, nil
	}
	if s.addons == nil {
		s.addons = make(map[addon.ID]*addon.Addon)
	}
	events := a.TakeEvents()
	stored := a.Clone()
	stored.LeaseOwner, stored.LeaseUntil, stored.Fence = "", time.Time{}, 0
	stored.UpdatedAt = s.stamp()
	if stored.CreatedAt.IsZero() {
		stored.CreatedAt = stored.UpdatedAt
	}
	s.addons[a.ID] = stored
	s.append(a.ID, events)
	return stored.Clone(), true, nil
}

// append adds events to the audit trail, numbering them in order. Call
// with s.mu held.
func (s *Store) append(id addon.ID, events []addon.Event) {
	for _, e := range events {
		e.ID = int64(len(s.events) + 1)
		e.AddonID = id
		if e.At.IsZero() {
			e.At = s.now()
		}
		s.events = append(s.events, e)
	}
}

// Get returns a copy of the add-on, or addon.NotFound.
func (s *Store) Get(ctx context.Context, id addon.ID) (*addon.Addon, error) {
	if err := s.before("Get", id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.addons[id]
	if !ok {
		return nil, addon.NotFound(id)
	}
	return cur.Clone(), nil
}

// Update runs fn on a copy of the add-on and, when fn succeeds, stores the
// copy and appends the events fn recorded; when fn fails nothing is saved
// and fn's error is returned as it is. fn runs under the store's lock (the
// row lock of Postgres), so updates are serialised; like any fn given to a
// store, it must not call the store.
func (s *Store) Update(ctx context.Context, id addon.ID, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	if err := s.before("Update", id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.update(ctx, id, nil, false, fn)
}

// update is Update, and Record when l is set. The id, created_at and lease
// columns are the store's: whatever fn does to them is not saved. Call
// with s.mu held.
func (s *Store) update(ctx context.Context, id addon.ID, l *addon.Lease, release bool, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	cur, ok := s.addons[id]
	if !ok {
		return nil, addon.NotFound(id)
	}
	if l != nil && cur.Fence != l.Fence {
		return nil, addon.LeaseLost(id)
	}
	a := cur.Clone()
	if err := fn(ctx, a); err != nil {
		return nil, err
	}
	return s.save(cur, a, release), nil
}

// save stores a (fn's change of cur) and appends its events; with release
// the lease is freed. Call with s.mu held.
func (s *Store) save(cur, a *addon.Addon, release bool) *addon.Addon {
	id := cur.ID
	events := a.TakeEvents()
	saved := a.Clone()
	saved.ID, saved.CreatedAt = cur.ID, cur.CreatedAt
	saved.LeaseOwner, saved.LeaseUntil, saved.Fence = cur.LeaseOwner, cur.LeaseUntil, cur.Fence
	if release {
		saved.LeaseOwner, saved.LeaseUntil = "", time.Time{}
	}
	saved.UpdatedAt = s.stamp()
	s.addons[id] = saved
	s.append(id, events)
	return saved.Clone()
}

// Acquire takes the add-on's lease when it is free or lapsed, bumping the
// fence; addon.Busy (with the time the lease has left) while another
// writer holds it.
func (s *Store) Acquire(ctx context.Context, id addon.ID, owner string, ttl time.Duration) (*addon.Addon, addon.Lease, error) {
	if err := s.before("Acquire", id); err != nil {
		return nil, addon.Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, l, _, err := s.acquire(id, owner, ttl, false)
	return a, l, err
}

// acquire is Acquire and AcquireExchange. Call with s.mu held.
func (s *Store) acquire(id addon.ID, owner string, ttl time.Duration, exchange bool) (*addon.Addon, addon.Lease, bool, error) {
	cur, ok := s.addons[id]
	if !ok {
		return nil, addon.Lease{}, false, addon.NotFound(id)
	}
	now := s.now()
	if !cur.LeaseUntil.IsZero() && cur.LeaseUntil.After(now) {
		return nil, addon.Lease{}, false, addon.Busy(id, cur.LeaseOwner, cur.LeaseUntil.Sub(now))
	}
	cur.LeaseOwner, cur.LeaseUntil, cur.Fence = owner, now.Add(ttl), cur.Fence+1
	started := exchange && cur.State == addon.StateProvisioning && cur.Grant != nil &&
		cur.GrantExchangedAt.IsZero() && cur.ExchangeStartedAt.IsZero()
	if started {
		cur.ExchangeStartedAt, cur.UpdatedAt = now, s.stamp()
	}
	return cur.Clone(), addon.Lease{AddonID: id, Owner: owner, Fence: cur.Fence, Until: cur.LeaseUntil}, started, nil
}

// AcquireExchange is Acquire that, when the add-on owes a grant exchange
// (provisioning, a grant held, none exchanged), records in the same write
// that one starts, keeping an earlier attempt's mark; started reports
// whether this claim set it.
func (s *Store) AcquireExchange(ctx context.Context, id addon.ID, owner string, ttl time.Duration) (*addon.Addon, addon.Lease, bool, error) {
	if err := s.before("Acquire", id); err != nil {
		return nil, addon.Lease{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acquire(id, owner, ttl, true)
}

// Renew extends a lease still held by its writer: same fence, same owner,
// not released. A lease that lapsed but was not taken over is renewed, as
// in Postgres; any other is addon.LeaseLost.
func (s *Store) Renew(ctx context.Context, l addon.Lease, ttl time.Duration) (addon.Lease, error) {
	if err := s.before("Renew", l.AddonID); err != nil {
		return l, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.addons[l.AddonID]
	if !ok || cur.Fence != l.Fence || cur.LeaseOwner != l.Owner || cur.LeaseUntil.IsZero() {
		return l, addon.LeaseLost(l.AddonID)
	}
	cur.LeaseUntil = s.now().Add(ttl)
	l.Until = cur.LeaseUntil
	return l, nil
}

// Release frees the lease if its fence is still the add-on's; a lease
// taken over is left alone, without an error.
func (s *Store) Release(ctx context.Context, l addon.Lease) error {
	if err := s.before("Release", l.AddonID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.addons[l.AddonID]; ok && cur.Fence == l.Fence {
		cur.LeaseOwner, cur.LeaseUntil = "", time.Time{}
	}
	return nil
}

// Record is Update under a lease: addon.LeaseLost, with fn not called and
// nothing saved, when the add-on's fence is no longer the lease's; with
// release the lease is freed in the same write. Like the Postgres store,
// while the add-on is still seen (same UpdatedAt and fence) fn runs on a
// copy of seen, and again on the stored add-on if that copy is stale or
// fn refused it: a writer whose fn is not safe to run twice fails here too.
func (s *Store) Record(ctx context.Context, l addon.Lease, seen *addon.Addon, release bool, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	if err := s.before("Record", l.AddonID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil && s.CheckContext {
		return nil, err // as Postgres's driver would
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if seen != nil && seen.ID == l.AddonID && !seen.UpdatedAt.IsZero() {
		a := seen.Clone()
		if err := fn(ctx, a); err == nil {
			if cur, ok := s.addons[l.AddonID]; ok && cur.Fence == l.Fence && cur.UpdatedAt.Equal(seen.UpdatedAt) {
				return s.save(cur, a, release), nil
			}
		}
	}
	return s.update(ctx, l.AddonID, &l, release, fn)
}

// defaultLimit is what Stale and Requeued return when asked for no limit,
// as in Postgres.
const defaultLimit = 100

// Stale lists add-ons Addon.NextJob owes a job, not updated since before
// and not leased, oldest first from after from (StoreContract holds the
// Postgres store's SQL to the same rule).
func (s *Store) Stale(ctx context.Context, before time.Time, from addon.StaleFrom, limit int) ([]*addon.Addon, error) {
	if err := s.before("Stale", ""); err != nil {
		return nil, err
	}
	now := s.now()
	return s.list(limit, func(a *addon.Addon) bool {
		_, work := a.NextJob()
		return work && from.Precedes(a) && a.UpdatedAt.Before(before) && (a.LeaseUntil.IsZero() || a.LeaseUntil.Before(now))
	}), nil
}

// Requeued lists add-ons flagged Requeue, oldest first.
func (s *Store) Requeued(ctx context.Context, limit int) ([]*addon.Addon, error) {
	if err := s.before("Requeued", ""); err != nil {
		return nil, err
	}
	return s.list(limit, func(a *addon.Addon) bool { return a.Requeue }), nil
}

// Leftovers lists failed add-ons requested before before that may still
// hold what provisioning made (addon.Addon.Leftover), oldest request first.
func (s *Store) Leftovers(ctx context.Context, before time.Time, limit int) ([]*addon.Addon, error) {
	if err := s.before("Leftovers", ""); err != nil {
		return nil, err
	}
	return s.listBy(limit, func(a *addon.Addon) bool { return a.Leftover() && a.CreatedAt.Before(before) },
		func(a, b *addon.Addon) int { return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID)) }), nil
}

// list returns copies of the add-ons keep accepts, by updated_at then id.
func (s *Store) list(limit int, keep func(a *addon.Addon) bool) []*addon.Addon {
	return s.listBy(limit, keep, func(a, b *addon.Addon) int {
		return cmp.Or(a.UpdatedAt.Compare(b.UpdatedAt), cmp.Compare(a.ID, b.ID))
	})
}

// listBy returns copies of the add-ons keep accepts, in order's order, the
// first limit of them (defaultLimit when limit is not positive).
func (s *Store) listBy(limit int, keep func(a *addon.Addon) bool, order func(a, b *addon.Addon) int) []*addon.Addon {
	if limit <= 0 {
		limit = defaultLimit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*addon.Addon
	for _, a := range s.addons {
		if keep(a) {
			out = append(out, a.Clone())
		}
	}
	slices.SortFunc(out, order)
	return out[:min(limit, len(out))]
}

// Events returns the add-on's audit trail in the order it was recorded, or
// addon.NotFound for an unknown add-on.
func (s *Store) Events(ctx context.Context, id addon.ID) ([]addon.Event, error) {
	if err := s.before("Events", id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.addons[id]; !ok {
		return nil, addon.NotFound(id)
	}
	var out []addon.Event
	for _, e := range s.events {
		if e.AddonID == id {
			out = append(out, e)
		}
	}
	return out, nil
}

// RecordSignIn appends an "sso" event without touching the add-on (its
// updated_at stays), refusing one being or already deprovisioned with
// EFORBIDDEN.
func (s *Store) RecordSignIn(ctx context.Context, id addon.ID, at time.Time, message string) error {
	if err := s.before("RecordSignIn", id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.addons[id]
	if !ok {
		return addon.NotFound(id)
	}
	if cur.State == addon.StateDeprovisioning || cur.State == addon.StateDeprovisioned {
		return addon.Errorf(addon.EFORBIDDEN, "Add-on %s was deprovisioned.", id)
	}
	s.append(id, []addon.Event{{Kind: "sso", State: cur.State, Message: message, At: at.UTC()}})
	return nil
}

// List returns one page of the add-ons matching f, with the keyset paging
// of the Postgres store. The in-memory store keeps no Links, so it cannot
// know app names: a Filter with App is an error, not an empty page that
// would pass for a real answer.
func (s *Store) List(ctx context.Context, f addon.Filter, r addon.Range) ([]*addon.Addon, *addon.Range, error) {
	if err := s.before("List", ""); err != nil {
		return nil, nil, err
	}
	r = r.WithDefaults()
	if err := r.Validate(); err != nil {
		return nil, nil, err
	}
	if f.App != "" {
		return nil, nil, fmt.Errorf("mock: Store keeps no app names and cannot filter by App")
	}
	key := func(a *addon.Addon) (time.Time, string) {
		if r.Field == addon.RangeCreatedAt {
			return a.CreatedAt, string(a.ID)
		}
		return time.Time{}, string(a.ID)
	}
	order := func(a, b *addon.Addon) int {
		at, aid := key(a)
		bt, bid := key(b)
		c := cmp.Or(at.Compare(bt), strings.Compare(aid, bid))
		if r.Desc {
			return -c
		}
		return c
	}
	// The page starts at (or after) start: a row is kept when it orders
	// after the start, or equal to it and the range is inclusive.
	after := func(*addon.Addon) bool { return true }
	if r.Start != "" {
		st, sid := time.Time{}, strings.ToLower(r.Start)
		byID := true
		if r.Field == addon.RangeCreatedAt {
			t, id, _ := addon.ParseCreatedAtCursor(r.Start)
			st, sid, byID = t, string(id), id != ""
		}
		after = func(a *addon.Addon) bool {
			at, aid := key(a)
			if !byID {
				aid = ""
			}
			c := cmp.Or(at.Compare(st), strings.Compare(aid, sid))
			if r.Desc {
				c = -c
			}
			return c > 0 || (c == 0 && !r.Exclusive)
		}
	}
	s.mu.Lock()
	var page []*addon.Addon
	for _, a := range s.addons {
		if (f.State == "" || a.State == f.State) && (f.Plan == "" || a.Plan == f.Plan) &&
			(f.Name == "" || a.Name == f.Name) &&
			(f.NameContains == "" || strings.Contains(strings.ToLower(a.Name), strings.ToLower(f.NameContains))) &&
			after(a) {
			page = append(page, a.Clone())
		}
	}
	s.mu.Unlock()
	slices.SortFunc(page, order)
	if len(page) <= r.Max {
		return page, nil, nil
	}
	page = page[:r.Max]
	next := r
	next.Start, next.Exclusive = r.Cursor(page[len(page)-1]), true
	return page, &next, nil
}

// FindByName returns the one live add-on with this name, else the newest
// deprovisioned one; two live ones are ECONFLICT, none ENOTFOUND.
func (s *Store) FindByName(ctx context.Context, name string) (*addon.Addon, error) {
	if err := s.before("FindByName", ""); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, addon.NotFound(name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var live, gone []*addon.Addon
	for _, a := range s.addons {
		switch {
		case a.Name != name:
		case a.State == addon.StateDeprovisioned:
			gone = append(gone, a)
		default:
			live = append(live, a)
		}
	}
	newest := func(a, b *addon.Addon) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	}
	slices.SortFunc(live, newest)
	slices.SortFunc(gone, newest)
	switch {
	case len(live) > 1:
		return nil, addon.Errorf(addon.ECONFLICT, "Several add-ons are named %q (%s, %s); use an id.", name, live[0].ID, live[1].ID)
	case len(live) == 1:
		return live[0].Clone(), nil
	case len(gone) > 0:
		return gone[0].Clone(), nil
	}
	return nil, addon.NotFound(name)
}

// CountByState counts add-ons per state; states without one are absent.
func (s *Store) CountByState(ctx context.Context) (map[addon.State]int64, error) {
	if err := s.before("CountByState", ""); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[addon.State]int64)
	for _, a := range s.addons {
		out[a.State]++
	}
	return out, nil
}

// CountLostGrants counts failed add-ons whose reason is
// addon.GrantLostReason.
func (s *Store) CountLostGrants(ctx context.Context) (int64, error) {
	if err := s.before("CountLostGrants", ""); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, a := range s.addons {
		if a.State == addon.StateFailed && a.Reason == addon.GrantLostReason {
			n++
		}
	}
	return n, nil
}
