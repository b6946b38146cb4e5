package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/web"
)

const debugPassword = "worker-debug-admin-password-0123456789"

func TestDebugListener(t *testing.T) {
	d, err := listenDebug("127.0.0.1:0", debugPassword, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.serve(ctx) }()
	base := "http://" + d.ln.Addr().String()

	tests := []struct {
		name       string
		path       string
		user, pass string
		want       int
		body       string
	}{
		{"no credentials", "/debug/pprof/", "", "", http.StatusUnauthorized, ""},
		{"wrong user", "/debug/pprof/", "root", debugPassword, http.StatusUnauthorized, ""},
		{"wrong password", "/debug/pprof/heap", "admin", "guess", http.StatusUnauthorized, ""},
		{"index", "/debug/pprof/", "admin", debugPassword, http.StatusOK, "goroutine"},
		{"named profile", "/debug/pprof/goroutine?debug=1", "admin", debugPassword, http.StatusOK, "goroutine profile:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, base+tt.path, nil)
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s = %d, want %d", tt.path, resp.StatusCode, tt.want)
			}
			if !strings.Contains(string(b), tt.body) {
				t.Errorf("GET %s answered without %q", tt.path, tt.body)
			}
		})
	}
	if _, err := listenDebug(d.ln.Addr().String(), debugPassword, nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "WORKER_DEBUG_ADDR") {
		t.Errorf("listening on a taken port = %v, want an error naming WORKER_DEBUG_ADDR", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after shutdown = %v", err)
	}
}

func TestDebugHandlerWithoutPassword(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil)
	req.SetBasicAuth("admin", "")
	rec := httptest.NewRecorder()
	debugHandler("", nil).ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("an empty ADMIN_PASSWORD admitted a request: %d", rec.Code)
	}
}

// TestDebugHandlerGuessingLimit: wrong passwords from one address run into
// the shared admin guessing limit (429 with Retry-After), after which even
// the right password waits; another address is not affected.
func TestDebugHandlerGuessingLimit(t *testing.T) {
	guard := web.NewAdminGuard(nil, web.RateLimit{Burst: 3, PerMinute: 0.01}, nil)
	h := debugHandler(debugPassword, guard)
	do := func(addr, pass string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil)
		req.RemoteAddr = addr
		req.SetBasicAuth("admin", pass)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for i := 0; i < 3; i++ {
		if rec := do("192.0.2.1:1000", "guess"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d = %d, want 401", i+1, rec.Code)
		}
	}
	rec := do("192.0.2.1:1001", "guess")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("guess 4 = %d (Retry-After %q), want 429 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := do("192.0.2.1:1002", debugPassword); rec.Code != http.StatusTooManyRequests {
		t.Errorf("the right password from a locked-out address = %d, want 429", rec.Code)
	}
	if rec := do("198.51.100.7:1000", debugPassword); rec.Code != http.StatusOK {
		t.Errorf("the right password from another address = %d, want 200", rec.Code)
	}
}

// TestShortAdminPasswordRefused: the worker does not start with an
// ADMIN_PASSWORD under 32 characters either.
func TestShortAdminPasswordRefused(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL": "postgres://postgres@127.0.0.1:1/none", "REDIS_URL": "redis://127.0.0.1:1",
		"ADDON_ID": "kiln", "ADDON_PASSWORD": "pw", "ADDON_SSO_SALT": "salt", "HEROKU_OAUTH_CLIENT_SECRET": "s",
		"ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "ADMIN_PASSWORD": strings.Repeat("x", 31),
	}
	err := run(context.Background(), func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ADMIN_PASSWORD is malformed: it is 31 characters long") {
		t.Fatalf("run = %v, want a refusal naming ADMIN_PASSWORD", err)
	}
}

// TestAdminGuardPool: the admin guard's Redis client exists only with
// WORKER_DEBUG_ADDR, and its connections are what the budget counts.
func TestAdminGuardPool(t *testing.T) {
	tests := []struct {
		addr string
		want int
	}{{"", 0}, {"127.0.0.1:6060", 2}}
	for _, tt := range tests {
		if got := adminGuardPool(tt.addr); got != tt.want {
			t.Errorf("adminGuardPool(%q) = %d, want %d", tt.addr, got, tt.want)
		}
	}
}
