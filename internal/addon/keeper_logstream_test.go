package addon_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

const logURL = "https://logs.example/1"

// noted records audit-trail events on the add-on, as the pipeline would.
func (f *fixture) noted(tb testing.TB, id addon.ID, kind string, messages ...string) {
	tb.Helper()
	f.update(tb, id, func(a *addon.Addon) {
		for _, m := range messages {
			a.Note(f.now(), kind, m)
		}
	})
}

func TestKeeperWriteLog(t *testing.T) {
	const lines = "WriteLog " + logURL + " Resource ready. | Credentials rotated: the new ones are in the config vars; the old ones no longer work."
	withURL := func(a *addon.Addon) { a.LogInputURL = logURL }
	refusing := func(f *fixture, url string, err error) {
		f.logs.WriteLogFn = func(ctx context.Context, u string, lines []addon.LogLine) error {
			f.called("WriteLog %s (%d lines)", u, len(lines))
			if u == url {
				return err
			}
			return nil
		}
	}
	tests := []struct {
		name   string
		shape  []func(a *addon.Addon)
		setup  func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID)
		code   string
		cursor int64 // the Link's LogCursor afterwards
		calls  []string
	}{
		{
			name:   "milestones reach the app's log; other events do not",
			shape:  []func(a *addon.Addon){withURL},
			cursor: 3, calls: []string{lines},
		},
		{
			name:  "nothing new",
			shape: []func(a *addon.Addon){withURL},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.LogCursor = 3 })
			},
			cursor: 3,
		},
		{
			name: "no log stream for the add-on",
		},
		{
			name:  "no log stream at all",
			shape: []func(a *addon.Addon){withURL},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) { k.Logs = nil },
		},
		{
			name:   "old events are not replayed",
			shape:  []func(a *addon.Addon){withURL},
			setup:  func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) { f.advance(25 * time.Hour) },
			cursor: 3,
		},
		{
			name:  "refused: Heroku rotated the URL, the new one is tried",
			shape: []func(a *addon.Addon){withURL},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.logs.WriteLogFn = func(ctx context.Context, u string, lines []addon.LogLine) error {
					f.called("WriteLog %s (%d lines)", u, len(lines))
					if u != logURL {
						return nil
					}
					f.update(t, id, func(a *addon.Addon) { a.LogInputURL = "https://logs.example/2" })
					return addon.Errorf(addon.EUNAUTHORIZED, "Token refused.")
				}
			},
			cursor: 3, calls: []string{"WriteLog " + logURL + " (2 lines)", "WriteLog https://logs.example/2 (2 lines)"},
		},
		{
			name:  "refused for good: the lines are dropped",
			shape: []func(a *addon.Addon){withURL},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				refusing(f, logURL, addon.Errorf(addon.EINVALID, "Gone."))
			},
			cursor: 3, calls: []string{"WriteLog " + logURL + " (2 lines)"},
		},
		{
			name:  "the stream is down: retried from the same place",
			shape: []func(a *addon.Addon){withURL},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				refusing(f, logURL, addon.Errorf(addon.EUNAVAILABLE, "Down."))
			},
			code: addon.EUNAVAILABLE, calls: []string{"WriteLog " + logURL + " (2 lines)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			k := f.keeper()
			id := f.add(t, tt.shape...)
			f.noted(t, id, "step", "resource created by driver fake")
			f.noted(t, id, "sso", "signed in through Heroku: ann")
			f.noted(t, id, "credentials", "credentials rotated")
			if tt.setup != nil {
				tt.setup(f, t, k, id)
			}
			wantCode(t, k.WriteLog(context.Background(), id), tt.code)
			f.store.Before = nil
			if got := f.link(t, id).LogCursor; got != tt.cursor {
				t.Errorf("log cursor %d, want %d", got, tt.cursor)
			}
			f.wantCalls(t, tt.calls...)
		})
	}
}

// TestKeeperWriteLogBatches: a backlog is written a batch at a time, all
// of it in one job.
func TestKeeperWriteLogBatches(t *testing.T) {
	f := newFixture(t)
	k := f.keeper()
	id := f.add(t, func(a *addon.Addon) { a.LogInputURL = logURL })
	for i := range 150 {
		f.noted(t, id, "plan", fmt.Sprintf("plan changed from basic to pro (%d)", i))
	}
	var sizes []int
	f.logs.WriteLogFn = func(ctx context.Context, url string, lines []addon.LogLine) error {
		sizes = append(sizes, len(lines))
		return nil
	}
	if err := k.WriteLog(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[100 50]" {
		t.Errorf("batches %v, want [100 50]", sizes)
	}
	if got := f.link(t, id).LogCursor; got != 150 {
		t.Errorf("log cursor %d, want 150", got)
	}
}

// TestKeeperWriteLogAbsorbed: a milestone recorded while the log job runs
// (after it read the events) has its enqueue absorbed by that job, which
// does not write it. The sweep finds it once it is older than its own job
// could have taken, and the next job writes it after the earlier lines:
// nothing is lost and the order holds.
func TestKeeperWriteLogAbsorbed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	k := f.keeper()
	id := f.add(t, func(a *addon.Addon) { a.LogInputURL = logURL })
	f.noted(t, id, "step", "resource created by driver fake")
	var written []string
	f.logs.WriteLogFn = func(ctx context.Context, url string, lines []addon.LogLine) error {
		for _, l := range lines {
			written = append(written, l.Message)
		}
		if len(written) == 1 { // the first job, running: the provision goes on
			f.update(t, id, func(a *addon.Addon) {
				if err := a.Transition(f.now(), addon.StateProvisioned, ""); err != nil {
					t.Fatal(err)
				}
			})
		}
		return nil
	}
	if err := k.WriteLog(ctx, id); err != nil {
		t.Fatal(err)
	}
	if len(written) != 1 {
		t.Fatalf("the first job wrote %q, want only the line it read", written)
	}

	steps := []struct {
		name    string
		advance time.Duration
		calls   []string
	}{
		{"at once: left to its own job", 0, nil},
		{"while its own job could still be waiting", addon.LogDelay + 2*time.Second, nil},
		{"once it could not be", time.Second, []string{"Enqueue addon:log #1"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			f.advance(st.advance)
			if err := k.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			f.wantCalls(t, st.calls...)
		})
	}
	if err := k.WriteLog(ctx, id); err != nil {
		t.Fatal(err)
	}
	want := "[Resource ready. Provisioned: the config vars are set and the app restarts with them.]"
	if fmt.Sprint(written) != want {
		t.Errorf("lines written %q, want %s", written, want)
	}
	f.advance(time.Minute)
	if err := k.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t) // nothing left
}

// TestKeeperObserve: the store the service writes through tells the keeper
// of milestones (a log-stream job) and of an add-on that became
// provisioned (a webhook subscription job), after the write and only for
// writes that succeeded.
func TestKeeperObserve(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	k := f.keeper()
	obs := k.Observe(f.store)
	svc := addon.NewService(addon.Deps{Store: obs, Queue: f.queue, Platform: f.platform, Driver: f.driver},
		addon.Options{Prefix: "KILN", Deadline: time.Hour, Now: f.now, Owner: "test.1"})

	req := request(f.nextID(), false)
	req.LogInputURL = logURL
	if _, _, err := svc.Provision(ctx, req); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "Enqueue addon:log #1", "Enqueue addon:grant #1")
	// The jobs come later than the window in which the keeper skips the
	// log job it has just enqueued (as a worker, another process, would
	// not know of it at all).
	f.advance(addon.LogSkip)
	if err := svc.GrantJob(ctx, req.ID); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "ExchangeGrant grant-1", "Enqueue addon:provision #1")
	if err := svc.ProvisionJob(ctx, req.ID); err != nil {
		t.Fatal(err)
	}
	// "Provisioned" follows "resource ready" at once: the job enqueued for
	// the one, still held, writes both.
	f.wantCalls(t, "Create #1 basic", "Enqueue addon:log #1",
		"SetConfig #1 access-1 KILN_URL=fake://basic", "MarkProvisioned #1 access-1",
		"Enqueue addon:webhooks #1")
	f.advance(addon.LogSkip)

	tests := []struct {
		name  string
		write func() error
		calls []string
	}{
		{"a duplicate provision", func() error { _, _, err := svc.Provision(ctx, req); return err }, nil},
		{"a change without an event", func() error {
			_, err := obs.Update(ctx, req.ID, func(_ context.Context, a *addon.Addon) error { a.Reason = "x"; return nil })
			return err
		}, nil},
		{"an event the customer need not see", func() error {
			_, err := obs.Update(ctx, req.ID, func(_ context.Context, a *addon.Addon) error { a.Note(f.now(), "sso", "x"); return nil })
			return err
		}, nil},
		{"a failed write", func() error {
			_, err := obs.Update(ctx, req.ID, func(_ context.Context, a *addon.Addon) error {
				a.Note(f.now(), "credentials", "credentials rotated")
				return errRefused
			})
			if err != errRefused {
				return fmt.Errorf("Update = %v, want fn's error", err)
			}
			return nil
		}, nil},
		{"a milestone", func() error {
			_, err := obs.Update(ctx, req.ID, func(_ context.Context, a *addon.Addon) error {
				a.Note(f.now(), "credentials", "credentials rotated")
				return nil
			})
			return err
		}, []string{"Enqueue addon:log #1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.write(); err != nil {
				t.Fatal(err)
			}
			f.wantCalls(t, tt.calls...)
		})
	}

	t.Run("without a log stream or webhooks", func(t *testing.T) {
		f := newFixture(t)
		k := f.keeper(func(k *addon.Keeper) { k.Logs, k.WebhookURL = nil, "" })
		obs := k.Observe(f.store)
		id := f.nextID()
		a := &addon.Addon{ID: id, State: addon.StateProvisioning, LogInputURL: logURL, Tokens: &addon.Tokens{Access: "a"}}
		a.Note(t0, "state", "provision requested on plan basic")
		if _, _, err := obs.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := obs.Update(ctx, id, func(_ context.Context, a *addon.Addon) error {
			return a.Transition(t0, addon.StateProvisioned, "")
		}); err != nil {
			t.Fatal(err)
		}
		f.wantCalls(t)
	})
}
