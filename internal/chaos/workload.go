package chaos

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

// plans the workload moves add-ons between (the account driver's catalog).
var plans = []string{"test", "basic", "pro"}

// tracked is one add-on as Heroku knows it: what it asked for and what
// Kiln answered.
type tracked struct {
	id            string
	accepted      bool   // Kiln answered the provision 2xx
	plan          string // the plan Heroku last asked for and Kiln accepted
	planUnknown   bool   // a plan change got no definite answer
	deleted       bool   // Kiln accepted the deprovision (204, or 410 on a retry)
	deleteUnknown bool
	busy          bool // a Heroku call for it is in flight (Heroku sends one at a time)
}

// counts are the workload's totals, for the report.
type counts struct {
	Provisions, Accepted         int
	PlanChanges, PlansAccepted   int
	Rotations, Rotated           int
	Deprovisions, DeprovAccepted int
	RotationAnswers              map[int]int // operator API status → count (0: no answer)
}

type workload struct {
	s      *stack
	rng    *rand.Rand // used by run's goroutine only
	rate   float64
	client *http.Client

	provisionsOnly bool

	mu     sync.Mutex
	addons []*tracked
	n      counts
	wg     sync.WaitGroup
}

func newWorkload(s *stack, rng *rand.Rand, rate float64) *workload {
	return &workload{s: s, rng: rng, rate: rate, client: &http.Client{Timeout: 25 * time.Second}}
}

// run starts Heroku calls at the rate until ctx ends: mostly provisions,
// then plan changes, rotations and deprovisions of provisioned add-ons.
func (w *workload) run(ctx context.Context) {
	t := time.NewTicker(time.Duration(float64(time.Second) / w.rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r := w.rng.Float64()
		opRng := rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64()))
		var a *tracked
		if r >= 0.5 && !w.provisionsOnly {
			a = w.pick(w.rng)
		}
		w.wg.Add(1)
		switch {
		case a == nil:
			go w.provision(opRng)
		case r < 0.7:
			go w.changePlan(a, opRng)
		case r < 0.85:
			go w.rotate(a, opRng)
		default:
			go w.deprovision(a, opRng)
		}
	}
}

// wait waits for the calls in flight.
func (w *workload) wait() { w.wg.Wait() }

// pick chooses an add-on Heroku shows as provisioned with no call in
// flight, and marks it busy; nil if there is none.
func (w *workload) pick(rng *rand.Rand) *tracked {
	w.mu.Lock()
	defer w.mu.Unlock()
	var live []*tracked
	for _, a := range w.addons {
		if a.accepted && !a.busy && !a.deleted && !a.deleteUnknown {
			if st, ok := w.s.sim.Addon(a.id); ok && st.State == "provisioned" {
				live = append(live, a)
			}
		}
	}
	if len(live) == 0 {
		return nil
	}
	a := live[rng.IntN(len(live))]
	a.busy = true
	return a
}

func (w *workload) done(a *tracked, f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a.busy = false
	if f != nil {
		f()
	}
}

// webs picks two different web processes, dead or alive: Heroku's router
// does not know which dyno is about to die.
func (w *workload) webs(rng *rand.Rand) (string, string) {
	i := rng.IntN(len(w.s.webs))
	if len(w.s.webs) == 1 {
		return w.s.webs[i], w.s.webs[i]
	}
	j := (i + 1 + rng.IntN(len(w.s.webs)-1)) % len(w.s.webs)
	return w.s.webs[i], w.s.webs[j]
}

// call makes one Heroku call to a web process; status 0 means no answer.
func (w *workload) call(web, method, path string, body any, admin bool) int {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, w.s.webURL(web)+path, rd)
	user, pass, accept := addonID, addonPassword, "application/vnd.heroku-addons+json; version=3"
	if admin {
		user, pass, accept = "admin", adminPassword, "application/vnd.kiln+json; version=1"
	}
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	req.Header.Set("Accept", accept)
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// definite reports whether an answer settles the call: success, or a
// refusal that a retry would not change.
func definite(status int) bool {
	return status >= 200 && status < 300 || status >= 400 && status < 500 && status != 429 && status != 408
}

// retry repeats a call (to random webs) until a definite answer, about as
// patiently as Heroku; it returns the last status.
func (w *workload) retry(rng *rand.Rand, first string, do func(web string) int) int {
	web := first
	status := 0
	for attempt := 0; attempt < 12; attempt++ {
		if status = do(web); definite(status) {
			return status
		}
		time.Sleep(500 * time.Millisecond)
		web = w.s.webs[rng.IntN(len(w.s.webs))]
	}
	return status
}

// provision registers a new add-on with the simulator (its grant) and
// sends Heroku's provision call to two webs at once.
func (w *workload) provision(rng *rand.Rand) {
	defer w.wg.Done()
	id := uuid.NewString()
	plan := plans[rng.IntN(len(plans))]
	grant := w.s.sim.NewAddon(id)
	body := map[string]any{
		"uuid":         id,
		"name":         "chaos-" + id[:8],
		"plan":         plan,
		"region":       "amazon-web-services::us-east-1",
		"callback_url": "https://api.heroku.com/addons/" + id,
		"options":      map[string]string{},
		"oauth_grant": map[string]any{
			"code":       grant.Code,
			"expires_at": grant.ExpiresAt.Format("2006-01-02T15:04:05-0700"),
			"type":       "authorization_code",
		},
	}
	a := &tracked{id: id, plan: plan, busy: true}
	w.mu.Lock()
	w.addons = append(w.addons, a)
	w.n.Provisions++
	w.mu.Unlock()
	accepted := false
	for attempt := 0; attempt < 12 && !accepted; attempt++ {
		if attempt > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		x, y := w.webs(rng)
		var sx, sy int
		var both sync.WaitGroup
		both.Add(2)
		go func() { defer both.Done(); sx = w.call(x, "POST", "/heroku/resources", body, false) }()
		go func() { defer both.Done(); sy = w.call(y, "POST", "/heroku/resources", body, false) }()
		both.Wait()
		accepted = sx/100 == 2 || sy/100 == 2
		if !accepted && (definite(sx) || definite(sy)) {
			break // refused: Heroku reports the failure to the customer
		}
	}
	w.done(a, func() {
		a.accepted = accepted
		if accepted {
			w.n.Accepted++
		}
	})
}

func (w *workload) changePlan(a *tracked, rng *rand.Rand) {
	defer w.wg.Done()
	w.mu.Lock()
	to := plans[rng.IntN(len(plans))]
	for to == a.plan {
		to = plans[rng.IntN(len(plans))]
	}
	w.n.PlanChanges++
	w.mu.Unlock()
	web, _ := w.webs(rng)
	status := w.retry(rng, web, func(web string) int {
		return w.call(web, "PUT", "/heroku/resources/"+a.id, map[string]any{"plan": to, "heroku_id": "app" + a.id[:8] + "@heroku.com"}, false)
	})
	w.done(a, func() {
		switch {
		case status/100 == 2:
			a.plan = to
			w.n.PlansAccepted++
		case !definite(status):
			a.planUnknown = true
		}
	})
}

// rotate rolls the add-on's credentials through the operator API, as an
// operator (or the customer's dashboard) would, while Heroku's calls flow.
func (w *workload) rotate(a *tracked, rng *rand.Rand) {
	defer w.wg.Done()
	w.mu.Lock()
	w.n.Rotations++
	w.mu.Unlock()
	web, _ := w.webs(rng)
	status := w.call(web, "POST", "/admin/api/resources/"+a.id+"/actions/rotate-credentials", nil, true)
	w.done(a, func() {
		if status/100 == 2 {
			w.n.Rotated++
		}
		if w.n.RotationAnswers == nil {
			w.n.RotationAnswers = map[int]int{}
		}
		w.n.RotationAnswers[status]++
	})
}

func (w *workload) deprovision(a *tracked, rng *rand.Rand) {
	defer w.wg.Done()
	w.mu.Lock()
	w.n.Deprovisions++
	w.mu.Unlock()
	web, _ := w.webs(rng)
	status := w.retry(rng, web, func(web string) int {
		return w.call(web, "DELETE", "/heroku/resources/"+a.id, nil, false)
	})
	w.done(a, func() {
		switch {
		case status/100 == 2 || status == http.StatusGone:
			a.deleted = true
			w.n.DeprovAccepted++
		case !definite(status):
			a.deleteUnknown = true
		}
	})
}

// snapshot copies the tracked add-ons for the checker.
func (w *workload) snapshot() ([]tracked, counts) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]tracked, len(w.addons))
	for i, a := range w.addons {
		out[i] = *a
	}
	n := w.n
	n.RotationAnswers = maps.Clone(w.n.RotationAnswers)
	return out, n
}

// terminal reports whether Kiln is done with an add-on, whatever the
// outcome: nothing more will change without a new call from Heroku.
func terminal(t tracked, a *addon.Addon, simState string) bool {
	switch {
	case a == nil:
		return true
	case t.deleted:
		return a.State == addon.StateDeprovisioned
	case a.State == addon.StateFailed:
		return true
	case a.State == addon.StateProvisioned:
		return simState == "provisioned" && a.PendingPlan == "" && !a.ConfigPushedAt.IsZero()
	}
	return false
}
