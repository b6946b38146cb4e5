package addon

import (
	"context"
	"sync"
	"time"
)

// The keeper's memory of the log jobs this process enqueued, so that the
// second and third milestones of a provision, recorded within milliseconds
// of the first by the same process, do not each cost a round trip (and a
// deduplicated one: a refused EVALSHA and an HGET in the jobs adapter) to
// put the same held job on the queue again.
//
// Why skipping is safe. A milestone reaches followLog after the store
// committed it (observed.after runs once Update or Record has returned).
// When this process's enqueue of JobLog returned nil at t (t read before
// the call), and the queue made the task then, the task is held LogDelay
// on the enqueuer's clock, which the jobs adapter keeps to the second: it
// can start from t + LogDelay - 1 s, not before. A line committed before
// t + logSkip is therefore committed before that job starts, and the job
// reads every event after its cursor when it runs (writeLogOnce): it
// writes the line, and a new enqueue would only be deduplicated into it.
// logSkip is half of what the second leaves of the hold; the other half is
// margin for the clock of the dyno whose forwarder releases the job, which
// may run a little ahead of this one.
//
// The caveat. Queue.Enqueue returns nil too when a task with the same id
// was already there: one enqueued earlier by another process (the web's
// Create, a sweep) and still waiting, or one running now. The domain cannot
// tell that from a task it made, so a nil is remembered either way. A task
// enqueued less than LogDelay - 1 s - logSkip (half a second) before ours
// is still held past the window (on one clock), which covers the common
// case: the worker's first milestone absorbed into the job the web's
// Create enqueued moments earlier. An older or running one may read the
// events before a line skipped in the window is committed; that line is
// then left to the sweep, which finds every line older than logSettle and
// is not gated by this memory (Sweep enqueues through enqueue, not
// followLog). The worst wait of a line therefore stays what it was,
// logSettle + SweepInterval + the hold (about 13 s); what grows is how
// often a line waits it: before, only when its own enqueue met the job
// running; now also when it follows such an absorbed enqueue by less than
// logSkip and the older job starts in between. A failed enqueue is never
// remembered: no job may exist.

// logSkip is how long after this process enqueued an add-on's log job a
// further milestone of that add-on skips its enqueue: half of LogDelay less
// the second the jobs adapter may take off the hold (500 ms).
const logSkip = (LogDelay - time.Second) / 2

// logMemoCap bounds the memory: add-ons beyond it while every entry is
// younger than logSkip (over 8,000 log enqueues a second) are not
// remembered, and only lose the saving.
const logMemoCap = 4096

// logMemo is when this process last enqueued each add-on's log job with
// success. The zero value is ready to use.
type logMemo struct {
	mu     sync.Mutex
	at     map[ID]time.Time
	pruned time.Time // when expired entries were last dropped
}

// live reports whether an enqueue remembered at at still holds a job at
// now. A clock that went back (now before at) does not extend it.
func live(at, now time.Time) bool { return !now.Before(at) && now.Before(at.Add(logSkip)) }

// held reports whether this process's enqueue of the add-on's log job is
// recent enough that a line committed by now will be read by that job.
func (m *logMemo) held(id ID, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.at[id]
	return ok && live(at, now)
}

// remember records an enqueue that returned nil, at (read before the
// call). Expired entries are dropped at most once per logSkip (and on
// every insert while the map is full), so the map holds about the add-ons
// of the last two windows and never more than logMemoCap.
func (m *logMemo) remember(id ID, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at == nil {
		m.at = make(map[ID]time.Time)
	}
	if d := at.Sub(m.pruned); d >= logSkip || d < 0 || len(m.at) >= logMemoCap {
		for k, t := range m.at {
			if !live(t, at) {
				delete(m.at, k)
			}
		}
		m.pruned = at
	}
	if _, ok := m.at[id]; !ok && len(m.at) >= logMemoCap {
		return
	}
	m.at[id] = at
}

// size is how many add-ons the memory holds (for tests).
func (m *logMemo) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.at)
}

// followLog enqueues the add-on's log job for a milestone the store has
// just committed, unless this process enqueued it less than logSkip ago
// (see the top of this file for why that job writes the line).
func (o *observed) followLog(ctx context.Context, id ID) {
	k := o.k
	now := k.now() // after the commit, before the enqueue: serves both
	if k.logJobs.held(id, now) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), followBudget)
	defer cancel()
	if k.enqueue(ctx, JobLog, id) == nil {
		k.logJobs.remember(id, now)
	}
}
