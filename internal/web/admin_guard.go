package web

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/secret"
	"github.com/labstack/echo/v4"
)

// This file is the one guessing limit every door that takes the admin
// password shares: the operator API, the queue dashboard, /metrics, the
// web process's profiler and the worker's debug listener. Each wrong
// password takes a token from the client address's bucket (in Redis, so
// all dynos and both process types share it); once the bucket is empty
// every request from that address that would check the password is
// answered 429 with Retry-After, the right password included, so an
// attacker cannot keep guessing and tell the right answer apart.

// The admin guessing limit when Options.AdminGuessLimit is zero: an
// operator who mistypes a few times is never stopped, a script trying
// passwords gets 20 and then one every 6 seconds.
const (
	DefaultAdminGuessBurst     = 20
	DefaultAdminGuessPerMinute = 10
)

// adminGuessLimit is those defaults as a RateLimit.
var adminGuessLimit = RateLimit{Burst: DefaultAdminGuessBurst, PerMinute: DefaultAdminGuessPerMinute}

// Peeker is a Buckets that can also look at a bucket without taking a
// token (internal/ratelimit's Redis buckets can). Without it the guard
// keeps its limit in this process.
type Peeker interface {
	Buckets
	Peek(ctx context.Context, key string, burst int, perMinute float64) (wait time.Duration, ok bool, err error)
}

// AdminGuard limits guessing of the admin password per client address. One
// guard serves every admin surface of a process; with shared buckets the
// limit also holds across processes.
type AdminGuard struct {
	limit  RateLimit
	shared Peeker
	local  *opMemoryBuckets
	log    *slog.Logger
}

// NewAdminGuard builds a guard keeping its buckets in shared (nil, or
// buckets that cannot peek: in this process only), with limit's zero
// fields defaulted.
func NewAdminGuard(shared Buckets, limit RateLimit, log *slog.Logger) *AdminGuard {
	g := &AdminGuard{limit: limit, local: newOpMemoryBuckets(), log: log}
	if p, ok := shared.(Peeker); ok {
		g.shared = p
	}
	g.limit = g.limit.or(adminGuessLimit)
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g
}

// adminGuessKey names an address's bucket.
func adminGuessKey(addr string) string { return "admin:guess:" + addr }

// Admit applies the limit to one request from addr: guessed says a
// password was presented and was wrong. It returns a zero wait when the
// request may go on (to its 401 when guessed), or how long the address
// must wait.
func (g *AdminGuard) Admit(ctx context.Context, addr string, guessed bool) (wait time.Duration, ok bool) {
	key := adminGuessKey(addr)
	if g.shared != nil {
		sctx, cancel := context.WithTimeout(ctx, opSharedBucketBudget)
		defer cancel()
		var err error
		if guessed {
			_, wait, ok, err = g.shared.Take(sctx, key, g.limit.Burst, g.limit.PerMinute)
		} else {
			wait, ok, err = g.shared.Peek(sctx, key, g.limit.Burst, g.limit.PerMinute)
		}
		if err == nil {
			return wait, ok
		}
		g.log.Warn("shared admin guessing limit unavailable; limiting per process", "err", err)
	}
	if guessed {
		_, wait, ok = g.local.Take(key, g.limit.Burst, g.limit.PerMinute, time.Now())
		return wait, ok
	}
	wait, ok = g.local.Peek(key, g.limit.Burst, g.limit.PerMinute, time.Now())
	return wait, ok
}

// refusal is the domain error for a locked-out address.
func (g *AdminGuard) refusal(wait time.Duration) error {
	return guessRefusal("wrong admin passwords", wait)
}

// guessRefusal is the answer of a guessing limit to an address out of
// guesses: 429 with Retry-After, saying what there were too many of.
func guessRefusal(what string, wait time.Duration) *addon.Error {
	return &addon.Error{
		Code:       addon.ERATELIMIT,
		Message:    fmt.Sprintf("Too many %s from your address: try again in %d s.", what, int(math.Ceil(wait.Seconds()))),
		RetryAfter: wait,
	}
}

// check runs the guard for an echo request and returns the error to answer,
// if any.
func (g *AdminGuard) check(c echo.Context, guessed bool) error {
	wait, ok := g.Admit(c.Request().Context(), opClientIP(c.Request()), guessed)
	if ok {
		return nil
	}
	return g.refusal(wait)
}

// Handler serves next behind Basic auth admin:password and the guessing
// limit, for admin doors outside Echo (the worker's debug listener). The
// client address is the connection's: there is no router in front whose
// X-Forwarded-For could be trusted.
func (g *AdminGuard) Handler(password string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, presented := r.BasicAuth()
		userOK := secret.Equal(user, adminUser)
		passOK := secret.Equal(pass, password)
		authed := presented && userOK && passOK && password != ""
		addr, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			addr = r.RemoteAddr
		}
		if wait, ok := g.Admit(r.Context(), addr, presented && !authed); !ok {
			w.Header().Set(echo.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			http.Error(w, g.refusal(wait).(*addon.Error).Message, http.StatusTooManyRequests)
			return
		}
		if !authed {
			w.Header().Set(echo.HeaderWWWAuthenticate, fmt.Sprintf("Basic realm=%q", adminRealm))
			http.Error(w, "Authentication required.", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// adminAuth is basicAuth for the admin user behind the guard.
func (s *server) adminAuth() echo.MiddlewareFunc {
	return basicAuthGuarded(adminRealm, adminUser, nonEmpty([]string{s.adminPassword}), s.guard)
}
