package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDriverCheckUsage(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no URL", map[string]string{"RESOURCE_HTTP_SECRET": "s"}, nil, "give the service's URL"},
		{"no secret", nil, []string{"http://127.0.0.1:1"}, "no signing secret"},
		{"two URLs", nil, []string{"http://a", "http://b"}, "takes one URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := cmd(t, tt.env, append([]string{"driver-check"}, tt.args...)...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

// TestDriverCheckFails: a service that answers nothing useful fails the
// run with exit 1 and the table on stdout (the URL and secret from the
// environment, as Kiln has them).
func TestDriverCheckFails(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	code, stdout, _ := cmd(t, map[string]string{"RESOURCE_HTTP_URL": srv.URL, "RESOURCE_HTTP_SECRET": "s"}, "driver-check")
	if code != 1 || !strings.Contains(stdout, "FAIL    create: a signed POST /resources is accepted") || !strings.Contains(stdout, "skipped") {
		t.Fatalf("exit %d, stdout:\n%s", code, stdout)
	}
}

// TestManifestForHTTPDriver: the http driver's manifest lists the config
// vars the partner's service answers.
func TestManifestForHTTPDriver(t *testing.T) {
	env := map[string]string{"ADDON_ID": "acme-widgets", "RESOURCE_DRIVER": "http"}
	code, stdout, stderr := runArgs(t, env, "manifest", "generate", "--url", "https://kiln.example.com", "--config-vars", "URL, API_KEY")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `"ACME_WIDGETS_URL"`) || !strings.Contains(stdout, `"ACME_WIDGETS_API_KEY"`) {
		t.Errorf("manifest:\n%s", stdout)
	}
}
