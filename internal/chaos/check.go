package chaos

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// Invariant names: what Heroku (and the customer) must see at the end.
const (
	InvAccepted    = "accepted-resolved"
	InvGrantOnce   = "grant-exchanged-once"
	InvResource    = "resource-iff-live"
	InvDeprovision = "deprovisioned-gone"
	InvPlan        = "plan-agrees"
	InvConfig      = "config-agrees"
)

// Promises says each invariant in words, for the table and the docs.
var Promises = map[string]string{
	InvAccepted:    "every add-on Kiln answered 2xx is provisioned (Kiln and Heroku agree) or failed with a recorded reason",
	InvGrantOnce:   "each OAuth grant is exchanged once (exactly once for a provisioned add-on); a second, refused exchange only when the first one's answer died with a SIGKILLed process, and then the add-on is reported failed",
	InvResource:    "the customer's resource exists exactly when the add-on is live",
	InvDeprovision: "every add-on whose deprovision Kiln accepted is deprovisioned and its resource gone",
	InvPlan:        "Kiln's plan, and the resource's, is the plan Heroku last asked for, with nothing pending",
	InvConfig:      "the config vars Heroku holds are Kiln's current credentials",
}

// InvariantOrder is the table's order.
var InvariantOrder = []string{InvAccepted, InvGrantOnce, InvResource, InvDeprovision, InvPlan, InvConfig}

// lostAnswerWindow is how long after Heroku received a grant exchange a
// SIGKILL of the process that sent it can have taken the answer with it:
// the answer's way back (at most 300 ms here) and the save, which a loaded
// machine (CI runs many packages at once) can stretch past a second.
const lostAnswerWindow = 5 * time.Second

// result is one check of one round.
type result struct {
	checked    map[string]int
	violations map[string][]string
	excused    map[string][]string // outcomes no design can avoid, reported as such
	settled    bool
	took       time.Duration
	counts     counts
	addons     int
	outcome    map[string]int // add-ons by final state
}

func (r result) ok() bool { return r.count() == 0 }

// count is the number of violations of every invariant.
func (r result) count() int {
	n := 0
	for _, v := range r.violations {
		n += len(v)
	}
	return n
}

// settle checks repeatedly until every invariant holds, or until every
// add-on is terminal and the violations stay, or until timeout.
func (w *workload) settle(ctx context.Context, timeout time.Duration) result {
	start := time.Now()
	deadline := start.Add(timeout)
	stable := 0
	for {
		res := w.check(ctx)
		res.took = time.Since(start)
		if res.ok() {
			return res
		}
		if res.settled {
			stable++
		} else {
			stable = 0
		}
		if stable >= 3 || time.Now().After(deadline) || ctx.Err() != nil {
			return res
		}
		time.Sleep(2 * time.Second)
	}
}

// check compares, for every add-on Heroku asked for, Kiln's records, the
// resource driver's rows and what the simulator (Heroku) holds.
func (w *workload) check(ctx context.Context) result {
	ts, n := w.snapshot()
	res := result{checked: map[string]int{}, violations: map[string][]string{}, excused: map[string][]string{}, settled: true, counts: n, outcome: map[string]int{}}
	bad := func(inv, id, format string, args ...any) {
		res.violations[inv] = append(res.violations[inv], id+": "+fmt.Sprintf(format, args...))
	}
	resources, err := w.resources(ctx)
	if err != nil {
		bad(InvResource, "-", "cannot read the resources: %v", err)
		return res
	}
	grants := map[string]int{}
	spent := map[string]herokusim.Call{} // the exchange that succeeded
	for _, c := range w.s.sim.Calls() {
		if c.Kind == herokusim.KindGrant && (c.Status < 300 || c.Status >= 400 && c.Status < 500 && c.Status != 429) {
			grants[c.AddonID]++
			if c.Status < 300 {
				spent[c.AddonID] = c
			}
		}
	}
	for _, t := range ts {
		if !t.accepted {
			continue
		}
		res.addons++
		a, err := w.s.db.Get(ctx, addon.ID(t.id))
		if err != nil {
			if addon.ErrorCode(err) != addon.ENOTFOUND {
				bad(InvAccepted, t.id, "cannot read: %v", err)
				res.settled = false
				continue
			}
			a = nil
		}
		sim, _ := w.s.sim.Addon(t.id)
		if !terminal(t, a, sim.State) {
			res.settled = false
		}
		plan, live := resources[t.id]

		res.checked[InvAccepted]++
		res.checked[InvGrantOnce]++
		res.checked[InvResource]++
		switch {
		case a == nil:
			res.outcome["not recorded"]++
			bad(InvAccepted, t.id, "accepted (2xx) but Kiln has no record of it")
		default:
			res.outcome[string(a.State)]++
		}
		if a == nil {
			continue
		}
		if grants[t.id] > 1 {
			// Heroku answered the exchange, but the process that asked was
			// SIGKILLed before it could hold on to the tokens: the single-use
			// code is spent and its answer gone with the process. No design
			// can keep that answer; Kiln must then report the add-on failed
			// with its reason (checked below), never try to carry on.
			c, ok := spent[t.id]
			who := w.s.callers.who(c.RequestID)
			if ok && who != "" && w.s.killedWithin(who, c.At, c.At.Add(lostAnswerWindow)) && a.State == addon.StateFailed {
				res.excused[InvGrantOnce] = append(res.excused[InvGrantOnce],
					fmt.Sprintf("%s: the exchange's answer died with SIGKILLed %s; failed: %s", t.id, who, a.Reason))
			} else {
				bad(InvGrantOnce, t.id, "grant exchanged %d times (first answered to %s at %s)", grants[t.id], who, c.At.Format("15:04:05.000"))
			}
		}
		if t.deleted {
			res.checked[InvDeprovision]++
			if a.State != addon.StateDeprovisioned {
				bad(InvDeprovision, t.id, "deprovision accepted but the add-on is %s", a.State)
			}
			if live {
				bad(InvDeprovision, t.id, "deprovisioned but its resource still exists")
			}
			continue
		}
		isLive := a.State == addon.StateProvisioned
		if live != isLive {
			bad(InvResource, t.id, "add-on is %s but resource exists=%t", a.State, live)
		}
		switch a.State {
		case addon.StateProvisioned:
			if sim.State != "provisioned" {
				bad(InvAccepted, t.id, "Kiln says provisioned, Heroku says %q", sim.State)
			}
			if grants[t.id] != 1 {
				bad(InvGrantOnce, t.id, "provisioned with %d grant exchanges", grants[t.id])
			}
		case addon.StateFailed:
			if strings.TrimSpace(a.Reason) == "" {
				bad(InvAccepted, t.id, "failed with no recorded reason")
			}
			continue
		case addon.StateDeprovisioning, addon.StateDeprovisioned:
			if !t.deleteUnknown {
				bad(InvAccepted, t.id, "%s though Heroku never asked (or Kiln refused)", a.State)
			}
			continue
		default:
			bad(InvAccepted, t.id, "still %s (reason %q)", a.State, a.Reason)
			continue
		}
		if !t.planUnknown {
			res.checked[InvPlan]++
			switch {
			case a.Plan != t.plan:
				bad(InvPlan, t.id, "Heroku asked for %s, Kiln has %s", t.plan, a.Plan)
			case a.PendingPlan != "":
				bad(InvPlan, t.id, "plan change to %s still pending", a.PendingPlan)
			case live && plan != a.Plan:
				bad(InvPlan, t.id, "Kiln has %s, the resource %s", a.Plan, plan)
			}
		}
		res.checked[InvConfig]++
		want := map[string]string{}
		for k, v := range a.Vars {
			want[configPrefix+"_"+k] = v
		}
		if !maps.Equal(want, sim.Config) {
			bad(InvConfig, t.id, "Heroku holds %s, Kiln %s", names(sim.Config, want), names(want, sim.Config))
		}
	}
	for _, v := range res.violations {
		sort.Strings(v)
	}
	for _, v := range res.excused {
		sort.Strings(v)
	}
	return res
}

// names lists a's vars that differ from b's, never their values (secrets).
func names(a, b map[string]string) string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "[]"
	}
	return "[" + strings.Join(out, " ") + " differ]"
}

// resources reads the account driver's live resources: add-on id → plan.
func (w *workload) resources(ctx context.Context) (map[string]string, error) {
	type row struct{ ID, Plan string }
	var rows []row
	err := w.s.db.Gorm().WithContext(ctx).Raw("SELECT id, plan FROM accounts WHERE deleted_at IS NULL").Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Plan
	}
	return out, nil
}
