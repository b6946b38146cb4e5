package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/labstack/echo/v4"
)

// This file is the tenant API: what the account driver's
// <PREFIX>_URL = https://<account>:<key>@<Kiln's host> leads to. Customers'
// apps call it with the URL's credentials (HTTP Basic). Every route of the
// group is authenticated (svc.Tenant) and rate limited per account at the
// plan's requests_per_second, in Redis-backed buckets shared by every web
// dyno (falling back to per-process buckets while Redis fails, as the
// operator API does), and counted against the plan's requests_per_month
// (a calendar month, UTC). Every door that takes a password limits
// guessing, this one as the Partner API does (GuessGuard,
// guess_guard.go): a wrong key takes a token from the caller address's
// bucket, and once it is empty every request from that address is
// answered 429 with Retry-After before its key is looked up, the right key
// included, so a guess cannot be told apart and costs no database work.
// The bucket is the address's for one account (tenantGuessAddr): Heroku
// apps share egress addresses, and one app's stale key must not lock its
// neighbours out.
//
// A partner whose product is the account mounts its own endpoints in
// tenantRoutes; a handler reads the caller's account with tenantOf(c) and
// calls an addon.Service method, as every handler does.

// TenantPrefix is where the tenant API lives.
const TenantPrefix = "/api/v1"

// The tenant API's guessing limit per client IP: wrong credentials take a
// token, and an empty bucket answers every request from the address 429
// until a token is back.
const (
	tenantGuessBurst     = 20
	tenantGuessPerMinute = 20
)

// tenantTimeout bounds one tenant API call.
const tenantTimeout = 10 * time.Second

// tenantKey is where the authenticated account is kept in the echo
// context, and tenantMonthKey the count of its requests this month.
const (
	tenantKey      = "kiln.tenant"
	tenantMonthKey = "kiln.tenant.month"
)

// Counters count requests against a quota for a period. The Redis buckets
// cmd/web hands in as Options.RateBuckets (internal/ratelimit) are
// counters too; without them the monthly quota is not enforced.
type Counters interface {
	// Count adds one to key's counter, which lives until expireAt, and
	// returns the count after this call.
	Count(ctx context.Context, key string, expireAt time.Time) (int64, error)
}

// tenantAPI holds the tenant API's rate limit buckets, quota counters and
// guessing limit.
type tenantAPI struct {
	srv      *server
	shared   Buckets
	local    *opMemoryBuckets
	counters Counters
	guard    *GuessGuard
}

// newTenantAPI shares the operator API's buckets (Options.RateBuckets).
// The guessing limit is a GuessGuard of its own: the tenant API is a hot
// path too (every request of every customer's app), so a right key from an
// address that is not locked out costs no Redis round trip, and a dyno
// answers the addresses it found locked out itself, without Redis or the
// database.
func newTenantAPI(s *server) *tenantAPI {
	ta := &tenantAPI{srv: s, shared: s.op.shared, local: newOpMemoryBuckets(),
		guard: NewGuessGuard("tenant", s.op.shared, RateLimit{Burst: tenantGuessBurst, PerMinute: tenantGuessPerMinute}, s.log)}
	ta.counters, _ = s.op.shared.(Counters)
	return ta
}

// tenantGuessAddr is what the tenant API's guard keys a client by: its
// address and the account it signs in as (hashed: the name is the
// caller's), so its buckets are "tenant:guess:<ip>:<account>" and a
// lock-out holds only that account's sign-ins from that address. Heroku
// apps share egress addresses: an app sending a stale key locks out its
// own account there, not its neighbours; someone guessing an account's
// key is stopped for that account (their own address's other accounts are
// not worth guessing: keys are 256 bits).
func tenantGuessAddr(ip, account string) string {
	sum := sha256.Sum256([]byte(account))
	return ip + ":" + hex.EncodeToString(sum[:8])
}

// tenantLockedOut is the answer to every request from an address out of
// guesses, whatever key it brought.
func tenantLockedOut(wait time.Duration) error {
	return &addon.Error{Code: addon.ERATELIMIT, RetryAfter: wait,
		Message: fmt.Sprintf("Too many failed sign-ins from this address; retry in %d s.", int(math.Ceil(wait.Seconds())))}
}

// tenantRoutes registers the tenant API. Partners add their own tenant
// endpoints to g here: they are authenticated and rate limited like
// /account.
func (s *server) tenantRoutes(e *echo.Echo) {
	ta := newTenantAPI(s)
	g := e.Group(TenantPrefix, deadline(tenantTimeout), ta.admit)
	g.GET("/account", s.tenantAccount)
	g.HEAD("/account", s.tenantAccount)
}

// tenantOf returns the account a tenant API request authenticated as.
func tenantOf(c echo.Context) *addon.Tenant {
	t, _ := c.Get(tenantKey).(*addon.Tenant)
	return t
}

// accountView is GET /api/v1/account's answer.
type accountView struct {
	ID         addon.ID         `json:"id"`
	Name       string           `json:"name"`
	Plan       planRef          `json:"plan"`
	Limits     map[string]int64 `json:"limits"`
	CreatedAt  time.Time        `json:"created_at"`
	LastUsedAt *time.Time       `json:"last_used_at"`
	Usage      *usageView       `json:"usage,omitempty"`
}

// usageView is what the account used of its plan's quota.
type usageView struct {
	RequestsThisMonth int64 `json:"requests_this_month"`
}

type planRef struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// tenantAccount answers the caller's account: plan, limits and times.
func (s *server) tenantAccount(c echo.Context) error {
	t := tenantOf(c)
	v := accountView{ID: t.AddonID, Name: t.Name, Plan: planRef{Slug: t.Plan.Slug, Name: t.Plan.Name},
		Limits: t.Plan.Limits, CreatedAt: t.CreatedAt}
	if v.Limits == nil {
		v.Limits = map[string]int64{}
	}
	if !t.LastUsedAt.IsZero() {
		v.LastUsedAt = &t.LastUsedAt
	}
	if n, ok := c.Get(tenantMonthKey).(int64); ok {
		v.Usage = &usageView{RequestsThisMonth: n}
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, v)
}

// admit authenticates the caller with the URL's credentials and takes a
// token from the account's bucket; every answer after authentication
// carries RateLimit-Limit and RateLimit-Remaining. An address out of
// guesses is refused first, before its key is looked up.
func (ta *tenantAPI) admit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		user, key, _ := req.BasicAuth()
		addr := tenantGuessAddr(opClientIP(req), user)
		if wait, ok := ta.guard.Admit(req.Context(), addr, false); !ok {
			return tenantLockedOut(wait)
		}
		t, err := ta.srv.svc.Tenant(req.Context(), user, key)
		if addon.ErrorCode(err) == addon.EUNAUTHORIZED {
			if wait, ok := ta.guard.Admit(req.Context(), addr, true); !ok {
				return tenantLockedOut(wait)
			}
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="Kiln API"`)
			return err
		}
		if err != nil {
			return err
		}
		if rps := t.Plan.Limits[addon.TenantRateLimit]; rps > 0 {
			burst := int(min(rps, math.MaxInt32))
			remaining, wait, ok := ta.take(req.Context(), "tenant:account:"+string(t.AddonID), burst, float64(rps)*60)
			h := c.Response().Header()
			h.Set("RateLimit-Limit", strconv.FormatInt(rps, 10))
			h.Set(opHeaderRateLimit, strconv.Itoa(remaining))
			if !ok {
				return &addon.Error{Code: addon.ERATELIMIT, RetryAfter: wait,
					Message: fmt.Sprintf("Rate limit reached: plan %s allows %d requests a second. Retry in %d s.", t.Plan.Slug, rps, int(math.Ceil(wait.Seconds())))}
			}
		}
		if err := ta.quota(c, t); err != nil {
			return err
		}
		c.Set(tenantKey, t)
		return next(c)
	}
}

// quota counts the request against the plan's monthly quota (a calendar
// month in UTC) and refuses it with 429 past the quota. While Redis fails
// the quota is not enforced: refusing paying customers because Kiln's
// Redis is down is the worse mistake.
func (ta *tenantAPI) quota(c echo.Context, t *addon.Tenant) error {
	limit := t.Plan.Limits[addon.TenantMonthlyQuota]
	if limit <= 0 || ta.counters == nil {
		return nil
	}
	now := time.Now().UTC()
	next := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	ctx, cancel := context.WithTimeout(c.Request().Context(), opSharedBucketBudget)
	defer cancel()
	n, err := ta.counters.Count(ctx, "tenant:month:"+string(t.AddonID)+":"+now.Format("2006-01"), next.Add(24*time.Hour))
	if err != nil {
		ta.srv.log.Warn("monthly quota unavailable; not enforced for this request", "err", err)
		return nil
	}
	c.Set(tenantMonthKey, min(n, limit))
	if n > limit {
		return &addon.Error{Code: addon.ERATELIMIT, RetryAfter: next.Sub(now),
			Message: fmt.Sprintf("Monthly quota reached: plan %s allows %d requests a month; it resets on %s.", t.Plan.Slug, limit, next.Format("2006-01-02"))}
	}
	return nil
}

// take takes a token from the shared buckets, or from this process's when
// there are none or they fail.
func (ta *tenantAPI) take(ctx context.Context, key string, burst int, perMinute float64) (remaining int, wait time.Duration, ok bool) {
	return takeToken(ctx, ta.shared, ta.local, key, RateLimit{Burst: burst, PerMinute: perMinute}, time.Now(), ta.srv.log)
}
