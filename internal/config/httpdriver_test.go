package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadHTTPDriver(t *testing.T) {
	m := full()
	m["RESOURCE_DRIVER"] = "http"
	m["RESOURCE_HTTP_URL"] = "https://svc.example.com/kiln"
	m["RESOURCE_HTTP_SECRET"] = strings.Repeat("s", 32)
	c, err := Load(env(m), Worker)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPURL != "https://svc.example.com/kiln" || c.HTTPTimeout != 10*time.Second {
		t.Errorf("http driver settings: %q %v", c.HTTPURL, c.HTTPTimeout)
	}
	m["RESOURCE_HTTP_TIMEOUT"] = "3s"
	if c, err = Load(env(m), Worker); err != nil || c.HTTPTimeout != 3*time.Second {
		t.Errorf("RESOURCE_HTTP_TIMEOUT=3s: %v, %v", c, err)
	}
}

func TestLoadHTTPDriverErrors(t *testing.T) {
	tests := []struct {
		name    string
		process Process
		change  map[string]string
		want    []string
	}{
		{"http driver needs its service", Worker, map[string]string{"RESOURCE_DRIVER": "http"}, []string{"RESOURCE_HTTP_URL is required", "RESOURCE_HTTP_SECRET is required"}},
		{"http driver's variables malformed", Web, map[string]string{"RESOURCE_DRIVER": "http", "RESOURCE_HTTP_URL": "https://u:p@svc.example.com", "RESOURCE_HTTP_SECRET": "short", "RESOURCE_HTTP_TIMEOUT": "ten"},
			[]string{"RESOURCE_HTTP_URL is malformed", "RESOURCE_HTTP_SECRET is malformed", "RESOURCE_HTTP_TIMEOUT is malformed"}},
		{"not a URL", Web, map[string]string{"RESOURCE_DRIVER": "http", "RESOURCE_HTTP_URL": "svc.example.com", "RESOURCE_HTTP_SECRET": strings.Repeat("s", 32)}, []string{"RESOURCE_HTTP_URL is malformed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := full()
			for k, v := range tt.change {
				m[k] = v
			}
			_, err := Load(env(m), tt.process)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q:\n%v", w, err)
				}
			}
		})
	}
}
