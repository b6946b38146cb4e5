package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPprof(t *testing.T) {
	env := newEnv(t, envConfig{})
	tests := []struct {
		name       string
		path       string
		user, pass string
		want       int
		body       string // a fragment the answer must hold
	}{
		{"no credentials", "/admin/debug/pprof/", "", "", http.StatusUnauthorized, ""},
		{"Heroku's credentials are not the admin's", "/admin/debug/pprof/", testAddonID, password1, http.StatusUnauthorized, ""},
		{"wrong admin password", "/admin/debug/pprof/heap", "admin", "nope", http.StatusUnauthorized, ""},
		{"index", "/admin/debug/pprof/", "admin", "admin-password-0123456789abcdef-web", http.StatusOK, "goroutine"},
		{"named profile", "/admin/debug/pprof/goroutine?debug=1", "admin", "admin-password-0123456789abcdef-web", http.StatusOK, "goroutine profile:"},
		{"cmdline", "/admin/debug/pprof/cmdline", "admin", "admin-password-0123456789abcdef-web", http.StatusOK, ""},
		{"unknown profile", "/admin/debug/pprof/nonesuch", "admin", "admin-password-0123456789abcdef-web", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			rec := httptest.NewRecorder()
			env.e.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("GET %s = %d, want %d: %s", tt.path, rec.Code, tt.want, rec.Body.String())
			}
			if tt.body != "" && !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("GET %s answered without %q: %.200s", tt.path, tt.body, rec.Body.String())
			}
			if tt.want == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without a Basic challenge")
			}
		})
	}
}
