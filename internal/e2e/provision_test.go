package e2e

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// TestProvision follows one add-on from Heroku's provision call to
// provisioned on Heroku's side: grant exchanged once, config pushed, then
// the provision action, in that order.
func TestProvision(t *testing.T) {
	s := newStack(t)
	id, status, body := s.Provision("test")
	if status != http.StatusAccepted || body["id"] != id || body["message"] == "" {
		t.Fatalf("provision answered %d %v, want 202 with id %s and a message", status, body, id)
	}
	if _, ok := body["config"]; ok {
		t.Errorf("an asynchronous provision answered with config: %v", body)
	}
	eventually(t, 30*time.Second, "the add-on is provisioned on Heroku", func() bool { return s.SimState(id) == "provisioned" })
	// The provision pipeline's calls, and only those: once provisioned, the
	// keeper subscribes the add-on's webhooks on a schedule of its own.
	pipeline := []string{herokusim.KindGrant, herokusim.KindConfig, herokusim.KindProvision}
	kinds := s.Kinds(id, pipeline...)
	if strings.Join(kinds, ",") != "grant,config,provision" {
		t.Errorf("Heroku saw %v, want grant, config, provision in that order", kinds)
	}
	a, _ := s.Sim.Addon(id)
	url := a.Config[prefix+"_URL"]
	if !strings.HasPrefix(url, "https://") || !strings.HasSuffix(url, "@kiln.example.com") {
		t.Errorf("%s_URL = %q, want https://<account>:<key>@kiln.example.com", prefix, url)
	}
	eventually(t, 10*time.Second, "Kiln records provisioned", func() bool { return s.State(id) == addon.StateProvisioned })

	// A repeat after provisioning answers the same and starts nothing.
	status, body = s.Call("POST", "/heroku/resources", provisionBody(id, "test", nil))
	if status != http.StatusAccepted || body["id"] != id {
		t.Errorf("repeat answered %d %v", status, body)
	}
	time.Sleep(300 * time.Millisecond)
	if got := s.Kinds(id, pipeline...); len(got) != 3 {
		t.Errorf("a repeated provision call made provisioning calls to Heroku: %v", got)
	}
}

// TestConcurrentDuplicates sends Heroku's provision call 20 times at the same
// instant: one add-on, one grant exchange, one provision action.
func TestConcurrentDuplicates(t *testing.T) {
	s := newStack(t)
	id := uuid.NewString()
	grant := s.Sim.NewAddon(id)
	body := provisionBody(id, "basic", &grant)
	var wg sync.WaitGroup
	start := make(chan struct{})
	type answer struct {
		status int
		id     any
	}
	answers := make([]answer, 20)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, b := s.Call("POST", "/heroku/resources", body)
			answers[i] = answer{st, b["id"]}
		}()
	}
	close(start)
	wg.Wait()
	for i, a := range answers {
		if a.status != http.StatusAccepted || a.id != id {
			t.Errorf("duplicate %d answered %d id=%v", i, a.status, a.id)
		}
	}
	eventually(t, 30*time.Second, "provisioned", func() bool { return s.SimState(id) == "provisioned" })
	time.Sleep(500 * time.Millisecond) // let any stray duplicate job show itself
	kinds := s.Kinds(id)
	if count(kinds, "grant") != 1 || count(kinds, "provision") != 1 {
		t.Errorf("Heroku saw %v, want exactly one grant exchange and one provision action", kinds)
	}
}

// TestPlatformOutageRetried injects 503s on the config push: the worker
// retries with backoff and the add-on still gets provisioned.
func TestPlatformOutageRetried(t *testing.T) {
	s := newStack(t)
	s.Sim.Inject(herokusim.Fault{Kind: "config", Status: http.StatusServiceUnavailable, Times: 2})
	s.Sim.Inject(herokusim.Fault{Kind: "provision", Status: http.StatusTooManyRequests, RetryAfter: "1", Times: 1})
	id, status, _ := s.Provision("test")
	if status != http.StatusAccepted {
		t.Fatalf("provision answered %d", status)
	}
	eventually(t, 60*time.Second, "provisioned despite the outage", func() bool { return s.SimState(id) == "provisioned" })
	var failed503, failed429 int
	for _, c := range s.Sim.Calls() {
		if c.AddonID != id {
			continue
		}
		if c.Kind == "config" && c.Status == http.StatusServiceUnavailable {
			failed503++
		}
		if c.Kind == "provision" && c.Status == http.StatusTooManyRequests {
			failed429++
		}
	}
	if failed503 != 2 || failed429 != 1 {
		t.Errorf("saw %d failed config pushes and %d rate-limited provision actions, want 2 and 1", failed503, failed429)
	}
	if got := count(s.Kinds(id), "grant"); got != 1 {
		t.Errorf("grant exchanged %d times, want once", got)
	}
}

// TestInvalidGrantFailsFast sends a grant Heroku never issued: the exchange
// is refused, the add-on is failed with the reason, and nothing retries.
func TestInvalidGrantFailsFast(t *testing.T) {
	s := newStack(t)
	id := uuid.NewString()
	s.Sim.NewAddon(id)
	bogus := addon.Grant{Code: "not-a-grant-heroku-issued", ExpiresAt: time.Now().Add(5 * time.Minute)}
	status, _ := s.Call("POST", "/heroku/resources", provisionBody(id, "test", &bogus))
	if status != http.StatusAccepted {
		t.Fatalf("provision answered %d", status)
	}
	eventually(t, 20*time.Second, "the add-on is failed", func() bool { return s.State(id) == addon.StateFailed })
	if a := s.Get(id); !strings.Contains(a.Reason, "grant") {
		t.Errorf("failed with reason %q, want it to name the grant", a.Reason)
	}
	time.Sleep(2 * time.Second) // longer than the first retry delay
	attempts := 0
	for _, c := range s.Sim.Calls() {
		if c.Kind == "grant" { // this stack's simulator saw no other add-on
			attempts++
		}
	}
	if attempts != 1 {
		t.Errorf("the invalid grant was tried %d times, want once", attempts)
	}
}
