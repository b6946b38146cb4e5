package http_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
)

func TestLoadCatalog(t *testing.T) {
	c, err := httpdriver.LoadCatalog("")
	if err != nil {
		t.Fatalf("built-in catalog: %v", err)
	}
	if _, err := c.Lookup("test"); err != nil {
		t.Error(err)
	}
	tests := []struct {
		name, data, err string
	}{
		{"partner limits", `{"plans":[{"slug":"test","name":"T","limits":{"widgets":3}},{"slug":"basic","name":"B","limits":{"widgets":30,"seats":0}},{"slug":"legacy-2019","name":"L"}]}`, ""},
		{"not json", `{"plans":`, "not a valid catalog"},
		{"unknown field", `{"plans":[{"slug":"test","nmae":"T"}]}`, "unknown field"},
		{"duplicate", `{"plans":[{"slug":"test"},{"slug":"test"},{"slug":"basic"}]}`, "listed twice"},
		{"no basic", `{"plans":[{"slug":"test"}]}`, `no "basic" plan`},
		{"bad slug", `{"plans":[{"slug":"Test"},{"slug":"basic"}]}`, "not a Heroku plan slug"},
		{"negative limit", `{"plans":[{"slug":"test","limits":{"widgets":-1}},{"slug":"basic"}]}`, "at least 0"},
		{"trailing data", `{"plans":[{"slug":"test"},{"slug":"basic"}]} {}`, "data after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "plans.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := httpdriver.LoadCatalog(path)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p, _ := c.Lookup("basic"); p.Limits["widgets"] != 30 {
					t.Errorf("limits not kept: %+v", p)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadCatalog = %v, want an error naming the file and containing %q", err, tt.err)
			}
		})
	}
	if _, err := httpdriver.LoadCatalog(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing file was accepted")
	}
}
