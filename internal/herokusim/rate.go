package herokusim

import (
	"math"
	"time"
)

// bucket is one user's rate-limit token bucket. Heroku documents a bucket
// of about 4,500 tokens per account refilled at about 75 a minute; the
// simulator keys buckets by the token's user, which is one per add-on.
type bucket struct {
	tokens float64
	at     time.Time
}

// take spends one token of the user's bucket. It returns what remains and,
// when the bucket is empty, how long until a token is back.
func (s *Sim) take(user string, now time.Time) (remaining int, wait time.Duration, ok bool) {
	if s.o.NoRateLimit {
		return s.o.RateLimit, 0, true
	}
	capacity := float64(s.o.RateLimit)
	perSec := s.o.RateRefill / 60
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[user]
	if b == nil {
		b = &bucket{tokens: capacity, at: now}
		s.buckets[user] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(capacity, b.tokens+d.Seconds()*perSec)
		b.at = now
	}
	if b.tokens < 1 {
		secs := math.Ceil((1 - b.tokens) / perSec)
		return 0, time.Duration(secs) * time.Second, false
	}
	b.tokens--
	return int(b.tokens), 0, true
}
