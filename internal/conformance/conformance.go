// Package conformance checks that a Kiln deployment behaves the way Heroku
// expects of an add-on provider: every Partner API behaviour Heroku relies
// on (Basic auth, the provision answer, idempotency, config var rules, plan
// change, deprovision, single sign-on), each as one row of a pass/fail
// report. It plays Heroku through internal/asheroku against a Kiln whose
// HEROKU_API_URL and HEROKU_ID_URL point at a Heroku simulator, so the
// asynchronous half (grant exchange, config push, "provisioned") is checked
// as Heroku would see it. `kiln-heroku check` runs it; partners run that in
// CI against staging, and Kiln's own tests run it against a real Kiln.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/asheroku"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// Status is a check's outcome.
type Status string

// The outcomes. A skipped check could not run because one it depends on
// failed; the failure that caused it is already in the report.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// Result is one row of the report.
type Result struct {
	Name   string
	Status Status
	Detail string
}

// Report is the outcome of a run, in the order the checks ran.
type Report struct {
	Results []Result
	// AddonID is the uuid of the add-on the run provisioned, so an operator
	// can look it up in Kiln's logs and admin pages.
	AddonID string
}

// Count returns how many results have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, res := range r.Results {
		if res.Status == s {
			n++
		}
	}
	return n
}

// OK reports whether every check passed (none failed or was skipped).
func (r *Report) OK() bool { return r.Count(Pass) == len(r.Results) && len(r.Results) > 0 }

// WriteTable prints the report as an aligned table with a summary line.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tCHECK\tDETAIL")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", res.Status, res.Name, oneLine(res.Detail))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	_, err := fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped (add-on %s)\n", r.Count(Pass), r.Count(Fail), r.Count(Skip), r.AddonID)
	return err
}

// Options say which Kiln to check and how.
type Options struct {
	// Kiln is the deployment under test, with the manifest's credentials.
	Kiln *asheroku.Kiln
	// Sim is the Heroku simulator the Kiln under test calls.
	Sim *asheroku.Sim
	// SSOSalt is the manifest's api.sso_salt (Kiln's ADDON_SSO_SALT).
	SSOSalt string
	// Prefix is the config var prefix; empty means Heroku's default for
	// the add-on id.
	Prefix string
	// ConfigVars, when set, are the manifest's api.config_vars: every var
	// Kiln sets must be one of them.
	ConfigVars []string
	// Plan is the plan provisioned (default "test") and NewPlan the one
	// the plan change moves to (default "basic").
	Plan    string
	NewPlan string
	// ProvisionTimeout bounds the wait for "provisioned" (default 60 s).
	ProvisionTimeout time.Duration
	// Poll is how often the simulator is polled (default 200 ms).
	Poll time.Duration
	// OnResult, when set, sees each result as soon as it is known.
	OnResult func(Result)
	// OnProgress, when set, sees the provisioning progress while waiting.
	OnProgress func(asheroku.Progress)
	// Webhooks checks the add-on webhook subscription and the receiver
	// (Kiln with HEROKU_WEBHOOKS on and a PUBLIC_URL the simulator reaches).
	Webhooks bool
	// LogStream sends a log_input_url and checks the lines Kiln writes.
	LogStream bool
	// AsyncDeprovision expects ASYNC_DEPROVISION=true: DELETE answers 202
	// and Kiln calls actions/deprovision when done.
	AsyncDeprovision bool
}

// varName is the rule Heroku applies to config var names.
var varName = regexp.MustCompile(`^[A-Z][0-9A-Z_]+$`)

// ssoMaxAge is how old a timestamp Heroku expects a provider to accept;
// the check posts one a minute older.
const ssoMaxAge = 5 * time.Minute

type runner struct {
	o      Options
	report *Report
}

func (r *runner) add(name string, s Status, detail string) {
	res := Result{Name: name, Status: s, Detail: detail}
	r.report.Results = append(r.report.Results, res)
	if r.o.OnResult != nil {
		r.o.OnResult(res)
	}
}

// check runs fn and records PASS with its detail, or FAIL with its error.
func (r *runner) check(name string, fn func() (string, error)) bool {
	detail, err := fn()
	if err != nil {
		r.add(name, Fail, err.Error())
		return false
	}
	r.add(name, Pass, detail)
	return true
}

func (r *runner) skip(because string, names ...string) {
	for _, n := range names {
		r.add(n, Skip, because)
	}
}

// The names of the checks, in the order they run.
const (
	CheckProvisionNoAuth      = "provision: 401 without credentials"
	CheckProvisionWrongUser   = "provision: 401 with a wrong user name"
	CheckProvisionWrongPass   = "provision: 401 with a wrong password"
	CheckPlanWrongPass        = "plan change: 401 with a wrong password"
	CheckDeprovisionWrongPass = "deprovision: 401 with a wrong password"
	CheckProvision            = "provision: 202 with the id, JSON"
	CheckProvisionRepeat      = "provision: a repeat answers the same"
	CheckProvisioned          = "provision: Kiln marks it provisioned on Heroku"
	CheckVarNames             = "config vars: names ^[A-Z][0-9A-Z_]+$ with the prefix"
	CheckVarValues            = "config vars: values are strings"
	CheckVarURLs              = "config vars: _URL values are valid URIs"
	CheckPlanChange           = "plan change: 200 for a known plan"
	CheckPlanUnknown          = "plan change: 422 for an unknown plan"
	CheckSSOBadToken          = "sso: 403 for a bad token"
	CheckSSOOld               = "sso: 403 for a 6-minute-old timestamp"
	CheckSSOGood              = "sso: a good token ends 303/200 with the heroku-nav-data cookie"
	CheckDeprovision          = "deprovision: 204"
	CheckDeprovisionRepeat    = "deprovision: a repeat answers 410 once deprovisioned"
	CheckProvisionGone        = "provision: a deprovisioned uuid answers 410"
)

// Run performs every check against the Kiln in o and returns the report. It
// never stops early: a failed check is a row, and checks that depend on it
// are skipped with the reason.
func Run(ctx context.Context, o Options) *Report {
	if o.Plan == "" {
		o.Plan = "test"
	}
	if o.NewPlan == "" {
		o.NewPlan = "basic"
	}
	if o.Prefix == "" {
		o.Prefix = addon.DefaultPrefix(o.Kiln.ID)
	}
	if o.ProvisionTimeout <= 0 {
		o.ProvisionTimeout = 60 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	id := uuid.NewString()
	r := &runner{o: o, report: &Report{AddonID: id}}
	r.auth(ctx)

	state, ok := r.provision(ctx, id)
	if !ok {
		return r.report
	}
	r.configVars(state)
	r.planChange(ctx, id)
	r.sso(ctx, id)
	r.webhooks(ctx, id)
	r.logStream(ctx, id, state)
	r.deprovision(ctx, id)
	if ok := r.report.Results[len(r.report.Results)-1]; ok.Name == CheckProvisionGone && ok.Status == Pass {
		r.asyncDeprovision(ctx, id)
	} else if r.o.AsyncDeprovision {
		r.skip("deprovisioning failed", CheckAsyncDeprovision)
	}
	return r.report
}

// auth checks that every Partner API endpoint refuses bad credentials.
func (r *runner) auth(ctx context.Context) {
	k := r.o.Kiln
	body := func() asheroku.ProvisionRequest {
		return asheroku.NewProvisionRequest(uuid.NewString(), r.o.Plan, nil, nil)
	}
	r.check(CheckProvisionNoAuth, func() (string, error) {
		return want401(k.WithCredentials("", "").Provision(ctx, body()))
	})
	r.check(CheckProvisionWrongUser, func() (string, error) {
		return want401(k.WithCredentials(k.ID+"-wrong", k.Password).Provision(ctx, body()))
	})
	wrong := k.WithCredentials(k.ID, k.Password+"-wrong")
	r.check(CheckProvisionWrongPass, func() (string, error) {
		return want401(wrong.Provision(ctx, body()))
	})
	r.check(CheckPlanWrongPass, func() (string, error) {
		return want401(wrong.ChangePlan(ctx, uuid.NewString(), r.o.NewPlan))
	})
	r.check(CheckDeprovisionWrongPass, func() (string, error) {
		return want401(wrong.Deprovision(ctx, uuid.NewString()))
	})
}

func want401(a *asheroku.Answer, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if a.Status != http.StatusUnauthorized {
		return "", fmt.Errorf("got %s; want 401: Heroku's credentials must be checked", a)
	}
	if !a.IsJSON() {
		return "", fmt.Errorf("401 without a JSON body (%s); Heroku expects JSON on every answer", a)
	}
	return a.String(), nil
}

// provisionState is what the provision checks learnt: the config vars as
// Heroku sees them.
type provisionState struct {
	config map[string]any
}

var afterProvision = []string{CheckVarNames, CheckVarValues, CheckVarURLs, CheckPlanChange, CheckPlanUnknown,
	CheckSSOBadToken, CheckSSOOld, CheckSSOGood, CheckDeprovision, CheckDeprovisionRepeat, CheckProvisionGone}

// provision provisions an add-on as Heroku does and waits until Kiln marks
// it provisioned. It reports false when later checks cannot run.
func (r *runner) provision(ctx context.Context, id string) (*provisionState, bool) {
	reg, err := r.o.Sim.Register(ctx, id)
	if err != nil {
		r.add(CheckProvision, Fail, fmt.Sprintf("cannot create the add-on on the Heroku simulator at %s: %v", r.o.Sim.URL, err))
		r.skip("provisioning failed", append([]string{CheckProvisionRepeat, CheckProvisioned}, r.afterProvision()...)...)
		return nil, false
	}
	req := asheroku.NewProvisionRequest(id, r.o.Plan, &reg.Grant, nil)
	if r.o.LogStream {
		// An older simulator has no log stream: the log rows fail then.
		req.LogInputURL, _ = r.o.Sim.LogInputURL(ctx, id)
	}
	st := &provisionState{}
	var first *asheroku.Answer
	ok := r.check(CheckProvision, func() (string, error) {
		a, err := r.o.Kiln.Provision(ctx, req)
		if err != nil {
			return "", err
		}
		first = a
		if a.Status != http.StatusAccepted && a.Status != http.StatusOK {
			return "", fmt.Errorf("got %s; want 202 with {\"id\": %q}", a, id)
		}
		if !a.IsJSON() {
			return "", fmt.Errorf("got %s without a JSON body; want 202 with {\"id\": %q}", a, id)
		}
		obj, err := a.Object()
		if err != nil {
			return "", err
		}
		if got, _ := obj["id"].(string); got != id {
			return "", fmt.Errorf("answer id is %v, want %q: %s", obj["id"], id, a)
		}
		if a.Status == http.StatusOK {
			// A synchronous provider answers 200 with the config; Kiln
			// provisions asynchronously but either is Heroku-correct.
			cfg, isObj := obj["config"].(map[string]any)
			if !isObj {
				return "", fmt.Errorf("200 without a config object (%s): a synchronous answer carries the config, an asynchronous one is 202", a)
			}
			st.config = cfg
		}
		return a.String(), nil
	})
	if !ok {
		r.skip("provisioning failed", append([]string{CheckProvisionRepeat, CheckProvisioned}, r.afterProvision()...)...)
		return nil, false
	}
	r.check(CheckProvisionRepeat, func() (string, error) {
		a, err := r.o.Kiln.Provision(ctx, req)
		if err != nil {
			return "", err
		}
		if a.Status != first.Status {
			return "", fmt.Errorf("the repeat got %s, the first %d; Heroku delivers at least once", a, first.Status)
		}
		obj, err := a.Object()
		if err != nil {
			return "", err
		}
		if got, _ := obj["id"].(string); got != id {
			return "", fmt.Errorf("the repeat answered id %v, want %q", obj["id"], id)
		}
		return a.String(), nil
	})
	if st.config != nil {
		r.add(CheckProvisioned, Pass, "synchronous: the config came in the answer")
		return st, true
	}
	ok = r.check(CheckProvisioned, func() (string, error) {
		wctx, cancel := context.WithTimeout(ctx, r.o.ProvisionTimeout)
		defer cancel()
		start := time.Now()
		sa, err := r.o.Sim.WaitProvisioned(wctx, id, r.o.Poll, r.o.OnProgress)
		if err != nil {
			return "", r.diagnose(ctx, id, err)
		}
		st.config = make(map[string]any, len(sa.Config))
		for k, v := range sa.Config {
			st.config[k] = v
		}
		return fmt.Sprintf("provisioned after %s with %d config vars", time.Since(start).Round(100*time.Millisecond), len(sa.Config)), nil
	})
	if !ok {
		r.skip("the add-on was never provisioned", r.afterProvision()...)
		return nil, false
	}
	return st, true
}

// diagnose explains why an add-on did not become provisioned, from the
// calls the simulator saw for it.
func (r *runner) diagnose(ctx context.Context, id string, waitErr error) error {
	if !errors.Is(waitErr, context.DeadlineExceeded) {
		return waitErr
	}
	calls, err := r.o.Sim.CallsFor(ctx, id)
	if err != nil {
		return fmt.Errorf("not provisioned within %s (and the simulator's calls cannot be read: %v)", r.o.ProvisionTimeout, err)
	}
	if len(calls) == 0 {
		return fmt.Errorf("not provisioned within %s: Kiln never called the simulator for this add-on; are Kiln's HEROKU_API_URL and HEROKU_ID_URL set to %s, and is its worker running?", r.o.ProvisionTimeout, r.o.Sim.URL)
	}
	p := asheroku.Progress{Calls: calls}
	if done, st := p.Step(herokusim.KindGrant); !done && st != 0 {
		return fmt.Errorf("not provisioned within %s: the grant exchange was refused (%d); does Kiln's HEROKU_OAUTH_CLIENT_SECRET match the simulator's?", r.o.ProvisionTimeout, st)
	}
	var seen []string
	for _, c := range calls {
		seen = append(seen, fmt.Sprintf("%s %d", c.Kind, c.Status))
	}
	return fmt.Errorf("not provisioned within %s; the simulator saw: %s", r.o.ProvisionTimeout, strings.Join(seen, ", "))
}

// configVars checks the config vars as Heroku received them.
func (r *runner) configVars(st *provisionState) {
	names := make([]string, 0, len(st.config))
	for k := range st.config {
		names = append(names, k)
	}
	sort.Strings(names)
	prefix := r.o.Prefix + "_"
	r.check(CheckVarNames, func() (string, error) {
		if len(names) == 0 {
			return "", fmt.Errorf("no config vars were set; Kiln must set at least %sURL", prefix)
		}
		var bad []string
		for _, n := range names {
			switch {
			case !varName.MatchString(n):
				bad = append(bad, fmt.Sprintf("%s does not match ^[A-Z][0-9A-Z_]+$", n))
			case !strings.HasPrefix(n, prefix):
				bad = append(bad, fmt.Sprintf("%s does not start with %s", n, prefix))
			case len(r.o.ConfigVars) > 0 && !contains(r.o.ConfigVars, n):
				bad = append(bad, fmt.Sprintf("%s is not in the manifest's config_vars %v", n, r.o.ConfigVars))
			}
		}
		if _, ok := st.config[prefix+"URL"]; !ok {
			bad = append(bad, fmt.Sprintf("%sURL is missing", prefix))
		}
		if len(bad) > 0 {
			return "", errors.New(strings.Join(bad, "; "))
		}
		return strings.Join(names, ", "), nil
	})
	r.check(CheckVarValues, func() (string, error) {
		// The simulator refuses non-string values as Heroku does (422), so
		// through it this can only fail for a synchronous answer; a refused
		// push shows up as "never provisioned" instead.
		for _, n := range names {
			if _, ok := st.config[n].(string); !ok {
				return "", fmt.Errorf("%s is %T, not a string", n, st.config[n])
			}
		}
		return fmt.Sprintf("%d of %d are strings", len(names), len(names)), nil
	})
	r.check(CheckVarURLs, func() (string, error) {
		var checked []string
		for _, n := range names {
			if !strings.HasSuffix(n, "_URL") {
				continue
			}
			v, _ := st.config[n].(string)
			u, err := url.Parse(v)
			if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "") {
				return "", fmt.Errorf("%s is not a valid absolute URI (%s)", n, redact(v))
			}
			checked = append(checked, fmt.Sprintf("%s=%s", n, redact(v)))
		}
		if len(checked) == 0 {
			return "", fmt.Errorf("no _URL config var to check; Kiln must set %sURL", prefix)
		}
		return strings.Join(checked, ", "), nil
	})
}

// planChange checks a plan change to a known plan and a refusal.
func (r *runner) planChange(ctx context.Context, id string) {
	r.check(CheckPlanChange, func() (string, error) {
		a, err := r.o.Kiln.ChangePlan(ctx, id, r.o.NewPlan)
		if err != nil {
			return "", err
		}
		// Heroku also accepts 202 for a change that finishes later.
		if a.Status != http.StatusOK && a.Status != http.StatusAccepted {
			return "", fmt.Errorf("plan change to %q got %s; want 200", r.o.NewPlan, a)
		}
		if !a.IsJSON() {
			return "", fmt.Errorf("plan change got %s without a JSON body", a)
		}
		return a.String(), nil
	})
	r.check(CheckPlanUnknown, func() (string, error) {
		plan := "no-such-plan-" + uuid.NewString()[:8]
		a, err := r.o.Kiln.ChangePlan(ctx, id, plan)
		if err != nil {
			return "", err
		}
		if a.Status != http.StatusUnprocessableEntity {
			return "", fmt.Errorf("plan change to %q got %s; want 422 with a message", plan, a)
		}
		if a.Message() == "" {
			return "", fmt.Errorf("422 without a JSON \"message\" (%s); Heroku shows it to the customer", a)
		}
		return a.String(), nil
	})
}

// sso checks single sign-on: refusals, then a good sign-in.
func (r *runner) sso(ctx context.Context, id string) {
	missing := func(a *asheroku.Answer) error {
		if a.Status == http.StatusNotFound || a.Status == http.StatusMethodNotAllowed {
			return fmt.Errorf("POST %s got %d: Kiln has no SSO endpoint (the manifest's sso_url)", asheroku.SSOPath, a.Status)
		}
		return nil
	}
	want403 := func(s asheroku.SSO, why string) (string, error) {
		in, err := r.o.Kiln.SignIn(ctx, s.Form())
		if err != nil {
			return "", err
		}
		if err := missing(in.First); err != nil {
			return "", err
		}
		if in.First.Status != http.StatusForbidden {
			return "", fmt.Errorf("%s got %s; want 403", why, in.First)
		}
		return in.First.String(), nil
	}
	r.check(CheckSSOBadToken, func() (string, error) {
		s := asheroku.NewSSO(id, r.o.SSOSalt+"-wrong")
		return want403(s, "a token signed with the wrong salt")
	})
	r.check(CheckSSOOld, func() (string, error) {
		s := asheroku.NewSSO(id, r.o.SSOSalt)
		s.Timestamp = time.Now().Add(-ssoMaxAge - time.Minute)
		return want403(s, "a correctly signed 6-minute-old timestamp")
	})
	r.check(CheckSSOGood, func() (string, error) {
		s := asheroku.NewSSO(id, r.o.SSOSalt)
		in, err := r.o.Kiln.SignIn(ctx, s.Form())
		if err != nil {
			return "", err
		}
		if err := missing(in.First); err != nil {
			return "", err
		}
		if in.First.Status >= 400 {
			return "", fmt.Errorf("a good sign-in got %s; want 303 to the dashboard (or 200)", in.First)
		}
		if in.Final.Status != http.StatusOK {
			return "", fmt.Errorf("a good sign-in ended with %d at %s; want 200", in.Final.Status, in.Final.URL)
		}
		if in.NavData == nil {
			return "", fmt.Errorf("no %s cookie was set; Heroku expects the posted nav-data in it", asheroku.NavDataCookie)
		}
		if !sameNavData(in.NavData.Value, s.NavData) {
			return "", fmt.Errorf("the %s cookie is %q, not the posted nav-data %q", asheroku.NavDataCookie, in.NavData.Value, s.NavData)
		}
		path := "/"
		if len(in.Hops) > 0 {
			if u, err := url.Parse(in.Hops[len(in.Hops)-1]); err == nil {
				path = u.Path
			}
		}
		return fmt.Sprintf("%d → 200 %s, %s set", in.First.Status, path, asheroku.NavDataCookie), nil
	})
}

// sameNavData compares a cookie value with the posted nav-data, allowing a
// provider to have quoted or URL-escaped it.
func sameNavData(cookie, posted string) bool {
	v := strings.Trim(cookie, `"`)
	if v == posted {
		return true
	}
	if u, err := url.QueryUnescape(v); err == nil && u == posted {
		return true
	}
	return false
}

// deprovision checks deprovisioning and what follows it.
func (r *runner) deprovision(ctx context.Context, id string) {
	ok := r.check(CheckDeprovision, func() (string, error) {
		a, err := r.o.Kiln.Deprovision(ctx, id)
		if err != nil {
			return "", err
		}
		switch {
		case r.o.AsyncDeprovision && a.Status == http.StatusAccepted:
			return a.String() + " (asynchronous deprovisioning)", nil
		case r.o.AsyncDeprovision:
			return "", fmt.Errorf("got %s; want 202 (ASYNC_DEPROVISION)", a)
		case a.Status == http.StatusNoContent:
			return a.String(), nil
		case a.Status == http.StatusOK && a.IsJSON():
			return a.String() + " (Heroku accepts 200 with JSON too)", nil
		}
		return "", fmt.Errorf("got %s; want 204", a)
	})
	if !ok {
		r.skip("deprovisioning failed", CheckDeprovisionRepeat, CheckProvisionGone)
		return
	}
	r.check(CheckDeprovisionRepeat, func() (string, error) {
		// A repeat while the provider is still cleaning up may answer 204
		// (Heroku accepts it); once the add-on is gone it must be 410. Poll
		// repeats until then, within the provisioning timeout.
		ctx, cancel := context.WithTimeout(ctx, r.o.ProvisionTimeout)
		defer cancel()
		start := time.Now()
		for {
			a, err := r.o.Kiln.Deprovision(ctx, id)
			if err != nil {
				return "", err
			}
			switch a.Status {
			case http.StatusGone:
				if time.Since(start) < r.o.Poll {
					return a.String(), nil
				}
				return fmt.Sprintf("%s (204 while deprovisioning, 410 after %s)", a, time.Since(start).Round(100*time.Millisecond)), nil
			case http.StatusNoContent:
			case http.StatusAccepted:
				if !r.o.AsyncDeprovision {
					return "", fmt.Errorf("a repeated deprovision got %s; want 410 (204 while still deprovisioning)", a)
				}
			default:
				return "", fmt.Errorf("a repeated deprovision got %s; want 410 (204 while still deprovisioning)", a)
			}
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("repeats still answer 204 after %s; Heroku expects 410 for a deprovisioned add-on", r.o.ProvisionTimeout)
			case <-time.After(r.o.Poll):
			}
		}
	})
	r.check(CheckProvisionGone, func() (string, error) {
		a, err := r.o.Kiln.Provision(ctx, asheroku.NewProvisionRequest(id, r.o.Plan, nil, nil))
		if err != nil {
			return "", err
		}
		if a.Status != http.StatusGone {
			return "", fmt.Errorf("provisioning a deprovisioned uuid got %s; want 410", a)
		}
		return a.String(), nil
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// redact hides the password of a URL, so a report (often a CI log) never
// carries a customer credential.
func redact(v string) string {
	u, err := url.Parse(v)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
