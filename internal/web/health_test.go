package web_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/web"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })

	tests := []struct {
		name      string
		cfg       envConfig
		cutPG     bool
		want      int
		wantCheck map[string]string // "!ok" means any failure
	}{
		{
			name:      "all ok",
			want:      http.StatusOK,
			wantCheck: map[string]string{"postgres": "ok", "redis": "ok"},
		},
		{
			name:      "redis down",
			cfg:       envConfig{redisDown: true},
			want:      http.StatusServiceUnavailable,
			wantCheck: map[string]string{"postgres": "ok", "redis": "!ok"},
		},
		{
			name:      "postgres down",
			cutPG:     true,
			want:      http.StatusServiceUnavailable,
			wantCheck: map[string]string{"postgres": "!ok", "redis": "ok"},
		},
		{
			name: "a check that ignores its deadline",
			cfg: envConfig{healthTimeout: time.Second, extraChecks: []web.Check{
				{Name: "stuck", Check: func(ctx context.Context) error { <-hang; return nil }},
			}},
			want:      http.StatusServiceUnavailable,
			wantCheck: map[string]string{"postgres": "ok", "redis": "ok", "stuck": "timeout"},
		},
		{
			name: "a check that panics",
			cfg: envConfig{extraChecks: []web.Check{
				{Name: "broken", Check: func(ctx context.Context) error { panic("boom") }},
			}},
			want:      http.StatusServiceUnavailable,
			wantCheck: map[string]string{"postgres": "ok", "redis": "ok", "broken": "failed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, tt.cfg)
			if tt.cutPG {
				env.proxy.Cut()
			}
			a := serve(t, env.e, request{method: http.MethodGet, path: "/healthz"})
			if a.status != tt.want {
				t.Fatalf("status %d, want %d: %s", a.status, tt.want, a.raw)
			}
			wantStatus := "ok"
			if tt.want != http.StatusOK {
				wantStatus = "unavailable"
			}
			if a.Status != wantStatus || len(a.Checks) != len(tt.wantCheck) {
				t.Errorf("answer %s, want status %q and checks %v", a.raw, wantStatus, tt.wantCheck)
			}
			for name, want := range tt.wantCheck {
				got, ok := a.Checks[name]
				switch {
				case !ok:
					t.Errorf("check %s missing from %s", name, a.raw)
				case want == "!ok" && (got == "ok" || got == ""):
					t.Errorf("check %s is %q, want a failure", name, got)
				case want != "!ok" && got != want:
					t.Errorf("check %s is %q, want %q", name, got, want)
				}
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

// TestHealthzNoChecks: a process without dependencies is healthy.
func TestHealthzNoChecks(t *testing.T) {
	t.Parallel()
	e, _ := bare(t)
	a := serve(t, e, request{method: http.MethodGet, path: "/healthz"})
	if a.status != http.StatusOK || a.Status != "ok" || len(a.Checks) != 0 {
		t.Fatalf("answer %d %s, want 200 ok", a.status, a.raw)
	}
}
