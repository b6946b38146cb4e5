package addon_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// memoStep is one write through the observed store: advance the clock,
// then record on add-on #(addon+1) (a milestone unless write says
// otherwise), with the queue down when down is set, and the calls it
// must make.
type memoStep struct {
	advance time.Duration
	addon   int
	down    bool
	write   func(ctx context.Context, f *fixture, obs addon.Store, id addon.ID) error
	calls   []string
}

// milestone records "credentials rotated", a line for the app's log.
func milestone(ctx context.Context, f *fixture, obs addon.Store, id addon.ID) error {
	_, err := obs.Update(ctx, id, func(_ context.Context, a *addon.Addon) error {
		a.Note(f.now(), "credentials", "credentials rotated")
		return nil
	})
	return err
}

// TestKeeperLogMemo: a milestone recorded less than LogSkip after this
// process enqueued the add-on's log job with success does not enqueue it
// again (that job, still held, reads the line); anything else does.
func TestKeeperLogMemo(t *testing.T) {
	ctx := context.Background()
	log1, log2 := []string{"Enqueue addon:log #1"}, []string{"Enqueue addon:log #2"}
	tests := []struct {
		name  string
		steps []memoStep
	}{
		{
			name: "three milestones within the window: one enqueue",
			steps: []memoStep{
				{calls: log1},
				{advance: addon.LogSkip / 2},
				{advance: addon.LogSkip/2 - time.Nanosecond},
			},
		},
		{
			name: "a milestone once the window passed: enqueued again, and remembered anew",
			steps: []memoStep{
				{calls: log1},
				{advance: addon.LogSkip, calls: log1},
				{advance: addon.LogSkip - time.Nanosecond},
			},
		},
		{
			name: "a failed enqueue is not remembered",
			steps: []memoStep{
				{down: true, calls: []string{"Enqueue addon:log #1: down"}},
				{calls: log1},
				{},
			},
		},
		{
			name: "add-ons are remembered apart",
			steps: []memoStep{
				{calls: log1},
				{addon: 1, calls: log2},
				{},
				{addon: 1},
				{advance: addon.LogSkip, addon: 1, calls: log2},
			},
		},
		{
			name: "a clock that went back does not stretch the window",
			steps: []memoStep{
				{calls: log1},
				{advance: -time.Second, calls: log1},
			},
		},
		{
			name: "the add-on became provisioned within the window: its webhooks are still subscribed",
			steps: []memoStep{
				{calls: log1},
				{
					write: func(ctx context.Context, f *fixture, obs addon.Store, id addon.ID) error {
						_, err := obs.Update(ctx, id, func(_ context.Context, a *addon.Addon) error {
							return a.Transition(f.now(), addon.StateProvisioned, "")
						})
						return err
					},
					calls: []string{"Enqueue addon:webhooks #1"},
				},
			},
		},
		{
			name: "a write without a milestone neither enqueues nor is remembered",
			steps: []memoStep{
				{
					write: func(ctx context.Context, f *fixture, obs addon.Store, id addon.ID) error {
						_, err := obs.Update(ctx, id, func(_ context.Context, a *addon.Addon) error {
							a.Note(f.now(), "sso", "signed in through Heroku: ann")
							return nil
						})
						return err
					},
				},
				{calls: log1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			k := f.keeper()
			obs := k.Observe(f.store)
			down := false
			f.queue.EnqueueFn = func(ctx context.Context, kind addon.JobKind, id addon.ID) error {
				if down {
					f.called("Enqueue %s %s: down", kind, short(id))
					return errDown
				}
				f.called("Enqueue %s %s", kind, short(id))
				return nil
			}
			withURL := func(a *addon.Addon) { a.LogInputURL = logURL }
			ids := []addon.ID{f.add(t, exchanged, withURL), f.add(t, exchanged, withURL)}
			for i, st := range tt.steps {
				f.advance(st.advance)
				down = st.down
				write := st.write
				if write == nil {
					write = milestone
				}
				if err := write(ctx, f, obs, ids[st.addon]); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				f.wantCalls(t, st.calls...)
			}
		})
	}
}

// TestKeeperLogMemoCreate: the web process's Create enqueues the log job
// and remembers it, so a synchronous provision's later milestones in the
// same request do not enqueue it again.
func TestKeeperLogMemoCreate(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	k := f.keeper()
	obs := k.Observe(f.store)
	id := f.nextID()
	a := &addon.Addon{ID: id, State: addon.StateProvisioning, LogInputURL: logURL, Tokens: &addon.Tokens{Access: "a"}}
	a.Note(f.now(), "state", "provision requested on plan basic")
	if _, _, err := obs.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "Enqueue addon:log #1")
	if err := milestone(ctx, f, obs, id); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t)
}

// TestKeeperLogMemoSweep: the sweep does not consult the memory. A line
// its own job may have missed (its enqueue was absorbed by a job that had
// already read) is enqueued by the sweep even while a later milestone's
// enqueue is remembered: the memory never stretches a line's wait beyond
// what the sweep covers.
func TestKeeperLogMemoSweep(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	k := f.keeper()
	obs := k.Observe(f.store)
	id := f.add(t, func(a *addon.Addon) { a.LogInputURL = logURL })
	f.noted(t, id, "step", "resource created by driver fake") // not observed: as if absorbed
	f.advance(time.Minute)
	if err := milestone(ctx, f, obs, id); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "Enqueue addon:log #1")
	if err := k.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	f.wantCalls(t, "Enqueue addon:log #1")
}

// TestKeeperLogMemoBounded: the memory drops entries once they expire
// and never holds more than LogMemoCap add-ons; an add-on past the cap is
// not remembered, so its milestones enqueue as they did before.
func TestKeeperLogMemoBounded(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		n        int           // add-ons, one milestone each
		gap      time.Duration // between them
		max      int           // the most entries the memory may hold
		size     int           // entries after the last
		lastOnce bool          // the last add-on's next milestone is skipped
	}{
		{name: "one per window: each insert drops the expired", n: 100, gap: addon.LogSkip, max: 1, size: 1, lastOnce: true},
		{name: "four per window: dropped at most a window late", n: 100, gap: addon.LogSkip / 4, max: 8, size: 7, lastOnce: true},
		{name: "a burst past the cap: capped, the last not remembered", n: addon.LogMemoCap + 1, max: addon.LogMemoCap, size: addon.LogMemoCap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			k := f.keeper()
			obs := k.Observe(f.store)
			enqueued := map[addon.ID]int{}
			f.queue.EnqueueFn = func(ctx context.Context, kind addon.JobKind, id addon.ID) error {
				enqueued[id]++
				return nil
			}
			withURL := func(a *addon.Addon) { a.LogInputURL = logURL }
			var first, last addon.ID
			most := 0
			for i := range tt.n {
				if i > 0 {
					f.advance(tt.gap)
				}
				last = f.add(t, withURL)
				if i == 0 {
					first = last
				}
				if err := milestone(ctx, f, obs, last); err != nil {
					t.Fatal(err)
				}
				most = max(most, addon.LogMemoSize(k))
			}
			if most > tt.max {
				t.Errorf("the memory held %d add-ons, want at most %d", most, tt.max)
			}
			if got := addon.LogMemoSize(k); got != tt.size {
				t.Errorf("the memory holds %d add-ons, want %d", got, tt.size)
			}
			for _, id := range []addon.ID{first, last} {
				if err := milestone(ctx, f, obs, id); err != nil {
					t.Fatal(err)
				}
			}
			want := 2
			if tt.lastOnce {
				want = 1
			}
			if enqueued[last] != want {
				t.Errorf("the last add-on's two milestones enqueued %d jobs, want %d", enqueued[last], want)
			}
			if tt.gap == 0 && enqueued[first] != 1 {
				t.Errorf("the first add-on's two milestones within the window enqueued %d jobs, want 1", enqueued[first])
			}
		})
	}
}
