package web

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// This file is the guessing limit of the doors on Kiln's hot paths:
// Heroku's Partner API (/heroku), whose Basic auth takes ADDON_PASSWORD,
// and the tenant API (customers' apps, with their account keys). Every
// door that takes a password limits guessing. It follows the admin guard
// (admin_guard.go): a wrong password takes a token from the client's
// bucket, in Redis so every dyno shares it, and once the bucket is empty
// every request from that client is answered 429 with Retry-After, the
// right password included, so a guess cannot be told apart. Unlike the
// admin doors these serve every provision and every customer request, so
// the right password costs no Redis round trip: see GuessGuard.

// GuessGuard limits guessing per client (an address, or an address and
// an account). A wrong password takes a token from the client's shared
// bucket ("<name>:guess:<client>"); this process remembers, in memory,
// every client a Take found empty (or emptied) until a token is back, and
// answers those clients 429 itself. A request with the right password
// from any other client touches neither Redis nor any bucket.
//
// The price of that: the lock-out travels through the bucket, not through
// a look-up on every request. Another dyno that has not itself found the
// bucket empty still admits the right password from the locked-out
// client, so it may admit a few more guesses (a right one would get its
// 2xx there) before its own wrong-guess Take learns of the lock-out: at
// most one a dyno, since that Take answers 429 and locks the client there
// too. While the shared buckets fail (Redis down) each process limits on
// its own.
type GuessGuard struct {
	name   string // the door, naming its buckets
	limit  RateLimit
	shared Buckets
	local  *opMemoryBuckets
	log    *slog.Logger

	mu     sync.Mutex
	locked map[string]time.Time // client → when its lock-out ends
}

// NewGuessGuard builds the guessing limit of the door name (its buckets
// are "<name>:guess:<client>"), keeping its buckets in shared (nil: in
// this process only), with limit's zero fields defaulted to the admin
// guard's (DefaultAdminGuessBurst, DefaultAdminGuessPerMinute): the right
// password is known to its callers, so only an attacker or a half-done
// rotation guesses wrong, and the same figures stop the first while
// letting the second recover within seconds of the fix.
func NewGuessGuard(name string, shared Buckets, limit RateLimit, log *slog.Logger) *GuessGuard {
	g := &GuessGuard{name: name, limit: limit, shared: shared, local: newOpMemoryBuckets(), log: log, locked: map[string]time.Time{}}
	g.limit = g.limit.or(adminGuessLimit)
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g
}

// Admit applies the limit to one request from client: guessed says a
// password was presented and was wrong. It returns ok when the request
// may go on (to its 401 when guessed), or how long the client must wait.
// Only a wrong password reaches the shared buckets.
func (g *GuessGuard) Admit(ctx context.Context, client string, guessed bool) (wait time.Duration, ok bool) {
	now := time.Now()
	if wait, locked := g.lockedOut(client, now); locked {
		return wait, false
	}
	if !guessed {
		return 0, true
	}
	remaining, wait, ok := takeToken(ctx, g.shared, g.local, g.name+":guess:"+client, g.limit, now, g.log)
	switch {
	case !ok:
		g.lock(client, now.Add(wait))
	case remaining == 0:
		// This guess took the last whole token: the bucket is empty now.
		// A token is back within one refill interval at the latest.
		g.lock(client, now.Add(time.Duration(float64(time.Minute)/g.limit.PerMinute)))
	}
	return wait, ok
}

// lockedOut reports whether a client is locked out in this process, and for
// how much longer; an ended lock-out is forgotten.
func (g *GuessGuard) lockedOut(client string, now time.Time) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, found := g.locked[client]
	if !found {
		return 0, false
	}
	if !until.After(now) {
		delete(g.locked, client)
		return 0, false
	}
	return until.Sub(now), true
}

// lock remembers that client is locked out until the given time. Lock-outs
// last seconds, so past opMaxMemoryBuckets clients the ended ones are
// dropped, and others if that is not enough: the map never grows past
// opMaxMemoryBuckets.
func (g *GuessGuard) lock(client string, until time.Time) {
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
			// Still full (an attack from that many clients at once):
			// one is forgotten, and its next wrong guess, refused by
			// the shared bucket, locks it here again.
			delete(g.locked, a)
		}
	}
	if until.After(g.locked[client]) {
		g.locked[client] = until
	}
}

// check runs the guard for an echo request and returns the error to
// answer, if any.
func (g *GuessGuard) check(c echo.Context, guessed bool) error {
	wait, ok := g.Admit(c.Request().Context(), opClientIP(c.Request()), guessed)
	if ok {
		return nil
	}
	return guessRefusal("wrong passwords", wait)
}
