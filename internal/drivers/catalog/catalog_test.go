package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
)

const plans = `{"plans":[{"slug":"test","limits":{"n":1}},{"slug":"basic","limits":{"n":2}}]}`

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	for path, data := range map[string]string{good: strings.ReplaceAll(plans, `"n":2`, `"n":5`), bad: `{"plans":`} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	parse := func(data []byte) (addon.Catalog, error) { return addon.ParseCatalog(data, "n") }
	refuse := func([]byte) (addon.Catalog, error) { return nil, errors.New("refused by the driver") }
	tests := []struct {
		name    string
		path    string
		parse   func([]byte) (addon.Catalog, error)
		basic   int64    // the basic plan's limit n when it loads
		wantErr []string // every fragment must appear in the error
	}{
		{"built in", "", parse, 2, nil},
		{"file replaces the built-in plans", good, parse, 5, nil},
		{"missing file", filepath.Join(dir, "missing.json"), parse, 0, []string{"plan catalog", "missing.json", "no such file"}},
		{"broken file", bad, parse, 0, []string{"plan catalog " + bad, "not a valid catalog"}},
		{"driver refuses the built-in plans", "", refuse, 0, []string{"plan catalog plans.json (built in)", "refused by the driver"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.path, []byte(plans), tt.parse)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := c["basic"].Limits["n"]; got != tt.basic {
					t.Errorf("basic limit n = %d, want %d", got, tt.basic)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load = %v, want an error", c)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
