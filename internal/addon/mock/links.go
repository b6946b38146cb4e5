package mock

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.LinkStore = (*Links)(nil)

// Links is an addon.LinkStore in memory, beside a Store: a Link belongs to
// an add-on of that Store (an unknown add-on is ENOTFOUND, as the foreign
// key makes it in Postgres), and the listings read the Store's add-ons and
// audit trail as the Postgres queries join them (internal/postgres,
// links.go). Like Store, it saves nothing when fn fails and hands out
// copies. Set Store before use.
type Links struct {
	Store *Store
	// Before is Store.Before for the Links' methods.
	Before func(op string, id addon.ID) error

	mu    sync.Mutex
	links map[addon.ID]*addon.Link
	seen  map[string]time.Time // webhook event ids applied, and when
}

func (k *Links) before(op string, id addon.ID) error {
	if k.Before == nil {
		return nil
	}
	return k.Before(op, id)
}

func cloneLink(l *addon.Link) *addon.Link {
	c := *l
	c.Attachments = slices.Clone(l.Attachments)
	c.RetiredVars = maps.Clone(l.RetiredVars)
	return &c
}

// addon returns the Store's add-on (not a copy: read it under the Store's
// lock only), or nil.
func (k *Links) addon(id addon.ID) *addon.Addon {
	k.Store.mu.Lock()
	defer k.Store.mu.Unlock()
	return k.Store.addons[id]
}

// Link returns a copy of the add-on's Link, a zero one (AddonID set) when
// none is recorded, or ENOTFOUND for an unknown add-on.
func (k *Links) Link(ctx context.Context, id addon.ID) (*addon.Link, error) {
	if err := k.before("Link", id); err != nil {
		return nil, err
	}
	if k.addon(id) == nil {
		return nil, addon.NotFound(id)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if l, ok := k.links[id]; ok {
		return cloneLink(l), nil
	}
	return &addon.Link{AddonID: id}, nil
}

// UpdateLink runs fn on a copy of the Link (a zero one when none is
// recorded) and saves it only when fn succeeds. fn runs under the Links'
// lock and must not call the store.
func (k *Links) UpdateLink(ctx context.Context, id addon.ID, fn func(l *addon.Link) error) (*addon.Link, error) {
	if err := k.before("UpdateLink", id); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.update(id, fn)
}

// update is UpdateLink with k.mu held.
func (k *Links) update(id addon.ID, fn func(l *addon.Link) error) (*addon.Link, error) {
	if k.addon(id) == nil {
		return nil, addon.NotFound(id)
	}
	l := &addon.Link{AddonID: id}
	if cur, ok := k.links[id]; ok {
		l = cloneLink(cur)
	}
	if err := fn(l); err != nil {
		return nil, err
	}
	l.AddonID = id
	if k.links == nil {
		k.links = make(map[addon.ID]*addon.Link)
	}
	k.links[id] = cloneLink(l)
	return l, nil
}

// ApplyEvent is UpdateLink once per event id: a repeat returns
// applied=false without calling fn. An event whose fn failed is not
// remembered, so its redelivery is applied.
func (k *Links) ApplyEvent(ctx context.Context, id addon.ID, eventID string, fn func(l *addon.Link) error) (bool, error) {
	if err := k.before("ApplyEvent", id); err != nil {
		return false, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.seen[eventID]; ok {
		return false, nil
	}
	if _, err := k.update(id, fn); err != nil {
		return false, err
	}
	if k.seen == nil {
		k.seen = make(map[string]time.Time)
	}
	k.seen[eventID] = k.Store.now()
	return true, nil
}

// Links returns copies of the recorded Links of these add-ons.
func (k *Links) Links(ctx context.Context, ids []addon.ID) (map[addon.ID]*addon.Link, error) {
	if err := k.before("Links", ""); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[addon.ID]*addon.Link{}
	for _, id := range ids {
		if l, ok := k.links[id]; ok {
			out[id] = cloneLink(l)
		}
	}
	return out, nil
}

// pick lists the ids of the Store's add-ons keep accepts (given the
// add-on and its Link, zero when none), ordered by key then id, at most
// limit.
func (k *Links) pick(limit int, keep func(a *addon.Addon, l *addon.Link) bool, key func(a *addon.Addon, l *addon.Link) time.Time) []addon.ID {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.Store.mu.Lock()
	defer k.Store.mu.Unlock()
	type row struct {
		id  addon.ID
		key time.Time
	}
	var rows []row
	for id, a := range k.Store.addons {
		l := k.links[id]
		if l == nil {
			l = &addon.Link{AddonID: id}
		}
		if keep(a, l) {
			rows = append(rows, row{id, key(a, l)})
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Or(a.key.Compare(b.key), cmp.Compare(a.id, b.id)) })
	out := make([]addon.ID, 0, len(rows))
	for _, r := range rows[:min(max(limit, 0), len(rows))] {
		out = append(out, r.id)
	}
	return out
}

func live(a *addon.Addon) bool { return a.State == addon.StateProvisioned && a.Tokens != nil }

// DueForSync lists live add-ons whose NextSyncAt is not after now, or
// that have none, those without first.
func (k *Links) DueForSync(ctx context.Context, now time.Time, limit int) ([]addon.ID, error) {
	if err := k.before("DueForSync", ""); err != nil {
		return nil, err
	}
	return k.pick(limit,
		func(a *addon.Addon, l *addon.Link) bool { return live(a) && !l.NextSyncAt.After(now) },
		func(a *addon.Addon, l *addon.Link) time.Time { return l.NextSyncAt }), nil
}

// Unsubscribed lists live add-ons updated before the given time with no
// webhook subscription, no refused token and no subscription refused
// since refusedBefore, oldest update first.
func (k *Links) Unsubscribed(ctx context.Context, before, refusedBefore time.Time, limit int) ([]addon.ID, error) {
	if err := k.before("Unsubscribed", ""); err != nil {
		return nil, err
	}
	return k.pick(limit,
		func(a *addon.Addon, l *addon.Link) bool {
			return live(a) && a.UpdatedAt.Before(before) && l.WebhookID == "" && l.AccessRefused == "" &&
				(l.SubscribedAt.IsZero() || l.SubscribedAt.Before(refusedBefore))
		},
		func(a *addon.Addon, l *addon.Link) time.Time { return a.UpdatedAt }), nil
}

// DueForRetire lists add-ons whose RetireAt has come, earliest first.
func (k *Links) DueForRetire(ctx context.Context, now time.Time, limit int) ([]addon.ID, error) {
	if err := k.before("DueForRetire", ""); err != nil {
		return nil, err
	}
	return k.pick(limit,
		func(a *addon.Addon, l *addon.Link) bool { return !l.RetireAt.IsZero() && !l.RetireAt.After(now) },
		func(a *addon.Addon, l *addon.Link) time.Time { return l.RetireAt }), nil
}

// LogBacklog lists add-ons with a log_input_url that have events recorded
// after since, not after until, and past their LogCursor.
func (k *Links) LogBacklog(ctx context.Context, since, until time.Time, limit int) ([]addon.ID, error) {
	if err := k.before("LogBacklog", ""); err != nil {
		return nil, err
	}
	k.Store.mu.Lock()
	backlog := map[addon.ID]int64{} // add-on: its newest event in the window
	for _, e := range k.Store.events {
		if e.At.After(since) && !e.At.After(until) {
			backlog[e.AddonID] = e.ID
		}
	}
	k.Store.mu.Unlock()
	return k.pick(limit,
		func(a *addon.Addon, l *addon.Link) bool { return a.LogInputURL != "" && backlog[a.ID] > l.LogCursor },
		func(a *addon.Addon, l *addon.Link) time.Time { return time.Time{} }), nil
}

// CountAccessRefused counts provisioned add-ons whose Link records a
// refused token.
func (k *Links) CountAccessRefused(ctx context.Context) (int64, error) {
	if err := k.before("CountAccessRefused", ""); err != nil {
		return 0, err
	}
	ids := k.pick(1<<30,
		func(a *addon.Addon, l *addon.Link) bool {
			return a.State == addon.StateProvisioned && l.AccessRefused != ""
		},
		func(a *addon.Addon, l *addon.Link) time.Time { return time.Time{} })
	return int64(len(ids)), nil
}

// PruneEvents forgets webhook event ids applied before the given time (by
// the Store's clock).
func (k *Links) PruneEvents(ctx context.Context, before time.Time) error {
	if err := k.before("PruneEvents", ""); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	maps.DeleteFunc(k.seen, func(_ string, at time.Time) bool { return at.Before(before) })
	return nil
}

// EventsToLog returns the add-on's events after its LogCursor (zero
// without a Link), oldest first, at most limit; an unknown add-on has none.
func (k *Links) EventsToLog(ctx context.Context, id addon.ID, limit int) ([]addon.Event, error) {
	if err := k.before("EventsToLog", id); err != nil {
		return nil, err
	}
	k.mu.Lock()
	var after int64
	if l, ok := k.links[id]; ok {
		after = l.LogCursor
	}
	k.mu.Unlock()
	k.Store.mu.Lock()
	defer k.Store.mu.Unlock()
	var out []addon.Event
	for _, e := range k.Store.events {
		if e.AddonID == id && e.ID > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// AdvanceLogCursor sets the Link's LogCursor to cursor when that is
// further, starting the Link when there is none; an unknown add-on is
// ENOTFOUND.
func (k *Links) AdvanceLogCursor(ctx context.Context, id addon.ID, cursor int64) error {
	if err := k.before("AdvanceLogCursor", id); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	_, err := k.update(id, func(l *addon.Link) error {
		l.LogCursor = max(l.LogCursor, cursor)
		return nil
	})
	return err
}
