package addon

import (
	"context"
	"time"
)

// Observe wraps the add-on store so the keeper hears of audit-trail events
// as the pipeline records them, and starts its follow-up jobs: a log-stream
// write when a milestone was recorded for an add-on with a log_input_url,
// a webhook subscription when an add-on became provisioned. The jobs are
// enqueued after the store's transaction, never inside it, within a small
// budget and without failing the caller; the keeper's sweep finds anything
// an enqueue missed. A log job this process enqueued moments ago is not
// enqueued again (followLog, logmemo.go).
func (k *Keeper) Observe(s Store) Store { return &observed{Store: s, k: k} }

type observed struct {
	Store
	k *Keeper
}

// followBudget bounds the enqueues after a recorded step.
const followBudget = 300 * time.Millisecond

func (o *observed) Create(ctx context.Context, a *Addon) (*Addon, bool, error) {
	stored, created, err := o.Store.Create(ctx, a)
	if err == nil && created && stored.LogInputURL != "" && o.k.Logs != nil {
		o.followLog(ctx, stored.ID)
	}
	return stored, created, err
}

func (o *observed) Update(ctx context.Context, id ID, fn func(ctx context.Context, a *Addon) error) (*Addon, error) {
	var events []Event
	a, err := o.Store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		err := fn(ctx, a)
		events = append(events[:0], a.events...)
		return err
	})
	return o.after(ctx, id, a, events, err)
}

// Record is Update for a lease holder (the pipeline's writers record
// through it); observed the same way.
func (o *observed) Record(ctx context.Context, l Lease, seen *Addon, release bool, fn func(ctx context.Context, a *Addon) error) (*Addon, error) {
	var events []Event
	a, err := o.Store.Record(ctx, l, seen, release, func(ctx context.Context, a *Addon) error {
		err := fn(ctx, a)
		events = append(events[:0], a.events...)
		return err
	})
	return o.after(ctx, l.AddonID, a, events, err)
}

func (o *observed) after(ctx context.Context, id ID, a *Addon, events []Event, err error) (*Addon, error) {
	if err != nil || len(events) == 0 {
		return a, err
	}
	logged, provisioned := false, false
	for _, e := range events {
		if _, ok := Milestone(e); ok {
			logged = true
		}
		if e.Kind == "state" && e.State == StateProvisioned {
			provisioned = true
		}
	}
	if logged && a.LogInputURL != "" && o.k.Logs != nil {
		o.followLog(ctx, id)
	}
	if provisioned && a.State == StateProvisioned && a.Tokens != nil && o.k.Watcher != nil && o.k.WebhookURL != "" {
		o.follow(ctx, JobSubscribe, id)
	}
	return a, nil
}

func (o *observed) follow(ctx context.Context, kind JobKind, id ID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), followBudget)
	defer cancel()
	o.k.enqueue(ctx, kind, id)
}
