package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Report is what a run did and found.
type Report struct {
	Seed    int64
	Options Options
	Elapsed time.Duration
	LogDir  string   // where the processes' logs are kept (failed runs)
	Tails   []string // the logs' last lines, for failed rounds

	mu         sync.Mutex
	faults     map[string]map[Round][]string // fault → round → details
	faultErrs  []string
	rounds     []Round
	results    map[Round]result
	violations map[string][]string // invariant → "round: detail"
	excused    map[string][]string
}

func newReport(o Options) *Report {
	return &Report{Seed: o.Seed, Options: o, faults: map[string]map[Round][]string{}, results: map[Round]result{}, violations: map[string][]string{}, excused: map[string][]string{}}
}

func (r *Report) fault(round Round, name, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.faults[name] == nil {
		r.faults[name] = map[Round][]string{}
	}
	r.faults[name][round] = append(r.faults[name][round], detail)
}

func (r *Report) faultError(round Round, name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faultErrs = append(r.faultErrs, fmt.Sprintf("%s: %s: %v", round, name, err))
}

func (r *Report) add(round Round, w *workload, res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rounds = append(r.rounds, round)
	r.results[round] = res
	for inv, v := range res.violations {
		for _, d := range v {
			r.violations[inv] = append(r.violations[inv], string(round)+": "+d)
		}
	}
	for inv, v := range res.excused {
		for _, d := range v {
			r.excused[inv] = append(r.excused[inv], string(round)+": "+d)
		}
	}
}

// OK reports whether every invariant held and every fault was injected.
func (r *Report) OK() bool { return len(r.Violated()) == 0 && len(r.faultErrs) == 0 }

// Violated names the invariants that did not hold.
func (r *Report) Violated() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, inv := range InvariantOrder {
		if len(r.violations[inv]) > 0 {
			out = append(out, inv)
		}
	}
	return out
}

// Injected counts the faults of one kind across rounds.
func (r *Report) Injected(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, d := range r.faults[name] {
		n += len(d)
	}
	return n
}

// Outcome counts a round's accepted add-ons and those that ended
// provisioned.
func (r *Report) Outcome(round Round) (accepted, provisioned int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.results[round]
	return res.addons, res.outcome["provisioned"]
}

// Write prints the run as Markdown tables: workload, faults injected,
// invariants checked, then the violations, each named.
func (r *Report) Write(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.Options
	fmt.Fprintf(w, "Chaos run: seed %d, rounds %v, %s of work per round, %d web + %d worker processes, %.1f Heroku calls/s; %s in all.\n\n",
		r.Seed, r.rounds, o.Duration, o.Webs, o.Workers, o.Rate, r.Elapsed.Round(time.Second))

	fmt.Fprintln(w, "| round | provisions sent | accepted | plan changes (accepted) | rotations (done: answers) | deprovisions (accepted) | final states | settled in |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, round := range r.rounds {
		res := r.results[round]
		c := res.counts
		var st []string
		for k, v := range res.outcome {
			st = append(st, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(st)
		var rot []string
		for code, n := range c.RotationAnswers {
			rot = append(rot, fmt.Sprintf("%d×%d", n, code))
		}
		sort.Strings(rot)
		fmt.Fprintf(w, "| %s | %d | %d | %d (%d) | %d (%d: %s) | %d (%d) | %s | %s |\n", round, c.Provisions, c.Accepted,
			c.PlanChanges, c.PlansAccepted, c.Rotations, c.Rotated, strings.Join(rot, " "), c.Deprovisions, c.DeprovAccepted, strings.Join(st, ", "), res.took.Round(time.Second))
	}

	fmt.Fprintln(w, "\n| fault injected | "+roundHeads(r.rounds)+" |")
	fmt.Fprintln(w, "| --- |"+strings.Repeat(" --- |", len(r.rounds)))
	for _, f := range AllFaults {
		if r.faults[f] == nil {
			continue
		}
		var cells []string
		for _, round := range r.rounds {
			cells = append(cells, fmt.Sprintf("%d", len(r.faults[f][round])))
		}
		fmt.Fprintf(w, "| %s | %s |\n", f, strings.Join(cells, " | "))
	}
	for _, e := range r.faultErrs {
		fmt.Fprintf(w, "| NOT INJECTED: %s | |\n", e)
	}

	fmt.Fprintln(w, "\n| invariant | promise | "+roundHeads(r.rounds)+" | result |")
	fmt.Fprintln(w, "| --- | --- |"+strings.Repeat(" --- |", len(r.rounds))+" --- |")
	for _, inv := range InvariantOrder {
		var cells []string
		for _, round := range r.rounds {
			res := r.results[round]
			cell := fmt.Sprintf("%d checked, %d violated", res.checked[inv], len(res.violations[inv]))
			if n := len(res.excused[inv]); n > 0 {
				cell += fmt.Sprintf(", %d lost with a killed process", n)
			}
			cells = append(cells, cell)
		}
		verdict := "held"
		if len(r.violations[inv]) > 0 {
			verdict = "**VIOLATED**"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", inv, Promises[inv], strings.Join(cells, " | "), verdict)
	}
	for _, inv := range InvariantOrder {
		v := r.violations[inv]
		if len(v) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nVIOLATED %s (%d):\n", inv, len(v))
		for i, d := range v {
			if i == 20 {
				fmt.Fprintf(w, "  ... and %d more\n", len(v)-i)
				break
			}
			fmt.Fprintf(w, "  %s\n", d)
		}
	}
	for _, inv := range InvariantOrder {
		if v := r.excused[inv]; len(v) > 0 {
			fmt.Fprintf(w, "\n%s: %d add-ons lost with a SIGKILLed process, reported failed (not violations):\n", inv, len(v))
			for _, d := range v {
				fmt.Fprintf(w, "  %s\n", d)
			}
		}
	}
	if r.LogDir != "" {
		fmt.Fprintf(w, "\nProcess logs: %s\n", r.LogDir)
	}
}

func roundHeads(rounds []Round) string {
	var s []string
	for _, r := range rounds {
		s = append(s, "round "+string(r))
	}
	return strings.Join(s, " | ")
}
