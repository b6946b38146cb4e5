package addon_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// answering makes GET /addons/{id} answer h (for the fixture's add-on
// #1), or err.
func answering(f *fixture, h addon.HerokuAddon, err error) {
	f.watcher.GetAddonFn = func(ctx context.Context, token string, id addon.ID) (addon.HerokuAddon, error) {
		f.called("GetAddon %s %s", short(id), token)
		return h, err
	}
}

func TestKeeperSync(t *testing.T) {
	const get = "GetAddon #1 access-1"
	removed := "state deprovisioning: " + addon.ReasonRemovedOnHeroku
	refused := addon.Errorf(addon.EUNAUTHORIZED, "The authorization was revoked.")
	tests := []struct {
		name    string
		shape   []func(a *addon.Addon)
		setup   func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID)
		code    string
		busy    bool
		state   addon.State
		link    func(t *testing.T, l *addon.Link) // checks the Link afterwards
		calls   []string
		events  []string
		refused bool // AccessRefused hook called
	}{
		{
			name:  "in step with Heroku: the app and Heroku's state are recorded",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.AccessRefused, l.AccessRefusedAt = "refused once", t0.Add(-time.Hour) })
			},
			state: addon.StateProvisioned,
			link: func(t *testing.T, l *addon.Link) {
				if l.AppID != "app-1" || l.AppName != "my-app" || l.HerokuState != "provisioned" || !l.SyncedAt.Equal(t0) ||
					!l.NextSyncAt.Equal(addon.NextSync(l.AddonID, t0, time.Hour)) || l.AccessRefused != "" || !l.AccessRefusedAt.IsZero() {
					t.Errorf("link %+v", l)
				}
			},
			calls: []string{get},
		},
		{
			name:  "Heroku has deprovisioned it: deprovisioned here too",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				answering(f, addon.HerokuAddon{AppID: "app-1", AppName: "my-app", State: "deprovisioned"}, nil)
			},
			state: addon.StateDeprovisioning,
			link: func(t *testing.T, l *addon.Link) {
				if l.HerokuState != "deprovisioned" {
					t.Errorf("Heroku state %q", l.HerokuState)
				}
			},
			calls:  []string{get, "Enqueue addon:deprovision #1"},
			events: []string{"sync: Heroku reports the add-on deprovisioned", removed},
		},
		{
			name:  "Heroku answers 404: deprovisioned here too",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				answering(f, addon.HerokuAddon{}, addon.Errorf(addon.ENOTFOUND, "Not found."))
			},
			state: addon.StateDeprovisioning,
			link: func(t *testing.T, l *addon.Link) {
				if l.HerokuState != "not found" || !l.SyncedAt.Equal(t0) {
					t.Errorf("link %+v", l)
				}
			},
			calls:  []string{get, "Enqueue addon:deprovision #1"},
			events: []string{"sync: Heroku answers 404 for the add-on", removed},
		},
		{
			name:  "Heroku refuses the token: flagged, nothing destroyed",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				answering(f, addon.HerokuAddon{}, refused)
			},
			state: addon.StateProvisioned,
			link: func(t *testing.T, l *addon.Link) {
				if l.AccessRefused != "The authorization was revoked." || !l.AccessRefusedAt.Equal(t0) || l.NextSyncAt.IsZero() {
					t.Errorf("link %+v", l)
				}
			},
			calls:   []string{get, "RefreshTokens refresh-1", "GetAddon #1 access-2"},
			events:  []string{"step: access token refreshed"},
			refused: true,
		},
		{
			name:  "refused again: the first refusal's time is kept",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				answering(f, addon.HerokuAddon{}, addon.Errorf(addon.EFORBIDDEN, "No access."))
				f.setLink(t, id, func(l *addon.Link) { l.AccessRefused, l.AccessRefusedAt = "before", t0.Add(-time.Hour) })
			},
			state: addon.StateProvisioned,
			link: func(t *testing.T, l *addon.Link) {
				if l.AccessRefused != "No access." || !l.AccessRefusedAt.Equal(t0.Add(-time.Hour)) {
					t.Errorf("link %+v", l)
				}
			},
			calls: []string{get}, refused: true,
		},
		{
			name:  "Heroku is down: retried",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				answering(f, addon.HerokuAddon{}, addon.Errorf(addon.EUNAVAILABLE, "Down."))
			},
			code: addon.EUNAVAILABLE, state: addon.StateProvisioned,
			link:  func(t *testing.T, l *addon.Link) { wantZeroSync(t, l) },
			calls: []string{get},
		},
		{
			name:  "not provisioned: nothing to compare",
			state: addon.StateProvisioning,
			link:  func(t *testing.T, l *addon.Link) { wantZeroSync(t, l) },
		},
		{
			name:  "without Platform API access",
			shape: []func(a *addon.Addon){provisioned, func(a *addon.Addon) { a.Tokens = nil }},
			state: addon.StateProvisioned,
			link:  func(t *testing.T, l *addon.Link) { wantZeroSync(t, l) },
		},
		{
			name:  "the sync is off",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) { k.Watcher = nil },
			state: addon.StateProvisioned,
		},
		{
			name:  "another writer holds it: retried shortly",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) { f.holdLease(t, id) },
			busy:  true, state: addon.StateProvisioned,
		},
		{
			name:  "the answer cannot be recorded",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				answering(f, addon.HerokuAddon{}, addon.Errorf(addon.ENOTFOUND, "Not found."))
				f.links.Before = func(op string, _ addon.ID) error {
					if op == "UpdateLink" {
						return errDown
					}
					return nil
				}
			},
			code: addon.EUNAVAILABLE, state: addon.StateProvisioned,
			calls: []string{get},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var refused []addon.ID
			f, k, id := arrangeKeeper(t, tt.shape, tt.setup, func(k *addon.Keeper) { k.AccessRefused = func(id addon.ID) { refused = append(refused, id) } })
			err := k.Sync(context.Background(), id)
			if tt.busy {
				if !addon.IsBusy(err) {
					t.Errorf("Sync = %v, want busy", err)
				}
			} else {
				wantCode(t, err, tt.code)
			}
			f.links.Before = nil
			f.wantState(t, id, tt.state, f.get(t, id).Reason)
			if tt.link != nil {
				tt.link(t, f.link(t, id))
			}
			if got := len(refused) > 0; got != tt.refused {
				t.Errorf("AccessRefused called %v, want %v", got, tt.refused)
			}
			f.wantCalls(t, tt.calls...)
			f.wantEvents(t, id, tt.events...)
			if !tt.busy {
				f.wantFree(t, id)
			}
		})
	}
}

func wantZeroSync(tb testing.TB, l *addon.Link) {
	tb.Helper()
	if !l.SyncedAt.IsZero() || l.HerokuState != "" || l.AccessRefused != "" {
		tb.Errorf("a sync was recorded: %+v", l)
	}
}

// TestKeeperSweep: each tick enqueues the work that is due, once per
// add-on; the scan of every live add-on runs at most every tenth of the
// sync interval.
func TestKeeperSweep(t *testing.T) {
	withEvent := func(a *addon.Addon) { a.LogInputURL = "https://logs.example/1" }
	subscribed := func(f *fixture, t *testing.T, id addon.ID, next time.Time) {
		f.setLink(t, id, func(l *addon.Link) { l.WebhookID, l.NextSyncAt = "hook-1", next })
	}
	tests := []struct {
		name  string
		shape []func(a *addon.Addon)
		setup func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID)
		calls []string
		check func(t *testing.T, f *fixture, id addon.ID)
	}{
		{
			// Their own job is held LogDelay by the queue and then writes
			// them: the sweep leaves them to it rather than re-enqueue a
			// waiting job (a deduplicated round trip to Redis).
			name:  "log lines just recorded",
			shape: []func(a *addon.Addon){withEvent},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.update(t, id, func(a *addon.Addon) { a.Note(f.now(), "step", "resource created by driver fake") })
				f.advance(addon.LogDelay + 2*time.Second)
			},
		},
		{
			name:  "log lines waiting longer than their job takes",
			shape: []func(a *addon.Addon){withEvent},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.update(t, id, func(a *addon.Addon) { a.Note(f.now(), "step", "resource created by driver fake") })
				f.advance(addon.LogDelay + 3*time.Second)
			},
			calls: []string{"Enqueue addon:log #1"},
		},
		{
			name:  "log lines waiting, without a log stream",
			shape: []func(a *addon.Addon){withEvent},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				k.Logs = nil
				f.update(t, id, func(a *addon.Addon) { a.Note(f.now(), "step", "resource created by driver fake") })
				f.advance(time.Minute)
			},
		},
		{
			name: "credentials whose grace ended",
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.RetiredVars, l.RetireAt = addon.Vars{"URL": "old"}, t0.Add(-time.Second) })
			},
			calls: []string{"Enqueue addon:retire #1"},
		},
		{
			name:  "first sight of a live add-on: given its sync slot, not synced at once",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.WebhookID = "hook-1" })
			},
			check: func(t *testing.T, f *fixture, id addon.ID) {
				if got, want := f.link(t, id).NextSyncAt, addon.NextSync(id, f.now(), time.Hour); !got.Equal(want) {
					t.Errorf("next sync %v, want %v", got, want)
				}
			},
		},
		{
			name:  "a sync whose slot has come",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				subscribed(f, t, id, t0.Add(-time.Second))
			},
			calls: []string{"Enqueue addon:sync #1"},
		},
		{
			name:  "a sync whose slot has come, with the sync off",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				subscribed(f, t, id, t0.Add(-time.Second))
				k.Watcher = nil
			},
		},
		{
			name:  "a live add-on without webhooks",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.NextSyncAt = t0.Add(time.Hour) })
				f.advance(2 * time.Minute)
			},
			calls: []string{"Enqueue addon:webhooks #1"},
		},
		{
			name:  "a subscription Heroku refused within the hour: not asked again yet",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.NextSyncAt, l.SubscribedAt = t0.Add(time.Hour), t0 })
				f.advance(59 * time.Minute)
			},
		},
		{
			name:  "a subscription Heroku refused over an hour ago: asked again",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.NextSyncAt, l.SubscribedAt = t0.Add(2*time.Hour), t0 })
				f.advance(61 * time.Minute)
			},
			calls: []string{"Enqueue addon:webhooks #1"},
		},
		{
			name:  "a live add-on whose token Heroku refused: not subscribed",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.NextSyncAt, l.AccessRefused = t0.Add(time.Hour), "refused" })
				f.advance(2 * time.Minute)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, k, id := arrangeKeeper(t, tt.shape, tt.setup)
			if err := k.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			f.wantCalls(t, tt.calls...)
			if tt.check != nil {
				tt.check(t, f, id)
			}
		})
	}
}

// TestKeeperSweepSkipsAnUnreadableLink: an add-on whose link cannot be
// read is skipped (its error returned), and the syncs and subscriptions
// behind it are enqueued all the same.
func TestKeeperSweepSkipsAnUnreadableLink(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	k := f.keeper()
	var ids []addon.ID
	for range 2 {
		id := f.add(t, provisioned)
		f.setLink(t, id, func(l *addon.Link) { l.WebhookID, l.NextSyncAt = "hook-1", t0.Add(-time.Second) })
		ids = append(ids, id)
	}
	unsubscribed := f.add(t, provisioned)
	f.setLink(t, unsubscribed, func(l *addon.Link) { l.NextSyncAt = t0.Add(time.Hour) })
	f.advance(2 * time.Minute)
	f.links.Before = func(op string, id addon.ID) error {
		if op == "Link" && id == ids[0] {
			return addon.Errorf(addon.EINTERNAL, "The secrets of add-on %s cannot be decrypted.", id)
		}
		return nil
	}
	if err := k.Sweep(ctx); addon.ErrorCode(err) != addon.EINTERNAL {
		t.Errorf("Sweep = %v, want the unreadable link's error", err)
	}
	f.wantCalls(t, "Enqueue addon:sync #2", "Enqueue addon:webhooks #3")
}

// TestKeeperSweepPace: retirements are looked for on every tick, the
// scan of live add-ons (syncs) only every tenth of the sync interval, and
// webhook event ids are forgotten after a week.
func TestKeeperSweepPace(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	k := f.keeper()
	id := f.add(t, provisioned)
	f.setLink(t, id, func(l *addon.Link) {
		l.WebhookID, l.NextSyncAt = "hook-1", t0.Add(-time.Second)
		l.RetiredVars, l.RetireAt = addon.Vars{"URL": "old"}, t0.Add(-time.Second)
	})
	if _, err := f.links.ApplyEvent(ctx, id, "event-1", func(*addon.Link) error { return nil }); err != nil {
		t.Fatal(err)
	}
	sweep := func(want ...string) {
		t.Helper()
		if err := k.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		f.wantCalls(t, want...)
	}
	sweep("Enqueue addon:retire #1", "Enqueue addon:sync #1")
	sweep("Enqueue addon:retire #1")
	f.advance(6 * time.Minute)
	sweep("Enqueue addon:retire #1", "Enqueue addon:sync #1")
	f.advance(6 * 24 * time.Hour)
	sweep("Enqueue addon:retire #1", "Enqueue addon:sync #1")
	if applied, _ := f.links.ApplyEvent(ctx, id, "event-1", func(*addon.Link) error { return nil }); applied {
		t.Error("a webhook event was forgotten within a week")
	}
	f.advance(2 * 24 * time.Hour)
	sweep("Enqueue addon:retire #1", "Enqueue addon:sync #1")
	if applied, _ := f.links.ApplyEvent(ctx, id, "event-1", func(*addon.Link) error { return nil }); !applied {
		t.Error("a webhook event id was remembered for more than a week")
	}

	for _, tt := range []struct{ interval, want time.Duration }{{time.Hour, 5 * time.Second}, {20 * time.Second, 2 * time.Second}, {0, time.Second}} {
		if got := (&addon.Keeper{SyncInterval: tt.interval}).SweepInterval(); got != tt.want {
			t.Errorf("SweepInterval with a sync every %v = %v, want %v", tt.interval, got, tt.want)
		}
	}
}

// TestKeeperSweepStoreDown: a listing that fails ends the sweep with its
// error; the next tick tries again.
func TestKeeperSweepStoreDown(t *testing.T) {
	for _, op := range []string{"LogBacklog", "DueForRetire", "DueForSync", "PruneEvents", "Unsubscribed"} {
		t.Run(op, func(t *testing.T) {
			f := newFixture(t)
			k := f.keeper()
			f.links.Before = func(o string, _ addon.ID) error {
				if o == op {
					return errDown
				}
				return nil
			}
			wantCode(t, k.Sweep(context.Background()), addon.EUNAVAILABLE)
		})
	}
}

// TestKeeperReads: what the dashboard and the operators read of the Links.
func TestKeeperReads(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	k := f.keeper()
	id := f.add(t, provisioned)
	other := f.add(t, provisioned)
	f.setLink(t, id, func(l *addon.Link) {
		l.AppName, l.AccessRefused = "my-app", "refused"
		l.RetiredVars, l.RetireAt = addon.Vars{"URL": "old"}, t0.Add(time.Hour)
	})
	if l, err := k.Link(ctx, id); err != nil || l.AppName != "my-app" {
		t.Errorf("Link = %+v, %v", l, err)
	}
	links, err := k.LinksOf(ctx, []addon.ID{id, other})
	if err != nil || len(links) != 1 || links[id] == nil {
		t.Errorf("LinksOf = %v, %v; want the one add-on with a Link", links, err)
	}
	if n, err := k.CountAccessRefused(ctx); err != nil || n != 1 {
		t.Errorf("CountAccessRefused = %d, %v", n, err)
	}
	if at, err := k.RetireAt(ctx, id); err != nil || !at.Equal(t0.Add(time.Hour)) {
		t.Errorf("RetireAt = %v, %v", at, err)
	}
	if at, err := k.RetireAt(ctx, other); err != nil || !at.IsZero() {
		t.Errorf("RetireAt without retired credentials = %v, %v", at, err)
	}
}

// TestKeeperStoreDown: work whose result cannot be recorded fails, to be
// retried; nothing half-done is taken for done.
func TestKeeperStoreDown(t *testing.T) {
	gone := addon.HerokuAddon{State: "deprovisioned"}
	tests := []struct {
		name  string
		store bool // the add-on store fails (else the Links)
		op    string
		nth   int // the op's call that fails (1 when 0)
		setup func(f *fixture)
		run   func(k *addon.Keeper, ctx context.Context, id addon.ID) error
	}{
		{name: "a sync in step", op: "UpdateLink", run: (*addon.Keeper).Sync},
		{name: "a refused sync", op: "UpdateLink", run: (*addon.Keeper).Sync,
			setup: func(f *fixture) { answering(f, addon.HerokuAddon{}, addon.Errorf(addon.EFORBIDDEN, "No.")) }},
		{name: "a sync that finds the add-on gone", store: true, op: "Update", run: (*addon.Keeper).Sync,
			setup: func(f *fixture) { answering(f, gone, nil) }},
		{name: "a log write: the add-on", store: true, op: "Get", run: (*addon.Keeper).WriteLog},
		{name: "a log write: the events", op: "EventsToLog", run: (*addon.Keeper).WriteLog},
		{name: "a log write: the cursor", op: "AdvanceLogCursor", run: (*addon.Keeper).WriteLog},
		{name: "a subscription: the add-on", store: true, op: "Get", run: (*addon.Keeper).Subscribe},
		{name: "a subscription: the secret", op: "UpdateLink", run: (*addon.Keeper).Subscribe},
		{name: "a retirement: the link", op: "UpdateLink", run: (*addon.Keeper).Retire,
			setup: func(f *fixture) { f.driver.AbilitiesFn = func() addon.Abilities { return addon.Abilities{Roll: true} } }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			k := f.keeper()
			id := f.add(t, provisioned, func(a *addon.Addon) { a.LogInputURL = logURL })
			f.noted(t, id, "step", "resource created by driver fake")
			f.setLink(t, id, func(l *addon.Link) { l.RetiredVars, l.RetireAt = addon.Vars{"URL": "old"}, t0.Add(-time.Second) })
			if tt.setup != nil {
				tt.setup(f)
			}
			fail := func(op string, _ addon.ID) error {
				if op == tt.op {
					return errDown
				}
				return nil
			}
			if tt.store {
				f.store.Before = fail
			} else {
				f.links.Before = fail
			}
			wantCode(t, tt.run(k, context.Background(), id), addon.EUNAVAILABLE)
		})
	}
}

// TestKeeperQueueDown: the keeper's follow-up jobs are asked for without
// failing the caller: a sweep finds their work again.
func TestKeeperQueueDown(t *testing.T) {
	f := newFixture(t)
	k := f.keeper()
	id := f.add(t, provisioned)
	f.setLink(t, id, func(l *addon.Link) { l.RetiredVars, l.RetireAt = addon.Vars{"URL": "old"}, t0.Add(-time.Second) })
	f.queue.EnqueueFn = func(ctx context.Context, kind addon.JobKind, id addon.ID) error {
		f.called("Enqueue %s %s", kind, short(id))
		return addon.Errorf(addon.EUNAVAILABLE, "Redis is down.")
	}
	if err := k.Sweep(context.Background()); err != nil {
		t.Errorf("Sweep = %v, want success with the queue down", err)
	}
	f.wantCalls(t, "Enqueue addon:retire #1")
}
