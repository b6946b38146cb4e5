package web_test

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/web"
)

// tenantDriver is a driver whose only account is "acct-1" with key "k1".
type tenantDriver struct {
	addon.Driver
	plan string
}

func (d tenantDriver) Name() string { return "fake" }
func (d tenantDriver) Catalog() addon.Catalog {
	return addon.Catalog{
		"test":  {Slug: "test", Name: "Test", Limits: map[string]int64{addon.TenantRateLimit: 2}},
		"basic": {Slug: "basic", Name: "Basic"},
	}
}

func (d tenantDriver) AuthenticateTenant(ctx context.Context, account, key string) (addon.Tenant, error) {
	if account != "acct-1" || subtle.ConstantTimeCompare([]byte(key), []byte("k1")) != 1 {
		return addon.Tenant{}, addon.Errorf(addon.EUNAUTHORIZED, "Invalid account name or key.")
	}
	return addon.Tenant{AddonID: "01234567-89ab-cdef-0123-456789abcdef", Name: account, Plan: addon.Plan{Slug: d.plan},
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), LastUsedAt: time.Now().UTC()}, nil
}

func TestTenantAPI(t *testing.T) {
	e := web.New(web.Options{Service: addon.NewService(addon.Deps{Driver: tenantDriver{plan: "test"}, Tenants: tenantDriver{plan: "test"}}, addon.Options{})})
	call := func(user, key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/api/v1/account", nil)
		if user != "" {
			req.SetBasicAuth(user, key)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	rec := call("acct-1", "k1")
	if rec.Code != http.StatusOK {
		t.Fatalf("answered %d %s", rec.Code, rec.Body)
	}
	var v struct {
		Name   string
		Plan   struct{ Slug, Name string }
		Limits map[string]int64
		// times as JSON
		CreatedAt  time.Time  `json:"created_at"`
		LastUsedAt *time.Time `json:"last_used_at"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Name != "acct-1" || v.Plan.Slug != "test" || v.Plan.Name != "Test" || v.Limits[addon.TenantRateLimit] != 2 || v.CreatedAt.IsZero() || v.LastUsedAt == nil {
		t.Errorf("account = %s", rec.Body)
	}
	if rec.Header().Get("RateLimit-Remaining") != "1" || rec.Header().Get("RateLimit-Limit") != "2" {
		t.Errorf("rate limit headers: %v", rec.Header())
	}
	call("acct-1", "k1")
	if rec := call("acct-1", "k1"); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || rec.Header().Get("RateLimit-Remaining") != "0" {
		t.Errorf("third request in a second answered %d %v, want 429 with Retry-After", rec.Code, rec.Header())
	}

	for _, tt := range []struct{ name, user, key string }{{"no credentials", "", ""}, {"wrong key", "acct-1", "k2"}, {"unknown account", "acct-2", "k1"}} {
		if rec := call(tt.user, tt.key); rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: answered %d %v", tt.name, rec.Code, rec.Header())
		}
	}
	// Guessing from one address runs dry.
	got429 := false
	for range 30 {
		if call("acct-1", "guess").Code == http.StatusTooManyRequests {
			got429 = true
			break
		}
	}
	if !got429 {
		t.Error("30 wrong keys from one address were never limited")
	}
}

// countingTenants is tenantDriver's account behind a count of the
// look-ups made, each standing for the database work of a real driver.
type countingTenants struct {
	tenantDriver
	lookups *atomic.Int32
}

func (d countingTenants) AuthenticateTenant(ctx context.Context, account, key string) (addon.Tenant, error) {
	d.lookups.Add(1)
	return d.tenantDriver.AuthenticateTenant(ctx, account, key)
}

// TestTenantGuessLimit: once an address has guessed an account's bucket
// empty, every request from it for that account is 429 with Retry-After,
// the right key included, and none costs a look-up; other addresses, and
// other accounts from that address, are not affected.
func TestTenantGuessLimit(t *testing.T) {
	lookups := &atomic.Int32{}
	d := countingTenants{tenantDriver: tenantDriver{plan: "basic"}, lookups: lookups}
	e := web.New(web.Options{Service: addon.NewService(addon.Deps{Driver: d, Tenants: d}, addon.Options{})})
	call := func(addr, user, key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/api/v1/account", nil)
		req.Header.Set("X-Forwarded-For", addr)
		if user != "" {
			req.SetBasicAuth(user, key)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	const guesser = "203.0.113.7"
	if rec := call(guesser, "acct-1", "k1"); rec.Code != http.StatusOK {
		t.Fatalf("right key before any guess: %d %s", rec.Code, rec.Body)
	}
	// Wrong keys take tokens until the bucket is empty.
	guesses := 0
	for ; guesses < 30; guesses++ {
		if call(guesser, "acct-1", "guess").Code == http.StatusTooManyRequests {
			break
		}
	}
	if guesses == 30 {
		t.Fatal("30 wrong keys from one address were never limited")
	}

	tests := []struct {
		name, addr, user, key string
		want                  int
		lookups               int32
	}{
		{name: "right key from the locked-out address", addr: guesser, user: "acct-1", key: "k1", want: http.StatusTooManyRequests},
		{name: "wrong key from the locked-out address", addr: guesser, user: "acct-1", key: "guess", want: http.StatusTooManyRequests},
		// The lock-out is the guessed account's at that address: the
		// address's other apps (Heroku apps share egress addresses) go on.
		{name: "another account from the locked-out address", addr: guesser, user: "acct-2", key: "guess", want: http.StatusUnauthorized, lookups: 1},
		{name: "no credentials from the locked-out address", addr: guesser, want: http.StatusUnauthorized},
		{name: "right key from another address", addr: "198.51.100.9", user: "acct-1", key: "k1", want: http.StatusOK, lookups: 1},
		{name: "wrong key from another address", addr: "198.51.100.9", user: "acct-1", key: "guess", want: http.StatusUnauthorized, lookups: 1},
	}
	var refusal string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := lookups.Load()
			rec := call(tt.addr, tt.user, tt.key)
			if rec.Code != tt.want {
				t.Fatalf("answered %d %s, want %d", rec.Code, rec.Body, tt.want)
			}
			if n := lookups.Load() - before; n != tt.lookups {
				t.Errorf("%d account look-ups, want %d", n, tt.lookups)
			}
			if tt.want != http.StatusTooManyRequests {
				return
			}
			if rec.Header().Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After: %v", rec.Header())
			}
			// A refusal says nothing about the key: every one is alike.
			if rec.Header().Get("WWW-Authenticate") != "" {
				t.Errorf("429 with WWW-Authenticate: %v", rec.Header())
			}
			// (Up to the seconds it counts down.)
			body := strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return -1
				}
				return r
			}, rec.Body.String())
			if refusal == "" {
				refusal = body
			} else if body != refusal {
				t.Errorf("refusal %s differs from the first %s", rec.Body, refusal)
			}
		})
	}
}

func TestTenantAPIWithoutTenants(t *testing.T) {
	e := web.New(web.Options{Service: addon.NewService(addon.Deps{Driver: plainDriver{}}, addon.Options{})})
	req := httptest.NewRequest("GET", "/api/v1/account", nil)
	req.SetBasicAuth("a", "b")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("a driver without accounts answered %d, want 404", rec.Code)
	}
}

type plainDriver struct{ addon.Driver }

func (plainDriver) Name() string { return "plain" }

// memCounters are shared buckets that never run dry and count in memory.
type memCounters struct{ n map[string]int64 }

func (m *memCounters) Take(ctx context.Context, key string, burst int, perMinute float64) (int, time.Duration, bool, error) {
	return burst - 1, 0, true, nil
}

func (m *memCounters) Count(ctx context.Context, key string, expireAt time.Time) (int64, error) {
	m.n[key]++
	return m.n[key], nil
}

type quotaDriver struct{ tenantDriver }

func (quotaDriver) Catalog() addon.Catalog {
	return addon.Catalog{"test": {Slug: "test", Name: "Test", Limits: map[string]int64{addon.TenantRateLimit: 100, addon.TenantMonthlyQuota: 3}}}
}

func TestTenantMonthlyQuota(t *testing.T) {
	counters := &memCounters{n: map[string]int64{}}
	e := web.New(web.Options{Service: addon.NewService(addon.Deps{Driver: quotaDriver{tenantDriver{plan: "test"}}, Tenants: quotaDriver{tenantDriver{plan: "test"}}}, addon.Options{}), RateBuckets: counters})
	for i := 1; i <= 4; i++ {
		req := httptest.NewRequest("GET", "/api/v1/account", nil)
		req.SetBasicAuth("acct-1", "k1")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if i <= 3 {
			var v struct {
				Usage struct {
					RequestsThisMonth int64 `json:"requests_this_month"`
				}
			}
			json.Unmarshal(rec.Body.Bytes(), &v)
			if rec.Code != http.StatusOK || v.Usage.RequestsThisMonth != int64(i) {
				t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
			}
			continue
		}
		if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "Monthly quota reached") || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("request over the quota: %d %s %v", rec.Code, rec.Body, rec.Header())
		}
	}
	for k := range counters.n {
		if !strings.HasPrefix(k, "tenant:month:01234567-89ab-cdef-0123-456789abcdef:"+time.Now().UTC().Format("2006-01")) {
			t.Errorf("counter key %q", k)
		}
	}
}
