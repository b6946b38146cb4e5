package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// provisioned provisions an add-on on plan and waits until Kiln records it.
func (s *stack) provisioned(plan string) string {
	s.t.Helper()
	id, status, _ := s.Provision(plan)
	if status != http.StatusAccepted {
		s.t.Fatalf("provision answered %d", status)
	}
	eventually(s.t, 30*time.Second, "provisioned", func() bool { return s.State(id) == addon.StateProvisioned })
	s.settled(id)
	return id
}

// settled waits until the job that follows a provision has let go of the
// add-on: its webhook subscription made (unless HEROKU_WEBHOOKS=false)
// and its writer lease free. A synchronous call next (a plan change waits
// a moment for the lease, then goes on in the background) then finds no
// other writer, however slow the machine.
func (s *stack) settled(id string) {
	s.t.Helper()
	on, err := strconv.ParseBool(s.envValue("HEROKU_WEBHOOKS")) // as the config reads it; unset is on
	hooks := err != nil || on
	eventually(s.t, 30*time.Second, "the provision's follow-up job done", func() bool {
		if hooks && len(s.Sim.Webhooks(id)) == 0 {
			return false
		}
		return s.Get(id).LeaseOwner == ""
	})
}

func TestPlanChange(t *testing.T) {
	s := newStack(t)
	id := s.provisioned("test")
	unknown := uuid.NewString()
	tests := []struct {
		name   string
		id     string
		plan   string
		status int
		code   string
		plan2  string // Kiln's recorded plan afterwards
	}{
		{"upgrade", id, "basic", http.StatusOK, "", "basic"},
		{"same plan is a no-op", id, "basic", http.StatusOK, "", "basic"},
		{"unknown plan", id, "platinum", http.StatusUnprocessableEntity, "invalid", "basic"},
		{"unknown add-on", unknown, "basic", http.StatusNotFound, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := s.Call("PUT", "/heroku/resources/"+tt.id, map[string]string{"plan": tt.plan})
			if status != tt.status {
				t.Fatalf("answered %d %v, want %d", status, body, tt.status)
			}
			if tt.code != "" && (body["id"] != tt.code || body["message"] == "") {
				t.Errorf("error body %v, want id %q and a message", body, tt.code)
			}
			if tt.code == "" && body["message"] == "" {
				t.Errorf("body %v has no message", body)
			}
			if tt.plan2 != "" && s.Get(tt.id).Plan != tt.plan2 {
				t.Errorf("plan recorded %q, want %q", s.Get(tt.id).Plan, tt.plan2)
			}
		})
	}
}

// TestPlanChangeWhileProvisioning changes the plan while Heroku holds the
// provision action, and expires the access token meanwhile: the change is
// applied after provisioning, the token refreshed, the config pushed.
func TestPlanChangeWhileProvisioning(t *testing.T) {
	s := newStack(t)
	hold := make(chan struct{})
	s.Sim.Inject(herokusim.Fault{Kind: "provision", Hold: hold, Times: 1})
	id, _, _ := s.Provision("test")
	eventually(t, 30*time.Second, "the provision action is held", func() bool { return s.Sim.Holding("provision") == 1 })
	status, body := s.Call("PUT", "/heroku/resources/"+id, map[string]string{"plan": "basic"})
	if status != http.StatusAccepted {
		t.Fatalf("plan change while provisioning answered %d %v, want 202", status, body)
	}
	if !s.Sim.ExpireTokens(id) {
		t.Fatal("the simulator has no token for the add-on")
	}
	close(hold)
	eventually(t, 30*time.Second, "the new plan is applied", func() bool {
		a := s.Get(id)
		return a.State == addon.StateProvisioned && a.Plan == "basic" && a.PendingPlan == ""
	})
	eventually(t, 10*time.Second, "the config is pushed again after a refresh", func() bool {
		k := s.Kinds(id)
		return count(k, "refresh") == 1 && count(k, "config") == 2
	})
	if got := count(s.Kinds(id), "grant"); got != 1 {
		t.Errorf("grant exchanged %d times", got)
	}
}

func TestDeprovision(t *testing.T) {
	s := newStack(t)
	id := s.provisioned("test")
	if status, body := s.Call("DELETE", "/heroku/resources/"+id, nil); status != http.StatusNoContent {
		t.Fatalf("deprovision answered %d %v, want 204", status, body)
	}
	eventually(t, 30*time.Second, "deprovisioned", func() bool { return s.State(id) == addon.StateDeprovisioned })
	if a := s.Get(id); a.Vars != nil || a.Tokens != nil {
		t.Errorf("a deprovisioned add-on kept credentials or tokens")
	}
	if n := s.accounts(id); n != 0 {
		t.Errorf("the tenant account survived deprovisioning (%d rows)", n)
	}
	// The audit trail answers "what happened to this add-on?".
	events, err := s.db.Events(context.Background(), addon.ID(id))
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, e := range events {
		if e.Kind == "state" {
			states = append(states, string(e.State))
		}
		if e.At.IsZero() {
			t.Errorf("event %+v has no time", e)
		}
	}
	if got := strings.Join(states, ","); got != "provisioning,provisioned,deprovisioning,deprovisioned" {
		t.Errorf("audit trail states %s", got)
	}
	tests := []struct {
		name, method, path string
		body               any
		status             int
	}{
		{"repeat deprovision", "DELETE", "/heroku/resources/" + id, nil, http.StatusGone},
		{"provision a deprovisioned uuid", "POST", "/heroku/resources", provisionBody(id, "test", nil), http.StatusGone},
		{"deprovision an unknown uuid", "DELETE", "/heroku/resources/" + uuid.NewString(), nil, http.StatusNotFound},
		{"plan change after deprovision", "PUT", "/heroku/resources/" + id, map[string]string{"plan": "basic"}, http.StatusGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := s.Call(tt.method, tt.path, tt.body)
			if status != tt.status || body["id"] == nil || body["message"] == nil {
				t.Errorf("answered %d %v, want %d with a JSON error", status, body, tt.status)
			}
		})
	}
}

// TestDeprovisionWhileProvisioning removes an add-on while its provision
// action is held: the pipeline stops and the resource is cleaned up.
func TestDeprovisionWhileProvisioning(t *testing.T) {
	s := newStack(t)
	hold := make(chan struct{})
	s.Sim.Inject(herokusim.Fault{Kind: "provision", Hold: hold, Times: 1})
	id, _, _ := s.Provision("test")
	eventually(t, 30*time.Second, "the provision action is held", func() bool { return s.Sim.Holding("provision") == 1 })
	if status, body := s.Call("DELETE", "/heroku/resources/"+id, nil); status != http.StatusNoContent {
		t.Fatalf("deprovision answered %d %v", status, body)
	}
	close(hold)
	eventually(t, 30*time.Second, "deprovisioned", func() bool { return s.State(id) == addon.StateDeprovisioned })
	time.Sleep(time.Second) // the provision job returns from its held call
	if s.State(id) != addon.StateDeprovisioned || s.accounts(id) != 0 {
		t.Errorf("after the held provision returned: state %s, %d accounts", s.State(id), s.accounts(id))
	}
}

// TestProvisionWithoutGrant: Heroku sent oauth_grant null, so Kiln has no
// Platform API access and answers 200 with the config synchronously.
func TestProvisionWithoutGrant(t *testing.T) {
	s := newStack(t)
	id := uuid.NewString()
	for i := range 2 { // the repeat answers the same
		status, body := s.Call("POST", "/heroku/resources", provisionBody(id, "test", nil))
		cfg, _ := body["config"].(map[string]any)
		url, _ := cfg[prefix+"_URL"].(string)
		if status != http.StatusOK || body["id"] != id || !strings.HasPrefix(url, "https://") {
			t.Fatalf("call %d answered %d %v, want 200 with %s_URL", i, status, body, prefix)
		}
	}
	if s.State(id) != addon.StateProvisioned {
		t.Errorf("state %s", s.State(id))
	}
	if len(s.Sim.Calls()) != 0 {
		t.Errorf("Kiln called Heroku for an add-on without a grant: %v", s.Sim.Calls())
	}
}

// TestRedisDownAtProvision stops Redis when Heroku calls: the call is still
// recorded and answered 202, and the add-on is provisioned once Redis is back.
func TestRedisDownAtProvision(t *testing.T) {
	s := newStack(t, "RECONCILE_INTERVAL=1s", "RECONCILE_AFTER=2s")
	s.redis.Stop()
	id, status, body := s.Provision("test")
	if status != http.StatusAccepted || body["id"] != id {
		t.Fatalf("provision with Redis down answered %d %v, want 202", status, body)
	}
	if s.State(id) != addon.StateProvisioning {
		t.Fatalf("the call was not recorded: state %q", s.State(id))
	}
	s.redis.Start()
	eventually(t, 60*time.Second, "provisioned after Redis came back", func() bool { return s.SimState(id) == "provisioned" })
	eventually(t, 10*time.Second, "Kiln records provisioned", func() bool { return s.State(id) == addon.StateProvisioned })
}

// TestWorkerKilledMidJob SIGKILLs the worker while Heroku holds the provision
// action, then restarts it: the add-on is provisioned and the single-use
// grant was exchanged once.
func TestWorkerKilledMidJob(t *testing.T) {
	s := newStack(t)
	id := s.killedWhileMarking()
	s.Start("worker")
	// asynq recovers a dead worker's task once its lease (30 s) has expired.
	eventually(t, 3*time.Minute, "provisioned after the crash", func() bool { return s.State(id) == addon.StateProvisioned })
	if got := count(s.Kinds(id), "grant"); got != 1 {
		t.Errorf("grant exchanged %d times, want once", got)
	}
}

// killedWhileMarking provisions an add-on on the test plan and SIGKILLs the
// worker while Heroku holds its call marking the add-on provisioned; then
// Heroku carries the call out, as it would a request it had received. It
// returns the add-on's id.
func (s *stack) killedWhileMarking() string {
	s.t.Helper()
	hold := make(chan struct{})
	s.Sim.Inject(herokusim.Fault{Kind: "provision", Hold: hold, Times: 1})
	id, _, _ := s.Provision("test")
	eventually(s.t, 30*time.Second, "the provision action is held", func() bool { return s.Sim.Holding("provision") == 1 })
	s.Kill("worker")
	close(hold)
	return id
}

// TestDeadline fails provisions that cannot finish in time: the resource is
// cleaned up and the add-on is failed with the reason.
func TestDeadline(t *testing.T) {
	s := newStack(t, "PROVISION_DEADLINE=4s", "RECONCILE_INTERVAL=1s", "RECONCILE_AFTER=1s")
	s.Sim.Inject(herokusim.Fault{Kind: "config", Status: http.StatusServiceUnavailable}) // until cleared
	id, _, _ := s.Provision("test")
	eventually(t, 60*time.Second, "failed at the deadline", func() bool { return s.State(id) == addon.StateFailed })
	a := s.Get(id)
	if !strings.Contains(a.Reason, "deadline") {
		t.Errorf("reason %q does not name the deadline", a.Reason)
	}
	if n := s.accounts(id); n != 0 {
		t.Errorf("the tenant account was not cleaned up (%d rows)", n)
	}
	if s.SimState(id) == "provisioned" {
		t.Error("Heroku was told the add-on is provisioned")
	}
}

// TestDeadlineAfterALostMark: the worker is SIGKILLed while Heroku holds
// its call marking the add-on provisioned, and Heroku then carries the
// call out: Heroku has the add-on live, Kiln has no record of that. When
// the deadline passes, the give-up asks Heroku first and records the
// add-on provisioned; the customer's resource is not destroyed under it.
func TestDeadlineAfterALostMark(t *testing.T) {
	s := newStack(t, "PROVISION_DEADLINE=4s", "RECONCILE_INTERVAL=1s", "RECONCILE_AFTER=1s")
	id := s.killedWhileMarking()
	eventually(t, 10*time.Second, "Heroku has it provisioned", func() bool { return s.SimState(id) == "provisioned" })
	s.Start("worker")
	// The killed worker's claim lapses after 30 s, well past the 4 s
	// deadline; then the job's retry or the reconciler gives up, asking
	// Heroku first.
	eventually(t, 3*time.Minute, "Kiln records it provisioned", func() bool { return s.State(id) != addon.StateProvisioning })
	if a := s.Get(id); a.State != addon.StateProvisioned {
		t.Fatalf("Kiln has it %s (%q), want provisioned as Heroku has it", a.State, a.Reason)
	}
	if n := s.accounts(id); n != 1 {
		t.Errorf("the live add-on's tenant account rows: %d, want 1 (not destroyed)", n)
	}
}

// TestGracefulShutdown: on SIGTERM both processes drain and exit within 25 s.
func TestGracefulShutdown(t *testing.T) {
	s := newStack(t)
	s.provisioned("test")
	for _, name := range []string{"worker", "web"} {
		if d := s.Stop(name); d > 25*time.Second {
			t.Errorf("%s took %s to exit after SIGTERM", name, d)
		}
	}
}
