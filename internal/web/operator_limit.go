package web

import (
	"math"
	"sync"
	"time"
)

// opMemoryBuckets are token buckets in this process: the operator API's
// limit when no shared Buckets are configured, and its fallback while they
// fail.
type opMemoryBuckets struct {
	mu      sync.Mutex
	buckets map[string]*opMemoryBucket
}

type opMemoryBucket struct {
	tokens float64
	at     time.Time
}

// opMaxMemoryBuckets bounds the map: past it, buckets that have refilled
// (which are the same as no bucket) are dropped.
const opMaxMemoryBuckets = 10_000

func newOpMemoryBuckets() *opMemoryBuckets {
	return &opMemoryBuckets{buckets: map[string]*opMemoryBucket{}}
}

// Take is Buckets.Take for this process, with the clock passed in.
func (m *opMemoryBuckets) Take(key string, burst int, perMinute float64, now time.Time) (remaining int, wait time.Duration, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rate := perMinute / 60 // tokens a second
	b := m.buckets[key]
	if b == nil {
		if len(m.buckets) >= opMaxMemoryBuckets {
			m.dropFull(burst, rate, now)
		}
		b = &opMemoryBucket{tokens: float64(burst), at: now}
		m.buckets[key] = b
	}
	if now.After(b.at) {
		b.tokens = math.Min(float64(burst), b.tokens+now.Sub(b.at).Seconds()*rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return int(b.tokens), 0, true
	}
	return 0, time.Duration((1 - b.tokens) / rate * float64(time.Second)), false
}

func (m *opMemoryBuckets) dropFull(burst int, rate float64, now time.Time) {
	for k, b := range m.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*rate >= float64(burst) {
			delete(m.buckets, k)
		}
	}
}

// Peek reports whether key's bucket holds a token, without taking it.
func (m *opMemoryBuckets) Peek(key string, burst int, perMinute float64, now time.Time) (wait time.Duration, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.buckets[key]
	if b == nil {
		return 0, true
	}
	rate := perMinute / 60
	tokens := b.tokens
	if now.After(b.at) {
		tokens = math.Min(float64(burst), tokens+now.Sub(b.at).Seconds()*rate)
	}
	if tokens >= 1 {
		return 0, true
	}
	return time.Duration((1 - tokens) / rate * float64(time.Second)), false
}
