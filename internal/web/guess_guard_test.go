package web_test

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/ratelimit"
	"github.com/kiln-dev/kiln/internal/web"
)

// countingBuckets are shared buckets that count the Takes they are asked
// for, so a test can show which requests reach Redis.
type countingBuckets struct {
	inner web.Buckets
	mu    sync.Mutex
	keys  []string
}

func (b *countingBuckets) Take(ctx context.Context, key string, burst int, perMinute float64) (int, time.Duration, bool, error) {
	b.mu.Lock()
	b.keys = append(b.keys, key)
	b.mu.Unlock()
	return b.inner.Take(ctx, key, burst, perMinute)
}

// takes is how many Takes were asked for so far.
func (b *countingBuckets) takes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.keys)
}

// redisBuckets are internal/ratelimit's buckets on the test's own Redis.
func redisBuckets(tb testing.TB) *ratelimit.Redis {
	tb.Helper()
	opt, err := redis.ParseURL(kilntest.Redis(tb))
	if err != nil {
		tb.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	tb.Cleanup(func() { rdb.Close() })
	return ratelimit.New(rdb)
}

// TestPartnerGuessingLimit: wrong ADDON_PASSWORDs from one address empty
// its shared bucket; then every Partner API request from it is 429 with
// Retry-After, the right password included, on this dyno (which answers
// without Redis) and on another (whose wrong-guess Take finds the bucket
// empty), while another address provisions. The right password never
// costs a shared-bucket call.
func TestPartnerGuessingLimit(t *testing.T) {
	t.Parallel()
	const burst = 5
	limit := web.RateLimit{Burst: burst, PerMinute: 0.01} // no refill within the test
	shared := redisBuckets(t)
	counted := &countingBuckets{inner: shared}
	env := newEnv(t, envConfig{rateBuckets: counted, partnerGuessLimit: limit})
	other := web.New(web.Options{AddonID: testAddonID, Passwords: []string{password1, password2}, RateBuckets: shared, PartnerGuessLimit: limit})
	const attacker, customer = "203.0.113.9", "198.51.100.20"

	provision := func(h http.Handler, user, pass, from string) (answer, string) {
		id := uuid.NewString()
		r := heroku(http.MethodPost, "/heroku/resources", provisionBody(id))
		r.user, r.pass = user, pass
		// Heroku's router appends the address it saw; earlier entries are
		// the client's own and do not pick the bucket.
		r.header["X-Forwarded-For"] = "192.0.2.77, " + from
		return serve(t, h, r), id
	}
	steps := []struct {
		name       string
		dyno       http.Handler
		user, pass string
		from       string
		want       int
		takes      int // shared-bucket calls on the counted dyno after the step
	}{
		{"right password before any guess", env.e, testAddonID, password2, attacker, http.StatusAccepted, 0},
		{"no credentials", env.e, "", "", attacker, http.StatusUnauthorized, 0},
		{"wrong guess 1", env.e, testAddonID, "guess-1", attacker, http.StatusUnauthorized, 1},
		{"wrong user", env.e, "someone", password1, attacker, http.StatusUnauthorized, 2},
		{"wrong guess 3", env.e, testAddonID, "guess-3", attacker, http.StatusUnauthorized, 3},
		{"wrong guess 4", env.e, testAddonID, "guess-4", attacker, http.StatusUnauthorized, 4},
		{"wrong guess 5 empties the bucket", env.e, testAddonID, "guess-5", attacker, http.StatusUnauthorized, 5},
		{"right password, locked out", env.e, testAddonID, password1, attacker, http.StatusTooManyRequests, 5},
		{"another guess, locked out", env.e, testAddonID, "guess-6", attacker, http.StatusTooManyRequests, 5},
		{"no credentials, locked out", env.e, "", "", attacker, http.StatusTooManyRequests, 5},
		{"another address", env.e, testAddonID, password1, customer, http.StatusAccepted, 5},
		{"a guess on another dyno", other, testAddonID, "guess-7", attacker, http.StatusTooManyRequests, 5},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			a, id := provision(st.dyno, st.user, st.pass, st.from)
			if a.status != st.want {
				t.Fatalf("status %d, want %d: %s", a.status, st.want, a.raw)
			}
			if got := counted.takes(); got != st.takes {
				t.Errorf("shared-bucket calls so far: %d, want %d (%v)", got, st.takes, counted.keys)
			}
			if st.want != http.StatusTooManyRequests {
				return
			}
			if a.ID != addon.ERATELIMIT || a.Msg == "" {
				t.Errorf("body %s, want id %q and a message", a.raw, addon.ERATELIMIT)
			}
			if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("Retry-After %q, want seconds", a.header.Get("Retry-After"))
			}
			if st.dyno == env.e && env.stored(t, id) != nil {
				t.Errorf("a locked-out request recorded add-on %s", id)
			}
		})
	}
	for _, k := range counted.keys {
		if k != "partner:guess:"+attacker {
			t.Errorf("bucket key %q, want partner:guess:%s", k, attacker)
		}
	}
}

// TestGuessGuard: the guard on its own, with its buckets shared, in this
// process only, or shared but failing (Redis down: limited per process,
// and said so in the log). Only wrong passwords take from the buckets.
func TestGuessGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		shared func(tb testing.TB) web.Buckets
		// wantTakes is the shared-bucket calls the sequence makes (each
		// wrong guess; nothing when the buckets are nil).
		wantTakes int
		warns     bool
	}{
		{"shared in Redis", func(tb testing.TB) web.Buckets { return redisBuckets(tb) }, 3, false},
		{"in process", func(testing.TB) web.Buckets { return nil }, 0, false},
		{"Redis down", func(testing.TB) web.Buckets { return &failingBuckets{} }, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			counted := &countingBuckets{inner: tt.shared(t)}
			var buckets web.Buckets = counted
			if counted.inner == nil {
				buckets = nil
			}
			logs := &syncBuffer{}
			g := web.NewGuessGuard("partner", buckets, web.RateLimit{Burst: 3, PerMinute: 0.01}, slog.New(slog.NewTextHandler(logs, nil)))
			ctx := context.Background()
			if _, ok := g.Admit(ctx, "192.0.2.5", false); !ok {
				t.Fatal("the right password was refused before any guess")
			}
			for i := range 3 {
				if _, ok := g.Admit(ctx, "192.0.2.5", true); !ok {
					t.Fatalf("guess %d refused early", i+1)
				}
			}
			if wait, ok := g.Admit(ctx, "192.0.2.5", false); ok || wait <= 0 {
				t.Errorf("the right password from a locked-out address: ok=%v wait=%v", ok, wait)
			}
			if wait, ok := g.Admit(ctx, "192.0.2.5", true); ok || wait <= 0 {
				t.Errorf("fourth guess: ok=%v wait=%v", ok, wait)
			}
			if _, ok := g.Admit(ctx, "192.0.2.6", false); !ok {
				t.Error("another address was refused")
			}
			if counted.inner != nil && counted.takes() != tt.wantTakes {
				t.Errorf("shared-bucket calls: %d, want %d", counted.takes(), tt.wantTakes)
			}
			if got := len(logs.lines("shared rate limit unavailable; limiting per process")) > 0; got != tt.warns {
				t.Errorf("fallback logged: %v, want %v", got, tt.warns)
			}
		})
	}
}
