package web

import (
	"net/http/httptest"
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

// TestOpClientIP: the client address behind Heroku's router is the entry
// the router appended; a client cannot pick its own by adding entries or
// X-Forwarded-For lines.
func TestOpClientIP(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"no router", "192.0.2.1:1234", nil, "192.0.2.1"},
		{"the router's entry", "10.0.0.1:1", []string{"198.51.100.8"}, "198.51.100.8"},
		{"the client's entries before it", "10.0.0.1:1", []string{"203.0.113.1, 203.0.113.2,198.51.100.8"}, "198.51.100.8"},
		{"IPv6", "10.0.0.1:1", []string{"2001:db8::0:1"}, "2001:db8::1"},
		// Heroku's legacy router appends to the first line, Router 2.0 to
		// the last: neither can be trusted, so all such requests are one.
		{"a second line (legacy router)", "10.0.0.1:1", []string{"203.0.113.1, 198.51.100.8", "203.0.113.77"}, opAmbiguousClient},
		{"a second line (Router 2.0)", "10.0.0.1:1", []string{"203.0.113.77", "203.0.113.1, 198.51.100.8"}, opAmbiguousClient},
		{"unreadable entry", "10.0.0.1:1", []string{"nonsense"}, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := opClientIP(req); got != tt.want {
				t.Errorf("opClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}
