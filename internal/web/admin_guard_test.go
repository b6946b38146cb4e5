package web_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/kiln-dev/kiln/internal/web"
)

// guardPassword is the admin password of the guard tests.
const guardPassword = "guard-test-admin-password-0123456789"

// adminDoors are every admin surface of the web process, with what a
// request needs beyond the password.
var adminDoors = []struct {
	name, path string
	header     map[string]string
}{
	{"metrics", "/metrics", nil},
	{"queue dashboard", web.QueuesPath + "/", nil},
	{"profiler", "/admin/debug/pprof/", nil},
	{"operator API", "/admin/api/schema", map[string]string{"Accept": "application/vnd.kiln+json; version=1"}},
}

// TestAdminGuessingLimitIsSharedByEveryDoor: wrong passwords on any admin
// door count against one bucket per client address, shared by two web
// dynos through Redis; once it is empty every door answers 429 with
// Retry-After, the right password included, while another address gets in.
func TestAdminGuessingLimitIsSharedByEveryDoor(t *testing.T) {
	t.Parallel()
	buckets := redisBuckets(t)
	queues := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>queues</html>"))
	})
	const burst = 6
	dyno := func() http.Handler {
		return web.New(web.Options{
			AdminPassword:   guardPassword,
			Queues:          queues,
			RateBuckets:     buckets,
			AdminGuessLimit: web.RateLimit{Burst: burst, PerMinute: 0.01},
		})
	}
	dynos := []http.Handler{dyno(), dyno()}
	with := func(door int, password, from string) map[string]string {
		h := map[string]string{"X-Forwarded-For": from}
		for k, v := range adminDoors[door].header {
			h[k] = v
		}
		if password != "" {
			for k, v := range admin(password) {
				h[k] = v
			}
		}
		return h
	}
	const attacker, operator = "203.0.113.9", "198.51.100.20"

	// Each door admits the right password and refuses a wrong one (401).
	for i, d := range adminDoors {
		if p := do(t, dynos[i%2], http.MethodGet, d.path, nil, with(i, guardPassword, attacker)); p.status != http.StatusOK {
			t.Fatalf("%s with the password: %d %s", d.name, p.status, p.body)
		}
	}
	// Requests without credentials are not guesses: they leave the whole
	// burst to the guesses below.
	for i := 0; i < 3; i++ {
		if p := do(t, dynos[0], http.MethodGet, "/metrics", nil, with(0, "", attacker)); p.status != http.StatusUnauthorized {
			t.Fatalf("no credentials: %d, want 401", p.status)
		}
	}
	guesses := 0
	for guesses < burst {
		i := guesses % len(adminDoors)
		p := do(t, dynos[guesses%2], http.MethodGet, adminDoors[i].path, nil, with(i, "guess-"+strconv.Itoa(guesses), attacker))
		if p.status != http.StatusUnauthorized {
			t.Fatalf("guess %d on %s: %d, want 401", guesses+1, adminDoors[i].name, p.status)
		}
		guesses++
	}
	for i, d := range adminDoors {
		for _, pw := range []string{"another-guess", guardPassword} {
			p := do(t, dynos[i%2], http.MethodGet, d.path, nil, with(i, pw, attacker))
			if p.status != http.StatusTooManyRequests {
				t.Errorf("%s after %d wrong passwords (password right: %v): %d, want 429", d.name, burst, pw == guardPassword, p.status)
				continue
			}
			if ra, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("%s: Retry-After %q, want seconds", d.name, p.header.Get("Retry-After"))
			}
		}
		if p := do(t, dynos[i%2], http.MethodGet, d.path, nil, with(i, guardPassword, operator)); p.status != http.StatusOK {
			t.Errorf("%s from another address: %d, want 200", d.name, p.status)
		}
	}
}

// TestAdminGuardWithoutRedis: with no shared buckets each process keeps
// the limit itself, so it still holds.
func TestAdminGuardWithoutRedis(t *testing.T) {
	t.Parallel()
	g := web.NewAdminGuard(nil, web.RateLimit{Burst: 2, PerMinute: 0.01}, nil)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, ok := g.Admit(ctx, "192.0.2.5", true); !ok {
			t.Fatalf("guess %d refused early", i+1)
		}
	}
	if _, ok := g.Admit(ctx, "192.0.2.5", false); ok {
		t.Error("the right password from a locked-out address was admitted")
	}
	if wait, ok := g.Admit(ctx, "192.0.2.5", true); ok || wait <= 0 {
		t.Errorf("third guess: ok=%v wait=%v", ok, wait)
	}
	if _, ok := g.Admit(ctx, "192.0.2.6", false); !ok {
		t.Error("another address was refused")
	}
}
