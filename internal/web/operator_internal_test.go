package web

import (
	"testing"
	"time"
)

// TestMemoryBuckets drives the in-process token bucket with a fake clock:
// burst, refusal with the wait until the next token, refill, and the
// eviction that keeps the map bounded.
func TestMemoryBuckets(t *testing.T) {
	m := newOpMemoryBuckets()
	t0 := time.Date(2026, 3, 3, 18, 0, 0, 0, time.UTC)
	const burst, perMinute = 2, 60 // one token a second
	for i, want := range []int{1, 0} {
		if rem, wait, ok := m.Take("k", burst, perMinute, t0); !ok || rem != want || wait != 0 {
			t.Fatalf("take %d = %d %v %v, want %d 0 true", i+1, rem, wait, ok, want)
		}
	}
	if rem, wait, ok := m.Take("k", burst, perMinute, t0.Add(250*time.Millisecond)); ok || rem != 0 || wait != 750*time.Millisecond {
		t.Errorf("empty bucket = %d %v %v, want 0 750ms false", rem, wait, ok)
	}
	if _, _, ok := m.Take("k", burst, perMinute, t0.Add(time.Second)); !ok {
		t.Error("no token one second later")
	}
	if rem, _, ok := m.Take("k", burst, perMinute, t0.Add(time.Hour)); !ok || rem != burst-1 {
		t.Errorf("after an hour = %d %v, want a full bucket (never more than the burst)", rem, ok)
	}
	if rem, _, ok := m.Take("other", burst, perMinute, t0); !ok || rem != 1 {
		t.Errorf("another key = %d %v, want its own full bucket", rem, ok)
	}

	// A full map drops the buckets that have refilled, and only those.
	m = newOpMemoryBuckets()
	for i := range opMaxMemoryBuckets - 1 {
		m.Take(time.Duration(i).String(), burst, perMinute, t0)
	}
	m.Take("busy", burst, perMinute, t0.Add(10*time.Second))
	m.Take("busy", burst, perMinute, t0.Add(10*time.Second)) // empty now
	// The map is full: the next new key evicts every bucket that refilled
	// (all but "busy").
	m.Take("new", burst, perMinute, t0.Add(10*time.Second))
	if len(m.buckets) != 2 || m.buckets["busy"] == nil || m.buckets["new"] == nil {
		t.Errorf("%d buckets after eviction, want busy and new", len(m.buckets))
	}
}
