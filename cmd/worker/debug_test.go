package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDebugListener(t *testing.T) {
	d, err := listenDebug("127.0.0.1:0", "admin-secret", slog.New(slog.DiscardHandler))
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
		{"wrong user", "/debug/pprof/", "root", "admin-secret", http.StatusUnauthorized, ""},
		{"wrong password", "/debug/pprof/heap", "admin", "guess", http.StatusUnauthorized, ""},
		{"index", "/debug/pprof/", "admin", "admin-secret", http.StatusOK, "goroutine"},
		{"named profile", "/debug/pprof/goroutine?debug=1", "admin", "admin-secret", http.StatusOK, "goroutine profile:"},
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
	if _, err := listenDebug(d.ln.Addr().String(), "x", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "WORKER_DEBUG_ADDR") {
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
	debugHandler("").ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("an empty ADMIN_PASSWORD admitted a request: %d", rec.Code)
	}
}
