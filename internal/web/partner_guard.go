package web

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// This file is the guessing limit of Heroku's Partner API (/heroku), whose
// Basic auth takes ADDON_PASSWORD: every door that takes a password limits
// guessing. It follows the admin guard (admin_guard.go): a wrong password
// takes a token from the client address's bucket, in Redis so every dyno
// shares it, and once the bucket is empty every request from that address
// is answered 429 with Retry-After, the right password included, so a
// guess cannot be told apart. Unlike the admin doors the Partner API is
// Kiln's hot path (every provision), so the right password costs no Redis
// round trip: see PartnerGuard.

// PartnerGuard limits guessing of ADDON_PASSWORD per client address. A
// wrong password takes a token from the address's shared bucket
// ("partner:guess:<addr>"); this process remembers, in memory, every
// address a Take found empty (or emptied) until a token is back, and
// answers those addresses 429 itself. A request with the right password
// from any other address touches neither Redis nor any bucket, so
// provisioning pays nothing for the limit.
//
// The price of that: the lock-out travels through the bucket, not through
// a look-up on every request. Another dyno that has not itself found the
// bucket empty still admits the right password from the locked-out
// address, so it may admit a few more guesses (a right one would get its
// 2xx there) before its own wrong-guess Take learns of the lock-out: at
// most one a dyno, since that Take answers 429 and locks the address
// there too. While the shared buckets fail (Redis down) each process
// limits on its own.
type PartnerGuard struct {
	limit  RateLimit
	shared Buckets
	local  *opMemoryBuckets
	log    *slog.Logger

	mu     sync.Mutex
	locked map[string]time.Time // address → when its lock-out ends
}

// NewPartnerGuard builds the Partner API's guard keeping its buckets in
// shared (nil: in this process only), with limit's zero fields defaulted
// to the admin guard's (DefaultAdminGuessBurst, DefaultAdminGuessPerMinute):
// Heroku sends the manifest's password, so only an attacker or a
// half-done password rotation guesses wrong, and the same figures stop the
// first while letting the second recover within seconds of the fix.
func NewPartnerGuard(shared Buckets, limit RateLimit, log *slog.Logger) *PartnerGuard {
	g := &PartnerGuard{limit: limit, shared: shared, local: newOpMemoryBuckets(), log: log, locked: map[string]time.Time{}}
	g.limit = g.limit.or(adminGuessLimit)
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g
}

// partnerGuessKey names an address's bucket, apart from the admin guard's
// so a wrong ADDON_PASSWORD never counts against the admin doors.
func partnerGuessKey(addr string) string { return "partner:guess:" + addr }

// Admit applies the limit to one Partner API request from addr: guessed
// says a password was presented and was wrong. It returns ok when the
// request may go on (to its 401 when guessed), or how long the address
// must wait. Only a wrong password reaches the shared buckets.
func (g *PartnerGuard) Admit(ctx context.Context, addr string, guessed bool) (wait time.Duration, ok bool) {
	now := time.Now()
	if wait, locked := g.lockedOut(addr, now); locked {
		return wait, false
	}
	if !guessed {
		return 0, true
	}
	remaining, wait, ok := takeToken(ctx, g.shared, g.local, partnerGuessKey(addr), g.limit, now, g.log)
	switch {
	case !ok:
		g.lock(addr, now.Add(wait))
	case remaining == 0:
		// This guess took the last whole token: the bucket is empty now.
		// A token is back within one refill interval at the latest.
		g.lock(addr, now.Add(time.Duration(float64(time.Minute)/g.limit.PerMinute)))
	}
	return wait, ok
}

// lockedOut reports whether addr is locked out in this process, and for
// how much longer; an ended lock-out is forgotten.
func (g *PartnerGuard) lockedOut(addr string, now time.Time) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, found := g.locked[addr]
	if !found {
		return 0, false
	}
	if !until.After(now) {
		delete(g.locked, addr)
		return 0, false
	}
	return until.Sub(now), true
}

// lock remembers that addr is locked out until the given time. Lock-outs
// last seconds, so past opMaxMemoryBuckets addresses the ended ones are
// dropped, and others if that is not enough: the map never grows past
// opMaxMemoryBuckets.
func (g *PartnerGuard) lock(addr string, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.locked) >= opMaxMemoryBuckets {
		now := time.Now()
		for a, u := range g.locked {
			if !u.After(now) {
				delete(g.locked, a)
			}
		}
		for a := range g.locked {
			if len(g.locked) < opMaxMemoryBuckets {
				break
			}
			// Still full (an attack from that many addresses at once):
			// one is forgotten, and its next wrong guess, refused by
			// the shared bucket, locks it here again.
			delete(g.locked, a)
		}
	}
	if until.After(g.locked[addr]) {
		g.locked[addr] = until
	}
}

// check runs the guard for an echo request and returns the error to
// answer, if any.
func (g *PartnerGuard) check(c echo.Context, guessed bool) error {
	wait, ok := g.Admit(c.Request().Context(), opClientIP(c.Request()), guessed)
	if ok {
		return nil
	}
	return guessRefusal("wrong passwords", wait)
}
