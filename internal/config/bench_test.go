package config

import (
	"strings"
	"testing"
	"time"
)

func TestWorkerDebugAddr(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{"6060", "127.0.0.1:6060", true},
		{":6060", "127.0.0.1:6060", true},
		{"0.0.0.0:6060", "0.0.0.0:6060", true},
		{"[::1]:6060", "[::1]:6060", true},
		{"http", "", false},
		{"127.0.0.1:99999", "", false},
		{"127.0.0.1:", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m := full()
			m["WORKER_DEBUG_ADDR"] = tt.in
			c, err := Load(env(m), Worker)
			if !tt.ok {
				if err == nil || !strings.Contains(err.Error(), "WORKER_DEBUG_ADDR is malformed") {
					t.Fatalf("Load = %v, want WORKER_DEBUG_ADDR malformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.WorkerDebugAddr != tt.want {
				t.Errorf("WorkerDebugAddr = %q, want %q", c.WorkerDebugAddr, tt.want)
			}
		})
	}
}

func TestResourceDriverDelay(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true},
		{"100ms", 100 * time.Millisecond, true},
		{"slow", 0, false},
		{"-1s", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m := full()
			m["RESOURCE_DRIVER_DELAY"] = tt.in
			c, err := Load(env(m), Worker)
			if !tt.ok {
				if err == nil || !strings.Contains(err.Error(), "RESOURCE_DRIVER_DELAY is malformed") {
					t.Fatalf("Load = %v, want RESOURCE_DRIVER_DELAY malformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ResourceDriverDelay != tt.want {
				t.Errorf("ResourceDriverDelay = %v, want %v", c.ResourceDriverDelay, tt.want)
			}
		})
	}
}
