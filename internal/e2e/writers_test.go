package e2e

// End-to-end tests of issue 11: the grant survives Postgres dropping Kiln's
// connections at the worst moment, several web and worker dynos share the
// work without a grant being exchanged twice, and work accepted while Redis
// was down starts soon after it returns.

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/kilntest"
)

// dropConnections terminates every Postgres backend of the database but the
// caller's own: a failover or restart as Kiln sees it.
func dropConnections(t testing.TB, dbName string) int {
	admin, err := sql.Open("pgx", kilntest.AdminURL())
	if err != nil {
		t.Errorf("open admin database: %v", err)
		return 0
	}
	defer admin.Close()
	var n int
	err = admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, dbName).Scan(&n)
	if err != nil {
		t.Errorf("terminate backends: %v", err)
	}
	return n
}

// TestPostgresDroppedAtGrantAnswer: every Kiln Postgres connection is
// dropped at the moment the simulator answers the grant exchange (after
// Heroku spent the grant, before Kiln hears the answer). The tokens are
// saved on a new connection and the add-on is provisioned, with one
// exchange.
func TestPostgresDroppedAtGrantAnswer(t *testing.T) {
	var dbName atomic.Value
	var dropped atomic.Int32
	var once sync.Once
	s := newStackWith(t, herokusim.Options{OnCall: func(c herokusim.Call) {
		// OnCall runs inside the simulator's handler, before the answer
		// leaves it.
		if c.Kind == herokusim.KindGrant && c.Status == http.StatusOK {
			once.Do(func() {
				name, _ := dbName.Load().(string)
				dropped.Store(int32(dropConnections(t, name)))
			})
		}
	}})
	var name string
	if err := s.db.Gorm().Raw("SELECT current_database()").Scan(&name).Error; err != nil {
		t.Fatal(err)
	}
	dbName.Store(name)

	id, status, _ := s.Provision("test")
	if status != http.StatusAccepted {
		t.Fatalf("provision answered %d", status)
	}
	eventually(t, 90*time.Second, "provisioned", func() bool { return s.State(id) == addon.StateProvisioned })
	if dropped.Load() == 0 {
		t.Fatal("no connection was dropped: the test did not test anything")
	}
	var grants int
	for _, c := range s.Sim.Calls() {
		if c.Kind == herokusim.KindGrant {
			grants++
		}
	}
	if grants != 1 {
		t.Errorf("grant exchanged %d times, want once", grants)
	}
	if s.SimState(id) != "provisioned" {
		t.Errorf("Heroku sees %q", s.SimState(id))
	}
}

// TestTwoWebsTwoWorkers runs two web and two worker dynos on one Redis and
// Postgres; each provision is sent to both webs at once (Heroku delivers at
// least once); a worker is SIGKILLed halfway. Every add-on is provisioned and
// every grant was exchanged exactly once.
func TestTwoWebsTwoWorkers(t *testing.T) {
	s := newStack(t, "LEASE_TTL=5s", "RECONCILE_INTERVAL=2s", "RECONCILE_AFTER=10s")
	port2 := freePort(t)
	s.StartAs("web2", "web", "PORT="+itoa(port2))
	s.StartAs("worker2", "worker")
	web2 := "http://127.0.0.1:" + itoa(port2)
	eventually(t, 20*time.Second, "web2 answers /healthz", func() bool {
		resp, err := http.Get(web2 + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	const n = 24
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	// The second half is held at Heroku's provision action, so both workers
	// are mid-job when one dies; every Heroku answer takes a while. (The
	// first matching fault applies: the holds go first.)
	hold := make(chan struct{})
	for _, id := range ids[n/2:] {
		s.Sim.Inject(herokusim.Fault{Kind: herokusim.KindProvision, AddonID: id, Hold: hold})
	}
	s.Sim.Inject(herokusim.Fault{Delay: 50 * time.Millisecond})
	var wg sync.WaitGroup
	for i := range ids {
		grant := s.Sim.NewAddon(ids[i])
		body := provisionBody(ids[i], "test", &grant)
		for _, base := range []string{s.webURL, web2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, _ := s.callAt(base, "POST", "/heroku/resources", body)
				if status != http.StatusAccepted && status != http.StatusOK {
					t.Errorf("provision %s at %s answered %d", ids[i], base, status)
				}
			}()
		}
	}
	wg.Wait()
	provisioned := func() int {
		k := 0
		for _, id := range ids {
			if s.SimState(id) == "provisioned" {
				k++
			}
		}
		return k
	}
	grants := func() int {
		k := 0
		for _, c := range s.Sim.Calls() {
			if c.Kind == herokusim.KindGrant {
				k++
			}
		}
		return k
	}
	// At least: a held call whose caller gave up (the Heroku client's
	// timeout, on a slow machine) stays held, and the job's retry is held
	// again.
	eventually(t, 3*time.Minute, "half the add-ons provisioned, the other half held at the provision action", func() bool {
		return provisioned() >= n/2 && s.Sim.Holding(herokusim.KindProvision) >= n/2
	})
	if g := grants(); g != n {
		t.Fatalf("%d grant exchanges before the kill, want %d", g, n)
	}
	s.Kill("worker")
	s.Sim.ClearFaults()
	eventually(t, 4*time.Minute, "every add-on provisioned", func() bool {
		for _, id := range ids {
			if s.State(id) != addon.StateProvisioned {
				return false
			}
		}
		return true
	})
	per := map[string]int{}
	for _, c := range s.Sim.Calls() {
		if c.Kind == herokusim.KindGrant {
			per[c.AddonID]++
		}
	}
	for _, id := range ids {
		if per[id] != 1 {
			t.Errorf("add-on %s: grant exchanged %d times, want once", id, per[id])
		}
		if s.SimState(id) != "provisioned" {
			t.Errorf("add-on %s: Heroku sees %q", id, s.SimState(id))
		}
	}
}

// TestRedisStoppedDuringProvision stops Redis while a provision is under way
// (its grant exchange in flight at Heroku) and while Heroku sends another,
// then starts it again, empty. With default settings both add-ons are
// provisioned within 30 s of Redis's return: the outbox sweep, not the
// reconciler's RECONCILE_AFTER, picks them up. The first add-on's grant job
// either hands it on to the provision job, whose enqueue fails while Redis
// is down (flagged for the outbox), or, with an inline slot (the default),
// provisions it itself, needing no Redis at all.
func TestRedisStoppedDuringProvision(t *testing.T) {
	tests := []struct {
		name   string
		env    []string
		first  string // what becomes of the first add-on while Redis is down
		before func(a *addon.Addon) bool
	}{
		{"handed on", []string{"INLINE_PROVISIONS=0"}, "its grant saved and flagged for the outbox", func(a *addon.Addon) bool {
			return !a.GrantExchangedAt.IsZero() && a.Requeue && a.State == addon.StateProvisioning
		}},
		{"inline", nil, "provisioned by its grant job", func(a *addon.Addon) bool {
			return a.State == addon.StateProvisioned
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, tt.env...)
			hold := make(chan struct{})
			s.Sim.Inject(herokusim.Fault{Kind: herokusim.KindGrant, Hold: hold, Times: 1})
			first, status, _ := s.Provision("test")
			if status != http.StatusAccepted {
				t.Fatalf("provision answered %d", status)
			}
			if err := s.Sim.Wait(context.Background(), func() bool { return s.Sim.Holding(herokusim.KindGrant) == 1 }); err != nil {
				t.Fatal(err)
			}
			s.redis.Stop()
			close(hold)
			second, status, _ := s.Provision("test")
			if status != http.StatusAccepted {
				t.Fatalf("provision with Redis down answered %d", status)
			}
			eventually(t, 30*time.Second, "the first add-on "+tt.first, func() bool { return tt.before(s.Get(first)) })
			if a := s.Get(second); !a.Requeue || a.State != addon.StateProvisioning {
				t.Errorf("the second add-on, accepted while Redis was down: %s, requeue %v; want provisioning and flagged", a.State, a.Requeue)
			}
			s.redis.Start()
			// Not a timing assertion: 30 s is the bound for the outcome;
			// the outbox sweeps every 5 s.
			eventually(t, 30*time.Second, "both provisioned after Redis returned", func() bool {
				return s.State(first) == addon.StateProvisioned && s.State(second) == addon.StateProvisioned
			})
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
